"""Stakes, holds, penalties and rewards (inside an open transaction).

A player in paid mode has locked stake (``player:<id>:stake``). Starting a paid contribution (the
game server: when a paid run starts) moves ``hold_tinybar`` of it to ``player:<id>:held``
(transfer ``hold:<cid>``); held stake cannot be unlocked nor withdrawn. The verdict then takes the
penalty from the hold into the treasury (``penalty:<cid>``), returns the rest to the stake
(``release:<cid>``) and pays the reward from the operator's reward budget into the player's
available balance (``reward:<cid>``). A run that never reaches a verdict has its hold voided
instead (``holds.void_hold``, ``void:<cid>``). Practice mode touches no account. Transfer ids
derive from the contribution id, so replaying a step is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from crowdlearning.ledger.accounts import AccountKind, player_account
from crowdlearning.ledger.errors import (
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    RewardBudgetExhaustedError,
    StakeRequiredError,
    TransferStateError,
    UnknownTransferError,
)
from crowdlearning.ledger.postings import balance, post
from crowdlearning.ledger.records import TransferSpec
from crowdlearning.ledger.schema import holds
from crowdlearning.ledger.validation import (
    DERIVED_ID_MAX,
    INT64_MAX,
    check_amount,
    check_identifier,
)

__all__ = ["HoldSettlement", "open_hold", "require_paid_mode", "settle_hold", "unlock_stake"]


@dataclass(frozen=True)
class HoldSettlement:
    """The money outcome of a judged paid contribution."""

    contribution_id: str
    player_id: str
    hold_tinybar: int
    penalty_tinybar: int
    reward_tinybar: int

    @property
    def released_tinybar(self) -> int:
        """What went back to the player's stake."""
        return self.hold_tinybar - self.penalty_tinybar


def unlock_stake(
    conn: sa.Connection, player_id: str, amount_tinybar: int, transfer_id: str, *, now_ns: int
) -> None:
    """Move unheld stake back to the player's available balance."""
    stake = player_account(player_id, AccountKind.STAKE)
    spec = TransferSpec.move(
        transfer_id,
        stake,
        player_account(player_id, AccountKind.AVAILABLE),
        amount_tinybar,
        memo="unlock stake",
    )
    try:
        post(conn, spec, now_ns=now_ns)
    except InsufficientFundsError as exc:
        held = balance(conn, player_account(player_id, AccountKind.HELD))
        raise InsufficientFundsError(
            f"cannot unlock {amount_tinybar} tinybar: unheld stake is {balance(conn, stake)}, "
            f"{held} more is held behind contributions still being judged",
            stake,
        ) from exc


def open_hold(
    conn: sa.Connection,
    player_id: str,
    contribution_id: str,
    *,
    hold_tinybar: int,
    stake_minimum_tinybar: int,
    now_ns: int,
) -> None:
    """Hold ``hold_tinybar`` of the player's stake behind a paid contribution (idempotent)."""
    check_identifier(contribution_id, what="contribution_id", max_length=DERIVED_ID_MAX)
    check_amount(hold_tinybar, what="hold_tinybar")
    stored = conn.execute(
        sa.select(holds).where(holds.c.contribution_id == contribution_id)
    ).first()
    if stored is not None:
        if (stored.player_id, stored.amount_tinybar) != (player_id, hold_tinybar):
            raise IdempotencyConflictError(
                f"contribution {contribution_id!r} is already held "
                f"for {stored.player_id} ({stored.amount_tinybar})"
            )
        return
    require_paid_mode(conn, player_id, hold_tinybar, stake_minimum_tinybar)
    stake, held = (player_account(player_id, k) for k in (AccountKind.STAKE, AccountKind.HELD))
    post(
        conn,
        TransferSpec.move(
            f"hold:{contribution_id}",
            stake,
            held,
            hold_tinybar,
            memo="hold stake behind contribution",
        ),
        now_ns=now_ns,
    )
    conn.execute(
        holds.insert().values(
            contribution_id=contribution_id,
            player_id=player_id,
            amount_tinybar=hold_tinybar,
            state="open",
            created_at_ns=now_ns,
        )
    )


