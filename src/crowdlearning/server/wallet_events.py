"""A player's ledger history as one line per event, in words (``GET /api/wallet/events``).

The ledger records double-entry transfers; a player has three accounts (available, stake, held),
so locking stake is two legs on the player's own accounts, and ``GET /api/wallet/history`` shows
each leg. Here each transfer is ONE event: what happened ("stake locked", "penalty for run …",
"reward for run …", "withdrawal to 0.0.x"), read from the transfer id each part of the ledger
gives its transfers (``ledger/stakes.py``, ``ledger/holds.py``, ``ledger/payouts.py``, the
wallet routes, the deposit reader, the payments API), with the amount moved and how it changed
the player's money in total (0 when it only moved between the player's own balances).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from crowdlearning.ledger.accounts import AccountKind, player_account
from crowdlearning.ledger.records import Transfer

__all__ = ["EventKind", "WalletEventPublic", "WalletEventsPublic", "describe", "short_id"]

EventKind = Literal[
    "deposit", "stake_locked", "stake_unlocked", "stake_held", "penalty", "stake_released",
    "stake_returned", "reward", "reward_sent", "withdrawal", "payout_returned",
    "payment", "charge", "other"]

PLAYER_KINDS = (AccountKind.AVAILABLE, AccountKind.STAKE, AccountKind.HELD)


class WalletEventPublic(BaseModel):
    """One thing that happened to the player's money."""

    id: str  # the ledger transfer id (unique, stable)
    kind: EventKind
    text: str  # in words, e.g. "penalty for run 3f9a1c2b"
    amount_tinybar: int  # how much moved (> 0)
    change_tinybar: int  # the player's total (available + stake + held) changed by this
    available_delta_tinybar: int
    stake_delta_tinybar: int
    held_delta_tinybar: int
    run_id: str | None = None  # the run (contribution) it concerns
    destination: str | None = None  # the Hedera account money was sent to
    created_at_ns: int


class WalletEventsPublic(BaseModel):
    items: list[WalletEventPublic]  # newest first


def short_id(run_id: str) -> str:
    """A run id as people read it: its first 8 characters after ``run-``."""
    return run_id.removeprefix("run-")[:8]


def _run_event(kind: EventKind, words: str) -> Callable[[str], tuple[EventKind, str, str]]:
    return lambda run: (kind, words.format(run=short_id(run)), run)


# transfer-id prefix -> (kind, text) given the rest of the id (a run id where there is one)
_RUN_EVENTS = {
    "hold": _run_event("stake_held", "stake held for run {run}"),
    "penalty": _run_event("penalty", "penalty for run {run}"),
    "release": _run_event("stake_released", "stake released after the verdict on run {run}"),
    "void": _run_event("stake_returned", "stake returned: run {run} was never judged"),
    "reward": _run_event("reward", "reward for run {run}"),
    # a run judged "no effect" whose round's pool improved the model (evaluation/pooled.py)
    "pool-reward": _run_event("reward", "share of the round's pool for run {run}"),
}
_SIMPLE_EVENTS: dict[str, tuple[EventKind, str]] = {
    "deposit": ("deposit", "deposit from Hedera"),
    "faucet": ("deposit", "deposit (development faucet)"),
    "stake": ("stake_locked", "stake locked"),
    "unstake": ("stake_unlocked", "stake unlocked"),
}


def describe(transfer: Transfer, player_id: str,
             destination_of: Callable[[str], str | None] = lambda _payout_id: None,
             ) -> WalletEventPublic:
    """``transfer`` (touching one of the player's accounts) as one event.

    ``destination_of(payout_id)`` names where a payout goes, for payout lines whose memo does not
    (the return of one that was not sent)."""
    deltas = {kind: transfer.leg_for(player_account(player_id, kind)) for kind in PLAYER_KINDS}
    prefix, _, rest = transfer.id.partition(":")
    run_id = destination = None
    if prefix in _RUN_EVENTS:
        kind, text, run_id = _RUN_EVENTS[prefix](rest)
    elif prefix in _SIMPLE_EVENTS:
        kind, text = _SIMPLE_EVENTS[prefix]
    elif prefix == "payout":
        kind, text, run_id, destination = _payout(transfer, rest, destination_of)
    elif prefix == "api":
        client = rest.partition(":")[0]
        incoming = deltas[AccountKind.AVAILABLE] > 0
        kind, text = (("payment", f"payment from {client}") if incoming
                      else ("charge", f"charge by {client}"))
        text += f": {transfer.spec.memo}" if transfer.spec.memo else ""
    else:
        kind, text = "other", transfer.spec.memo or transfer.id
    return WalletEventPublic(
        id=transfer.id, kind=kind, text=text, amount_tinybar=transfer.amount_tinybar,
        change_tinybar=sum(deltas.values()),
        available_delta_tinybar=deltas[AccountKind.AVAILABLE],
        stake_delta_tinybar=deltas[AccountKind.STAKE],
        held_delta_tinybar=deltas[AccountKind.HELD], run_id=run_id, destination=destination,
        created_at_ns=transfer.created_at_ns)


def _payout(transfer: Transfer, rest: str, destination_of: Callable[[str], str | None]
            ) -> tuple[EventKind, str, str | None, str | None]:
    """``payout:<payout id>`` (reserved: money leaves) or ``payout:<payout id>:void`` (not
    sent: it comes back); payout ids are ``reward:<run>``, ``reward:<run>:pool`` (a share of
    the round's pool) or ``withdraw:<player>:<hex>``."""
    returned = rest.endswith(":void")
    payout_id = rest.removesuffix(":void")
    pool = payout_id.endswith(":pool")
    memo = transfer.spec.memo
    destination = (memo.removeprefix("payout to ").strip() if memo.startswith("payout to ")
                   else destination_of(payout_id))
    to = f" to {destination}" if destination else ""
    run_id = (payout_id.removeprefix("reward:").removesuffix(":pool")
              if payout_id.startswith("reward:") else None)
    reward = "pool share" if pool else "reward"
    what = f"{reward} for run {short_id(run_id)}" if run_id else "withdrawal"
    if returned:
        return "payout_returned", f"{what}{to} not sent: back in your balance", run_id, destination
    if run_id:
        return "reward_sent", f"{reward} for run {short_id(run_id)} sent{to}", run_id, destination
    return "withdrawal", f"withdrawal{to}", None, destination
