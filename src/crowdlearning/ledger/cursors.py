"""Named positions of background readers, kept in the ledger's database (``payments_cursors``,
migration 0009) so that they move with the books they describe: the treasury reader's position
(``payments.deposits.ServiceDepositReader``: one per treasury account, shared by the payments
service and the game servers booking that treasury) and the webhook outbox's watermarks
(``payments.webhooks.record_events``). Written in the caller's database transaction."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crowdlearning.ledger.schema import payments_cursors

__all__ = ["insert_cursor", "read_cursor", "write_cursor"]


def read_cursor(conn: sa.Connection, name: str, *, for_update: bool = False) -> str | None:
    """The position stored under ``name``, or ``None``; ``for_update`` locks its row until the
    transaction ends (PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds the only writer)."""
    query = sa.select(payments_cursors.c.value).where(payments_cursors.c.name == name)
    if for_update:
        query = query.with_for_update()
    return conn.execute(query).scalar()


def write_cursor(conn: sa.Connection, name: str, value: str, *, now_ns: int) -> None:
    """Store ``value`` under ``name`` (insert or replace)."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
    stmt = dialect.insert(payments_cursors).values(name=name, value=value, updated_at_ns=now_ns)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                            set_={"value": value, "updated_at_ns": now_ns}))


def insert_cursor(conn: sa.Connection, name: str, value: str, *, now_ns: int) -> None:
    """Store ``value`` under a ``name`` that must be new: a concurrent writer of the same name
    makes one of the two transactions fail with a unique violation (retried by
    ``Ledger.run``, which then finds the winner's row)."""
    conn.execute(payments_cursors.insert().values(name=name, value=value, updated_at_ns=now_ns))
