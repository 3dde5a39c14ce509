"""Reading holds, and voiding the hold of a paid run that never reaches a verdict.

A hold (``ledger_holds``, opened by ``stakes.open_hold``) is ``open`` from the moment a paid run
starts until its verdict is booked (``settled``, ``stakes.settle_hold``) or the run is found to
have nothing to judge (``voided`` here: no tick recorded, its recording lost in a restart, the
judge gave up on it). Voiding gives the whole hold back to the stake (``void:<contribution>``):
no penalty, no reward. A voided hold can never be settled afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from crowdlearning.ledger.accounts import AccountKind, player_account
from crowdlearning.ledger.postings import post
from crowdlearning.ledger.records import TransferSpec
from crowdlearning.ledger.schema import holds
from crowdlearning.ledger.validation import DERIVED_ID_MAX, check_identifier

__all__ = ["Hold", "find_hold", "open_holds_of", "void_hold"]


@dataclass(frozen=True)
class Hold:
    """Stake held behind one contribution (a paid run): ``state`` open, settled or voided."""

    contribution_id: str
    player_id: str
    amount_tinybar: int
    state: str
    created_at_ns: int

    @classmethod
    def of(cls, row: sa.Row) -> Hold:
        return cls(row.contribution_id, row.player_id, int(row.amount_tinybar), row.state,
                   int(row.created_at_ns))


def find_hold(conn: sa.Connection, contribution_id: str) -> Hold | None:
    """The hold behind a contribution, whatever its state; ``None`` if none was opened."""
    row = conn.execute(sa.select(holds).where(holds.c.contribution_id == contribution_id)).first()
    return None if row is None else Hold.of(row)


def open_holds_of(conn: sa.Connection, player_id: str, *, limit: int = 100) -> list[Hold]:
    """A player's open holds, oldest first (what their ``held`` balance is made of)."""
    query = (sa.select(holds)
             .where(holds.c.player_id == player_id, holds.c.state == "open")
             .order_by(holds.c.created_at_ns, holds.c.contribution_id)
             .limit(limit))
    return [Hold.of(row) for row in conn.execute(query)]


def void_hold(conn: sa.Connection, contribution_id: str, *, now_ns: int) -> Hold | None:
    """Give an open hold back to the player's stake (idempotent).

    Returns the hold as it is afterwards: ``voided`` (now or before), ``settled`` (its verdict
    was booked first: nothing is changed), or ``None`` if no hold was ever opened for it.
    """
    check_identifier(contribution_id, what="contribution_id", max_length=DERIVED_ID_MAX)
    query = sa.select(holds).where(holds.c.contribution_id == contribution_id).with_for_update()
    row = conn.execute(query).first()  # locked: a verdict being booked on it waits, or won
    if row is None:
        return None
    hold = Hold.of(row)
    if hold.state != "open":
        return hold
    post(
        conn,
        TransferSpec.move(
            f"void:{contribution_id}",
            player_account(hold.player_id, AccountKind.HELD),
            player_account(hold.player_id, AccountKind.STAKE),
            hold.amount_tinybar,
            memo="hold voided: run never judged",
        ),
        now_ns=now_ns,
    )
    conn.execute(
        holds.update()
        .where(holds.c.contribution_id == contribution_id)
        .values(state="voided", penalty_tinybar=0, reward_tinybar=0, settled_at_ns=now_ns)
    )
    return Hold(hold.contribution_id, hold.player_id, hold.amount_tinybar, "voided",
                hold.created_at_ns)
