"""A running counter of each API client's booked payouts, per minute: the daily quota, cheap.

``request_payout`` adds a client payout's amount to its minute's row of ``client_payout_volume``
(migration 0009) in the booking's own database transaction; voiding it takes the amount back in
the void's. So the counter is exactly the sum of the client's not-voided payouts per minute,
whatever process booked or voided them, and survives restarts (it is in the database, written
with the facts it counts). ``volume_since`` sums at most the ~1,441 minutes a 24 h window
touches, instead of re-reading every payout of the day; rows a day old are pruned as new
minutes are written.

The window is counted in whole minutes: a payout leaves the rolling window at the end of the
minute it was booked in plus 24 h (up to one minute late, never early), which is what
``refill_at_ns`` answers for ``Retry-After``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crowdlearning.ledger.schema import client_payout_volume

__all__ = ["DAY_NS", "MINUTE_NS", "add_payout", "refill_at_ns", "remove_payout", "volume_since"]

MINUTE_NS = 60 * 10**9
DAY_NS = 86_400 * 10**9
_KEEP_NS = DAY_NS + 2 * MINUTE_NS  # rows older than the widest window asked about


def add_payout(conn: sa.Connection, account_id: int, amount_tinybar: int, *,
               created_at_ns: int) -> None:
    """Count a newly booked payout of a client account (the caller checks it is one)."""
    minute = created_at_ns // MINUTE_NS
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
    stmt = dialect.insert(client_payout_volume).values(
        account_id=account_id, minute=minute, amount_tinybar=amount_tinybar)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["account_id", "minute"],
        set_={"amount_tinybar": client_payout_volume.c.amount_tinybar + amount_tinybar}))
    conn.execute(client_payout_volume.delete().where(
        client_payout_volume.c.account_id == account_id,
        client_payout_volume.c.minute < (created_at_ns - _KEEP_NS) // MINUTE_NS))


def remove_payout(conn: sa.Connection, account_id: int, amount_tinybar: int, *,
                  created_at_ns: int) -> None:
    """A counted payout was voided: take it back (a pruned minute is long out of the window)."""
    row = client_payout_volume.c
    conn.execute(client_payout_volume.update()
                 .where(row.account_id == account_id,
                        row.minute == created_at_ns // MINUTE_NS)
                 .values(amount_tinybar=sa.case(
                     (row.amount_tinybar >= amount_tinybar, row.amount_tinybar - amount_tinybar),
                     else_=0)))


def _minutes(conn: sa.Connection, account_id: int, now_ns: int) -> list[tuple[int, int]]:
    row = client_payout_volume.c
    first = (now_ns - DAY_NS) // MINUTE_NS  # the minute the window's start falls in
    return [(int(r.minute), int(r.amount_tinybar)) for r in conn.execute(
        sa.select(row.minute, row.amount_tinybar)
        .where(row.account_id == account_id, row.minute >= first, row.amount_tinybar > 0)
        .order_by(row.minute))]


def volume_since(conn: sa.Connection, account_id: int, now_ns: int) -> int:
    """The client's not-voided payouts booked in the rolling 24 h before ``now_ns``
    (minute-rounded: the window's first minute is counted whole)."""
    return sum(amount for _, amount in _minutes(conn, account_id, now_ns))


def refill_at_ns(conn: sa.Connection, account_id: int, excess_tinybar: int,
                 now_ns: int) -> int | None:
    """When enough of the oldest counted minutes have left the window to free
    ``excess_tinybar``; ``None`` if the window's whole volume does not free that much."""
    for minute, amount in _minutes(conn, account_id, now_ns):
        excess_tinybar -= amount
        if excess_tinybar <= 0:
            return (minute + 1) * MINUTE_NS + DAY_NS
    return None
