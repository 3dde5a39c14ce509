"""Whole-book checks, run by tests, the reconciliation job and operators.

The database already refuses unbalanced transfers and negative balances row by row; this module
checks the books as a whole from the outside, so that a bug in either layer shows up.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from crowdlearning.ledger.errors import BooksUnbalancedError
from crowdlearning.ledger.schema import accounts, holds, legs, payouts, transfers

__all__ = ["BooksSummary", "check_books"]


@dataclass(frozen=True)
class BooksSummary:
    """Totals of balanced books: ``internal_tinybar`` is what the Hedera treasury should hold."""

    accounts: int
    transfers: int
    internal_tinybar: int


def check_books(conn: sa.Connection) -> BooksSummary:
    """Check every invariant; raise ``BooksUnbalancedError`` listing all violations."""
    problems = [
        *_unbalanced_transfers(conn),
        *_balances_not_matching_legs(conn),
        *_forbidden_negatives(conn),
        *_holding_accounts_mismatch(conn),
    ]
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(accounts.c.balance_tinybar), 0)))
    if int(total.scalar_one()) != 0:
        problems.append("account balances do not sum to zero")
    if problems:
        raise BooksUnbalancedError("; ".join(problems))
    return _summary(conn)


def _unbalanced_transfers(conn: sa.Connection) -> list[str]:
    query = (
        sa.select(legs.c.transfer_id)
        .group_by(legs.c.transfer_id)
        .having(sa.or_(sa.func.sum(legs.c.amount_tinybar) != 0, sa.func.count() < 2))
    )
    return [f"transfer {tid} legs do not sum to zero" for (tid,) in conn.execute(query)]


def _balances_not_matching_legs(conn: sa.Connection) -> list[str]:
    leg_sums = (
        sa.select(legs.c.account_id, sa.func.sum(legs.c.amount_tinybar).label("total"))
        .group_by(legs.c.account_id)
        .subquery()
    )
    query = (
        sa.select(accounts.c.code, accounts.c.balance_tinybar, leg_sums.c.total)
        .outerjoin(leg_sums, leg_sums.c.account_id == accounts.c.id)
        .where(accounts.c.balance_tinybar != sa.func.coalesce(leg_sums.c.total, 0))
    )
    return [f"{code} balance {b} != legs {t}" for code, b, t in conn.execute(query)]


def _forbidden_negatives(conn: sa.Connection) -> list[str]:
    query = sa.select(accounts.c.code, accounts.c.balance_tinybar).where(
        sa.not_(accounts.c.allow_negative), accounts.c.balance_tinybar < 0
    )
    return [f"{code} is negative ({b})" for code, b in conn.execute(query)]


def _holding_accounts_mismatch(conn: sa.Connection) -> list[str]:
    problems = []
    pending = _sum(conn, payouts.c.amount_tinybar, payouts.c.state == "pending")
    pending_balance = _sum(conn, accounts.c.balance_tinybar, accounts.c.code == "pending_payouts")
    if pending != pending_balance:
        problems.append(f"pending payouts {pending} != pending_payouts balance {pending_balance}")
    held = _sum(conn, holds.c.amount_tinybar, holds.c.state == "open")
    held_balance = _sum(conn, accounts.c.balance_tinybar, accounts.c.kind == "held")
    if held != held_balance:
        problems.append(f"open holds {held} != held balances {held_balance}")
    return problems


def _sum(conn: sa.Connection, column: sa.ColumnElement, where: sa.ColumnElement) -> int:
    query = sa.select(sa.func.coalesce(sa.func.sum(column), 0)).where(where)
    return int(conn.execute(query).scalar_one())


def _summary(conn: sa.Connection) -> BooksSummary:
    internal = _sum(
        conn, accounts.c.balance_tinybar, accounts.c.kind.not_in(["world", "network_fees"])
    )
    n_accounts = conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one()
    n_transfers = conn.execute(sa.select(sa.func.count()).select_from(transfers)).scalar_one()
    return BooksSummary(int(n_accounts), int(n_transfers), internal)
