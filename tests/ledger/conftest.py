"""Fixtures: a migrated ledger on a fresh SQLite file, and one in a fresh PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdlearning.ledger import Ledger, make_engine
from tests.ledger.factories import new_ledger, postgres_schema_engine


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh SQLite file database."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(sqlite_engine: sa.Engine) -> Ledger:
    """A migrated ledger on SQLite."""
    return new_ledger(sqlite_engine)


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:
    """A PostgreSQL engine confined to a fresh schema."""
    with postgres_schema_engine(postgres_url) as engine:
        yield engine


@pytest.fixture
def pg_ledger(pg_engine: sa.Engine) -> Ledger:
    """A migrated ledger on PostgreSQL."""
    return new_ledger(pg_engine)
