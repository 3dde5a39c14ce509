"""Fixtures: a migrated ledger database (SQLite; PostgreSQL when configured) and its journal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.ledger import Ledger, make_engine
from tests.audit.fakes import MemoryAuditNetwork
from tests.ledger.factories import new_ledger, postgres_schema_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh database of each kind (PostgreSQL skips unless configured)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        yield engine
        engine.dispose()
        return
    with postgres_schema_engine(request.getfixturevalue("postgres_url")) as engine:
        yield engine


@pytest.fixture
def ledger(engine: sa.Engine) -> Ledger:
    """A migrated ledger (its database holds the journal too)."""
    return new_ledger(engine)


@pytest.fixture
def journal(ledger: Ledger) -> AuditJournal:
    return AuditJournal(ledger.engine, scan_limit=7)


@pytest.fixture
def network() -> MemoryAuditNetwork:
    return MemoryAuditNetwork()
