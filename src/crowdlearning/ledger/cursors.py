"""Named positions of background readers, kept in the ledger's database (``payments_cursors``,
migration 0009) so that they move with the books they describe: the payments service's treasury
reader (``payments.deposits.ServiceDepositReader``) and the webhook outbox's watermarks
(``payments.webhooks.record_events``). Written in the caller's database transaction."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crowdlearning.ledger.schema import payments_cursors

__all__ = ["read_cursor", "write_cursor"]


def read_cursor(conn: sa.Connection, name: str) -> str | None:
    """The position stored under ``name``, or ``None``."""
    return conn.execute(sa.select(payments_cursors.c.value)
                        .where(payments_cursors.c.name == name)).scalar()


def write_cursor(conn: sa.Connection, name: str, value: str, *, now_ns: int) -> None:
    """Store ``value`` under ``name`` (insert or replace)."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
    stmt = dialect.insert(payments_cursors).values(name=name, value=value, updated_at_ns=now_ns)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                            set_={"value": value, "updated_at_ns": now_ns}))
