"""The signed-in player's money: balances, history, deposit, stake, withdraw.

Only the owner reaches their wallet: every route acts on the session's user, never on an id
from the request. A deposit is HBAR sent on Hedera to ``deposit_account`` with the memo
``deposit_memo`` (both in ``GET /api/wallet``): the deposit reader (``payments.deposits``) sees
it on the mirror node within seconds and credits it, once. In development there is also a
faucet (``POST /api/wallet/deposit``): the platform gives from its treasury (so the books still
match the chain), recorded on the Hedera audit topic. Each change takes an ``Idempotency-Key``
header: a retry with the same key acts once and gets the first answer (``idempotency``).
Withdrawals become ledger payouts that the settlement job sends to the linked account. Stake held
behind paid runs (from the run's start to its verdict) is listed run by run
(``GET /api/wallet/holds``); it cannot be unlocked or withdrawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel

from crowdlearning.ledger import player_account
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.ledger.errors import LedgerError
from crowdlearning.ledger.records import Transfer
from crowdlearning.payments.deposits import MEMO_PREFIX
from crowdlearning.server.deps import CurrentUser, RuntimeDep
from crowdlearning.server.errors import (
    DevelopmentOnlyError,
    HederaLinkRequiredError,
    NotFoundError,
    documented,
)
from crowdlearning.server.idempotency import IdempotencyKey, once
from crowdlearning.server.schemas import (
    AmountCreate,
    HistoryPublic,
    RunPublic,
    TransferPublic,
    WalletPublic,
)
from crowdlearning.server.store import User
from crowdlearning.server.wallet_events import WalletEventsPublic, describe

router = APIRouter(prefix="/api/wallet", tags=["wallet"],
                   responses=documented("not_signed_in"))  # every route: the owner's only
_LISTED = documented("invalid_input")  # ?limit=
# every change: Origin check, body limit, the amount, the Idempotency-Key, the books
_CHANGE = ("bad_origin", "too_large", "invalid_input", "insufficient_funds", "conflict", "busy")


@router.get("")
def wallet(user: CurrentUser, runtime: RuntimeDep) -> WalletPublic:
    ledger = runtime.ledger
    b = ledger.player_balances(user.player_id)
    return WalletPublic(available_tinybar=b.available_tinybar, stake_tinybar=b.stake_tinybar,
                        held_tinybar=b.held_tinybar,
                        stake_minimum_tinybar=ledger.stake_minimum_tinybar,
                        paid_mode=ledger.is_paid_mode(user.player_id),
                        hedera_account=user.hedera_account,
                        deposit_account=runtime.transport.treasury_account_id,
                        deposit_memo=MEMO_PREFIX + user.player_id)


@router.get("/history", responses=_LISTED)
def history(user: CurrentUser, runtime: RuntimeDep,
            limit: int = Query(default=50, ge=1, le=200)) -> HistoryPublic:
    items = []
    for kind in (AccountKind.AVAILABLE, AccountKind.STAKE, AccountKind.HELD):
        account = player_account(user.player_id, kind)
        for t in runtime.ledger.history(account, limit=limit):
            items.append(TransferPublic(id=t.id, account=kind.value,
                                        delta_tinybar=t.leg_for(account), memo=t.spec.memo,
                                        created_at_ns=t.created_at_ns))
    items.sort(key=lambda t: t.created_at_ns, reverse=True)
    return HistoryPublic(items=items[:limit])


@router.get("/events", responses=_LISTED)
def events(user: CurrentUser, runtime: RuntimeDep,
           limit: int = Query(default=50, ge=1, le=200)) -> WalletEventsPublic:
    """The history as people read it: one event per transfer, in words (``wallet_events``)."""
    newest: dict[str, Transfer] = {}
    for kind in (AccountKind.AVAILABLE, AccountKind.STAKE, AccountKind.HELD):
        for t in runtime.ledger.history(player_account(user.player_id, kind), limit=limit):
            newest[t.id] = t
    ordered = sorted(newest.values(), key=lambda t: (t.created_at_ns, t.id), reverse=True)

    def destination_of(payout_id: str) -> str | None:
        try:
            return runtime.ledger.get_payout(payout_id).destination
        except LedgerError:
            return None

    return WalletEventsPublic(items=[describe(t, user.player_id, destination_of)
                                     for t in ordered[:limit]])


class HoldPublic(BaseModel):
    """Stake held behind one paid run until its verdict."""

    run_id: str
    amount_tinybar: int
    since_ns: int
    status: Literal["playing", "awaiting_verdict"]  # awaiting_verdict: also a run on another
    #   game server sharing this one's judge
    why: str


class HoldsPublic(BaseModel):
    held_tinybar: int
    items: list[HoldPublic]


@router.get("/holds", responses=_LISTED)
def holds(user: CurrentUser, runtime: RuntimeDep,
          limit: int = Query(default=50, ge=1, le=200)) -> HoldsPublic:
    """What the held balance is made of: one hold per paid run not judged yet."""
    live = runtime.game.live_run_ids()
    items = []
    for h in runtime.ledger.open_holds(user.player_id, limit=limit):
        playing = h.contribution_id in live
        why = ("held while you play this paid run; its verdict takes any penalty from it and "
               "releases the rest" if playing else
               "held until this paid run's verdict takes any penalty from it and releases the "
               "rest")
        items.append(HoldPublic(run_id=h.contribution_id, amount_tinybar=h.amount_tinybar,
                                since_ns=h.created_at_ns,
                                status="playing" if playing else "awaiting_verdict", why=why))
    held = runtime.ledger.player_balances(user.player_id).held_tinybar
    return HoldsPublic(held_tinybar=held, items=items)


@router.get("/runs", responses=_LISTED)
def runs(user: CurrentUser, runtime: RuntimeDep,
         limit: int = Query(default=50, ge=1, le=200)) -> list[RunPublic]:
    return [RunPublic(**{k: v for k, v in r.__dict__.items() if k != "user_id"
                         and k != "effect_bp"}, effect_pct=round(r.effect_bp / 100, 1))
            for r in runtime.store.runs_of(user.id, limit)]


@router.post("/deposit", status_code=status.HTTP_201_CREATED, response_model=WalletPublic,
             responses=documented(*_CHANGE, "development_only", "hedera_unavailable"))
def deposit(body: AmountCreate, user: CurrentUser, runtime: RuntimeDep,
            idempotency_key: IdempotencyKey = None) -> Response:
    settings = runtime.settings
    if settings.environment == "production":
        raise DevelopmentOnlyError("the faucet exists only in development; send HBAR instead")
    if body.amount_tinybar > settings.server_dev_deposit_max_tinybar:
        raise DevelopmentOnlyError(
            f"faucet deposits are at most {settings.server_dev_deposit_max_tinybar} tinybar")
    given = _faucet_given_today(runtime, user.player_id)
    if given + body.amount_tinybar > settings.server_dev_faucet_daily_tinybar:
        raise DevelopmentOnlyError(
            f"the faucet gives at most {settings.server_dev_faucet_daily_tinybar} tinybar a day "
            f"per player ({given} given in the last 24 h)")

    def act(ref: str) -> WalletPublic:
        transfer_id = f"faucet:{ref}"
        runtime.transport.publish_audit(
            f'{{"kind":"dev-deposit","player":"{user.player_id}",'
            f'"amount_tinybar":{body.amount_tinybar},"transfer":"{transfer_id}"}}'.encode())
        # a gift from the platform's own funds: no hbar entered the treasury, so none is created
        runtime.ledger.move(transfer_id, "treasury",
                            player_account(user.player_id, AccountKind.AVAILABLE),
                            body.amount_tinybar, memo="deposit (faucet)")
        return wallet(user, runtime)

    return _once(runtime, user, idempotency_key, "deposit", body, act, status.HTTP_201_CREATED)


def _faucet_given_today(runtime: RuntimeDep, player_id: str) -> int:
    """Tinybar the faucet gave ``player_id`` in the last 24 h, read from the books (so a
    restart forgets nothing)."""
    since_ns = time.time_ns() - 86_400 * 10**9
    account = player_account(player_id, AccountKind.AVAILABLE)
    return sum(t.amount_tinybar for t in runtime.ledger.history(account, limit=1000)
               if t.id.startswith("faucet:") and t.created_at_ns >= since_ns)


@router.post("/stake", response_model=WalletPublic, responses=documented(*_CHANGE))
def stake(body: AmountCreate, user: CurrentUser, runtime: RuntimeDep,
          idempotency_key: IdempotencyKey = None) -> Response:
    def act(ref: str) -> WalletPublic:
        runtime.ledger.lock_stake(f"stake:{ref}", user.player_id, body.amount_tinybar)
        return wallet(user, runtime)

    return _once(runtime, user, idempotency_key, "stake", body, act, status.HTTP_200_OK)


@router.post("/unstake", response_model=WalletPublic, responses=documented(*_CHANGE))
def unstake(body: AmountCreate, user: CurrentUser, runtime: RuntimeDep,
            idempotency_key: IdempotencyKey = None) -> Response:
    def act(ref: str) -> WalletPublic:
        runtime.ledger.unlock_stake(f"unstake:{ref}", user.player_id, body.amount_tinybar)
        return wallet(user, runtime)

    return _once(runtime, user, idempotency_key, "unstake", body, act, status.HTTP_200_OK)


class WithdrawalPublic(BaseModel):
    """A withdrawal requested: the payout the settlement job sends to the linked account."""

    payout_id: str
    state: str
    destination: str
    amount_tinybar: int


@router.post("/withdraw", status_code=status.HTTP_202_ACCEPTED, response_model=WithdrawalPublic,
             responses=documented(*_CHANGE, "hedera_link_required"))
def withdraw(body: AmountCreate, user: CurrentUser, runtime: RuntimeDep,
             idempotency_key: IdempotencyKey = None) -> Response:
    destination = _linked(user)

    def act(ref: str) -> WithdrawalPublic:
        payout = runtime.ledger.withdraw(f"withdraw:{ref}", user.player_id, destination,
                                         body.amount_tinybar)
        return WithdrawalPublic(payout_id=payout.id, state=payout.state.value,
                                destination=payout.destination,
                                amount_tinybar=payout.amount_tinybar)

    return _once(runtime, user, idempotency_key, "withdraw", body, act,
                 status.HTTP_202_ACCEPTED)


def _once(runtime: RuntimeDep, user: User, key: str | None, route: str, body: AmountCreate,
          act: Callable[[str], BaseModel], status_code: int) -> Response:
    return once(runtime.store, user, key, route, body, act, status_code=status_code,
                ttl_s=runtime.settings.server_idempotency_ttl_s)


@router.get("/payouts/{payout_id}", responses=documented("invalid_input", "not_found"))
def payout(payout_id: str, user: CurrentUser, runtime: RuntimeDep) -> dict:
    p = runtime.ledger.get_payout(payout_id)
    if p.from_account != player_account(user.player_id, AccountKind.AVAILABLE):
        raise NotFoundError(f"no payout {payout_id} of yours")
    return {"payout_id": p.id, "state": p.state.value, "transaction_id": p.settlement_tx_id,
            "amount_tinybar": p.amount_tinybar, "destination": p.destination}


def _linked(user: User) -> str:
    if user.hedera_account is None:
        raise HederaLinkRequiredError("withdrawals go to your own Hedera account: link one "
                                      "first (Wallet page, \"Link a Hedera account\")")
    return user.hedera_account
