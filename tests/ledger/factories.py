"""Test helpers for tests/ledger and tests/payments: migrated ledgers on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdlearning.ledger import Ledger, make_engine, upgrade_to_head

HOLD = 10_000  # [tinybar] held per paid contribution
STAKE_MINIMUM = 50_000  # [tinybar] locked stake needed for paid mode


def new_ledger(engine: sa.Engine, **kwargs: object) -> Ledger:
    """Migrate ``engine``'s database and return a ledger with small stake numbers."""
    upgrade_to_head(engine)
    return Ledger(engine, stake_minimum_tinybar=STAKE_MINIMUM, hold_tinybar=HOLD, **kwargs)  # type: ignore[arg-type]


@contextmanager
def postgres_schema_engine(postgres_url: str) -> Iterator[sa.Engine]:
    """An engine confined to a fresh PostgreSQL schema, dropped on exit (so reruns start clean)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = make_engine(postgres_url, schema=schema)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@contextmanager
def ledger_on(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Ledger]:
    """A migrated ledger on ``backend`` ("sqlite": a file in ``tmp_path``; "postgres": a fresh
    schema of the ``postgres_url`` fixture's database, dropped after)."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        try:
            yield new_ledger(engine)
        finally:
            engine.dispose()
        return
    with postgres_schema_engine(request.getfixturevalue("postgres_url")) as engine:
        yield new_ledger(engine)


def funded_player(ledger: Ledger, player_id: str, available: int, stake: int = 0) -> None:
    """Open a player, deposit ``available + stake`` and lock ``stake``."""
    ledger.open_player(player_id)
    if available + stake:
        ledger.deposit(f"dep-{player_id}", f"player:{player_id}:available", available + stake)
    if stake:
        ledger.lock_stake(f"lock-{player_id}", player_id, stake)
