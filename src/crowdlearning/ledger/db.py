"""Engines and transactions: how the ledger talks to SQLite and PostgreSQL.

Concurrency design (see docs/ledger.md): every ledger operation is one short database transaction.
On PostgreSQL it runs at READ COMMITTED and takes row locks (``SELECT ... FOR UPDATE``) on the
accounts it touches, in ascending id order so that two transfers never deadlock; the balance checks
then read the latest committed balances. On SQLite the transaction starts with ``BEGIN IMMEDIATE``,
taking the single write lock up front. Conflicts that remain (a unique-key race on the same transfer
id, a deadlock, a serialization failure, a busy SQLite file) roll back and retry the whole operation
a bounded number of times; the retried operation then finds the winner's rows.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from crowdlearning.ledger.errors import ConcurrencyError, InsufficientFundsError

__all__ = ["make_engine", "run_transaction"]

T = TypeVar("T")
_RETRY_SQLSTATES = frozenset(
    {"40001", "40P01", "23505", "55P03"}
)  # serialization, deadlock, unique
_RETRY_SQLITE = frozenset(
    {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"}
)


def make_engine(url: str, *, schema: str | None = None, busy_timeout_ms: int = 10_000) -> sa.Engine:
    """An engine for a SQLite or PostgreSQL URL; ``schema`` sets PostgreSQL's ``search_path``."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    connect_args: dict[str, Any] = {}
    if schema is not None:
        connect_args["options"] = f"-csearch_path={schema}"
    return sa.create_engine(url, connect_args=connect_args)


def _configure_sqlite(engine: sa.Engine, busy_timeout_ms: int) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def run_transaction(
    engine: sa.Engine, work: Callable[[sa.Connection], T], *, attempts: int = 8
) -> T:
    """Run ``work`` in one transaction, retrying it on conflicts up to ``attempts`` times."""
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if _is_balance_check(exc):
                raise InsufficientFundsError(
                    f"database refused a negative balance: {exc.orig}"
                ) from exc
            if not _is_retryable(exc):
                raise
            if attempt == attempts - 1:
                raise ConcurrencyError(f"gave up after {attempts} conflicting attempts") from exc
            time.sleep(random.uniform(0, 0.002 * 2**attempt))  # jittered backoff
    raise AssertionError("unreachable")


def _is_retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _RETRY_SQLSTATES
    return getattr(orig, "sqlite_errorname", None) in _RETRY_SQLITE


def _is_balance_check(exc: DBAPIError) -> bool:
    return "ck_account_not_negative" in str(exc.orig)
