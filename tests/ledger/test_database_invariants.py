"""The database itself refuses what Python would refuse: run on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import DBAPIError

from crowdlearning.ledger import Ledger
from crowdlearning.ledger.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    upgrade_to_head,
)
from crowdlearning.ledger.schema import metadata
from tests.ledger.factories import funded_player, new_ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ledger(request: pytest.FixtureRequest) -> Ledger:
    """A migrated ledger on each supported database."""
    engine_fixture = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return new_ledger(request.getfixturevalue(engine_fixture))


def _account_id(conn: sa.Connection, code: str) -> int:
    return conn.execute(
        sa.text("SELECT id FROM ledger_accounts WHERE code = :c"), {"c": code}
    ).scalar_one()


def _raw_transfer(ledger: Ledger, tid: str, legs: list[tuple[str, int]], amount: int) -> None:
    with ledger.engine.begin() as conn:
        for n, (code, value) in enumerate(legs):
            conn.execute(
                sa.text("INSERT INTO ledger_legs VALUES (:t, :n, :a, :v)"),
                {"t": tid, "n": n, "a": _account_id(conn, code), "v": value},
            )
        conn.execute(
            sa.text(
                "INSERT INTO ledger_transfers (id, kind, amount_tinybar, memo, created_at_ns)"
                " VALUES (:t, 'single', :amount, '', 0)"
            ),
            {"t": tid, "amount": amount},
        )


def test_unbalanced_legs_are_refused_by_the_database(any_ledger: Ledger) -> None:
    with pytest.raises(DBAPIError, match="sum to zero"):
        _raw_transfer(any_ledger, "bad", [("world", -5), ("treasury", 4)], 4)
    assert any_ledger.balance("treasury") == 0
    any_ledger.check_books()


def test_negative_balance_is_refused_by_the_database(any_ledger: Ledger) -> None:
    with pytest.raises(DBAPIError, match="ck_account_not_negative"):
        _raw_transfer(any_ledger, "bad", [("treasury", -5), ("world", 5)], 5)
    any_ledger.check_books()


def test_legs_without_header_are_refused_at_commit(any_ledger: Ledger) -> None:
    with pytest.raises(DBAPIError), any_ledger.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO ledger_legs VALUES ('orphan', 0, :a, 5)"),
            {"a": _account_id(conn, "treasury")},
        )
    any_ledger.check_books()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_transfers SET memo = 'x'",
        "DELETE FROM ledger_legs",
        "UPDATE ledger_legs SET amount_tinybar = amount_tinybar * 2",
        "INSERT INTO ledger_legs (transfer_id, leg_no, account_id, amount_tinybar) "
        "SELECT id, 9, 1, 1 FROM ledger_transfers",
    ],
)
def test_posted_transfers_are_immutable(any_ledger: Ledger, statement: str) -> None:
    funded_player(any_ledger, "alice", 100)
    with pytest.raises(DBAPIError, match=r"immutable|sealed"), any_ledger.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert any_ledger.balance("player:alice:available") == 100
    any_ledger.check_books()


def test_upgrade_is_idempotent_and_matches_the_schema(any_ledger: Ledger) -> None:
    assert upgrade_to_head(any_ledger.engine) == head_revision()
    assert current_revision(any_ledger.engine) == head_revision()
    with any_ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_migrations_downgrade_to_base_and_back(any_ledger: Ledger) -> None:
    config = alembic_config()
    with any_ledger.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert current_revision(any_ledger.engine) is None
    assert upgrade_to_head(any_ledger.engine) == head_revision()
    any_ledger.deposit("d1", "treasury", 5)
    any_ledger.check_books()


def test_upgrade_by_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'by-url.db'}"
    assert upgrade_to_head(url) == head_revision()
    assert upgrade_to_head(url) == head_revision()