def require_paid_mode(conn: sa.Connection, player_id: str, hold: int, minimum: int) -> None:
    stake = balance(conn, player_account(player_id, AccountKind.STAKE))
    held = balance(conn, player_account(player_id, AccountKind.HELD))
    if stake + held < minimum or stake < hold:
        raise StakeRequiredError(
            f"paid mode needs a locked stake of at least {minimum} tinybar with {hold} unheld; "
            f"player {player_id} has {stake} unheld and {held} held (practice mode needs none)",
            player_account(player_id, AccountKind.STAKE),
        )


def settle_hold(
    conn: sa.Connection,
    contribution_id: str,
    *,
    reward_tinybar: int,
    penalty_tinybar: int,
    now_ns: int,
) -> HoldSettlement:
    """Apply the verdict on a held contribution: penalty, release of the rest, reward."""
    _check_non_negative(reward_tinybar, "reward_tinybar")
    _check_non_negative(penalty_tinybar, "penalty_tinybar")
    query = sa.select(holds).where(holds.c.contribution_id == contribution_id).with_for_update()
    row = conn.execute(query).first()  # locked: concurrent verdicts on one hold serialize here
    if row is None:
        raise UnknownTransferError(f"no paid contribution {contribution_id!r} is held")
    result = HoldSettlement(
        contribution_id, row.player_id, int(row.amount_tinybar), penalty_tinybar, reward_tinybar
    )
    if row.state == "settled":
        return _replayed(row, result)
    if row.state == "voided":
        raise TransferStateError(
            f"the hold behind contribution {contribution_id!r} was voided (the run was not to "
            "be judged): its verdict moves no money"
        )
    if penalty_tinybar > result.hold_tinybar:
        raise InvalidInputError(
            f"penalty {penalty_tinybar} exceeds the {result.hold_tinybar} "
            f"tinybar held behind contribution {contribution_id!r}"
        )
    _post_verdict(conn, result, now_ns)
    conn.execute(
        holds.update()
        .where(holds.c.contribution_id == contribution_id)
        .values(
            state="settled",
            penalty_tinybar=penalty_tinybar,
            reward_tinybar=reward_tinybar,
            settled_at_ns=now_ns,
        )
    )
    return result


def _check_non_negative(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
        raise InvalidInputError(f"{what} must be an integer in 0..{INT64_MAX}, got {value!r}")


def _replayed(row: sa.Row, result: HoldSettlement) -> HoldSettlement:
    if (row.penalty_tinybar, row.reward_tinybar) != (result.penalty_tinybar, result.reward_tinybar):
        raise IdempotencyConflictError(
            f"contribution {result.contribution_id!r} was already settled with penalty "
            f"{row.penalty_tinybar} and reward {row.reward_tinybar}"
        )
    return result


def _post_verdict(conn: sa.Connection, s: HoldSettlement, now_ns: int) -> None:
    cid, pid = s.contribution_id, s.player_id
    held = player_account(pid, AccountKind.HELD)
    if s.penalty_tinybar:
        post(
            conn,
            TransferSpec.move(
                f"penalty:{cid}", held, "treasury", s.penalty_tinybar, memo="penalty"
            ),
            now_ns=now_ns,
        )
    if s.released_tinybar:
        post(
            conn,
            TransferSpec.move(
                f"release:{cid}",
                held,
                player_account(pid, AccountKind.STAKE),
                s.released_tinybar,
                memo="release hold",
            ),
            now_ns=now_ns,
        )
    if s.reward_tinybar:
        spec = TransferSpec.move(
            f"reward:{cid}",
            "reward_budget",
            player_account(pid, AccountKind.AVAILABLE),
            s.reward_tinybar,
            memo="reward",
        )
        try:
            post(conn, spec, now_ns=now_ns)
        except InsufficientFundsError as exc:
            raise RewardBudgetExhaustedError(
                f"the reward budget cannot pay {s.reward_tinybar} tinybar for {cid!r}: "
                f"{balance(conn, 'reward_budget')} left; rewards stop until the operator funds it",
                "reward_budget",
            ) from exc
