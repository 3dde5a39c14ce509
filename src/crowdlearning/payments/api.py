"""The payments HTTP API for third parties: pay, charge, payouts, balance, history.

Each client owns one ledger account (``client:<id>``) and authenticates with an ``X-API-Key``
header (keys are stored hashed: ``ledger.clients``). Request ids are the client's idempotency keys,
namespaced per client: resending a request returns the original transfer (status 200 instead of
201); reusing an id for a different request is a 409. Domain errors map to statuses here only:

    InvalidInputError 422 · UnknownAccountError, UnknownTransferError 404 ·
    IdempotencyConflictError, InsufficientFundsError, TransferStateError 409 ·
    an unknown payout id 404 ``unknown_payout`` (a withdrawal id: ``unknown_withdrawal``) ·
    ChargeNotAuthorizedError 403 · ConcurrencyError 503 · missing or unknown key 401

Every answer is ``{"code", "detail"}``; ``http_guard`` adds 413 ``too_large`` (bodies over
``payments_api_max_body_bytes``, refused before they are parsed), 422 ``invalid_input`` for
request validation (naming fields, never echoing the input) and FastAPI's own 404 / 405. The
OpenAPI documents every status each route answers (``tests/payments/test_api_schemathesis.py``
holds it to that). Amounts are integers in 1..5*10^18 (all the HBAR there is).

Payouts (``POST /v1/payouts``) send a client's money to any Hedera account: booked at once as a
ledger payout from the client's account, settled on Hedera by the platform's settlement job in
the same batches as its own payouts; the platform's treasury pays the network fee.

Funding: a client tops up its balance by sending HBAR on Hedera to the platform's treasury
account with the memo ``client:<client id>`` (credited once, when the platform's mirror reader
sees it), and withdraws it with ``POST /v1/withdrawals``: a payout to its own Hedera account.
Both show in ``GET /v1/history`` with their ``hedera_transaction_id``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import AfterValidator, BaseModel, Field

from crowdlearning import http_guard
from crowdlearning.config import Settings, get_settings
from crowdlearning.ledger import (
    ChargeNotAuthorizedError,
    ConcurrencyError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    Ledger,
    LedgerError,
    Transfer,
    TransferSpec,
    TransferStateError,
    UnknownAccountError,
    UnknownTransferError,
    client_account,
    clients,
    open_ledger,
    player_account,
)
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.ledger.clients import (
    ClientPayout,
    authenticate,
    client_payout,
    client_withdrawal,
    hedera_transaction_ids,
    refunded_tinybar,
    request_client_payout,
    request_client_withdrawal,
)
from crowdlearning.ledger.payouts import PayoutState
from crowdlearning.security_headers import SecurityHeaders
from crowdlearning.server.schemas import HederaAccountId

__all__ = ["create_app", "router"]

_REQUEST_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
_PLAYER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,63}$"
Amount = http_guard.Tinybar


def _no_nul(text: str) -> str:
    """Any text but NUL, which PostgreSQL cannot store (SQLite can: refused on both alike)."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


Memo = Annotated[str, Field(max_length=200), AfterValidator(_no_nul)]


# --- schemas ---------------------------------------------------------------------------------
class PaymentCreate(http_guard.StrictBody):
    """Pay a player from the client's account."""

    payment_id: str = Field(pattern=_REQUEST_ID, description="Your idempotency key.")
    to_player: str = Field(pattern=_PLAYER_ID)
    amount_tinybar: Amount
    memo: Memo = ""


class ChargeCreate(http_guard.StrictBody):
    """Charge a player, crediting the client's account."""

    charge_id: str = Field(pattern=_REQUEST_ID, description="Your idempotency key.")
    from_player: str = Field(pattern=_PLAYER_ID)
    amount_tinybar: Amount
    memo: Memo = ""


class PayoutCreate(http_guard.StrictBody):
    """Pay from the client's account to any Hedera account."""

    payout_id: str = Field(pattern=_REQUEST_ID, description="Your idempotency key.")
    to_account: HederaAccountId = Field(description="The Hedera account to pay, `shard.realm.num`.")
    amount_tinybar: Amount
    memo: Memo = Field("", description="Kept in your books; not sent on chain (payouts are "
                                       "batched, one memo per Hedera transaction).")


class WithdrawalCreate(http_guard.StrictBody):
    """Withdraw from the client's balance to its own Hedera account."""

    withdrawal_id: str = Field(pattern=_REQUEST_ID, description="Your idempotency key.")
    to_account: HederaAccountId = Field(
        description="Your Hedera account, `shard.realm.num`, that receives the HBAR.")
    amount_tinybar: Amount


class WithdrawalPublic(BaseModel):
    """A withdrawal and where it is: pending, settled on Hedera, or failed (and refunded)."""

    withdrawal_id: str = Field(description="Your withdrawal id.")
    to_account: str
    amount_tinybar: int = Field(description="What leaves your balance and what your account "
                                            "receives, exactly.")
    status: Literal["pending", "settled", "failed"]
    network_fee_paid_by: Literal["platform"] = Field(
        "platform", description="The platform's treasury pays the Hedera network fee.")
    hedera_transaction_id: str | None = Field(
        None, description="The Hedera transaction that paid it (settled).")
    consensus_timestamp_ns: int | None = Field(
        None, description="Its consensus time [epoch ns], when settlement recorded one.")
    failure_reason: str | None = Field(None, description="Why it failed (failed).")
    refunded_tinybar: int = Field(0, description="What went back to your balance (failed).")
    created_at_ns: int


class PayoutPublic(BaseModel):
    """A payout and where it is: pending, settled on Hedera, or failed (and refunded)."""

    payout_id: str = Field(description="Your payout id.")
    to_account: str
    amount_tinybar: int = Field(description="What leaves your balance and what the recipient "
                                            "receives, exactly.")
    memo: str
    status: Literal["pending", "settled", "failed"]
    network_fee_paid_by: Literal["platform"] = Field(
        "platform", description="The platform's treasury pays the Hedera network fee.")
    hedera_transaction_id: str | None = Field(
        None, description="The Hedera transaction that paid it (settled).")
    consensus_timestamp_ns: int | None = Field(
        None, description="Its consensus time [epoch ns], when settlement recorded one.")
    failure_reason: str | None = Field(None, description="Why it failed (failed).")
    refunded_tinybar: int = Field(0, description="What went back to your balance (failed).")
    created_at_ns: int


class TransferPublic(BaseModel):
    """A transfer as seen from the client's account."""

    id: str = Field(description="Your request id.")
    kind: str
    amount_tinybar: int
    delta_tinybar: int = Field(description="What it moved into (+) or out of (-) your account.")
    counterparty: str
    memo: str
    created_at_ns: int
    hedera_transaction_id: str | None = Field(
        None, description="The Hedera transaction behind it, `payer@seconds.nanos`: the "
                          "transfer that funded a deposit, or the one that paid a settled "
                          "payout or withdrawal (on its pending and post transfers).")


class BalancePublic(BaseModel):
    """The client's balance."""

    client_id: str
    balance_tinybar: int


class HistoryPublic(BaseModel):
    """A page of the client's transfers, newest first."""

    items: list[TransferPublic]
    limit: int
    offset: int


ErrorPublic = http_guard.ErrorPublic  # every 4xx/5xx the API answers on purpose


# --- dependencies ----------------------------------------------------------------------------
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="Your client API key.")


class _UnauthorizedError(Exception):
    """No or an unknown API key."""


def get_ledger(request: Request) -> Ledger:
    """The ledger the app was built with."""
    return request.app.state.ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def current_client(ledger: LedgerDep, key: Annotated[str | None, Depends(_api_key)]) -> str:
    """The client id owning the request's API key."""
    client_id = ledger.run(lambda c: authenticate(c, key)) if key else None
    if client_id is None:
        raise _UnauthorizedError
    return client_id


ClientDep = Annotated[str, Depends(current_client)]


# --- routes ----------------------------------------------------------------------------------
_CODES: dict[str, tuple[int, str]] = {
    **http_guard.GUARD_CODES,
    "unauthorized": (401, "a missing or unknown `X-API-Key`"),
    "ledger_error": (400, "the books refused the transfer for another reason"),
    "charge_not_authorized": (403, "beyond the charge mandate the player granted you"),
    "unknown_account": (404, "no such player"),
    "unknown_payout": (404, "you have no payout with this id"),
    "unknown_withdrawal": (404, "you have no withdrawal with this id"),
    "idempotency_conflict": (409, "this request id was already used for another request"),
    "insufficient_funds": (409, "the paying account's balance is short"),
    "invalid_state": (409, "the transfer is in a state that does not allow this"),
    "busy": (503, "a ledger transaction kept conflicting: retry it"),
}
_MOVES = ("too_large", "invalid_input", "unauthorized", "ledger_error", "unknown_account",
          "idempotency_conflict", "insufficient_funds", "invalid_state", "busy")
_REPLAYED = {"model": TransferPublic,
             "description": "A replay of an earlier request with the same id: its transfer, "
                            "nothing moved again."}
router = APIRouter(prefix="/v1", tags=["payments"])


def _public(
    transfer: Transfer, account: str, client_id: str, hedera_tx: str | None = None
) -> TransferPublic:
    other = next(leg.account for leg in transfer.spec.legs if leg.account != account)
    prefix = f"api:{client_id}:"
    return TransferPublic(
        id=transfer.id.split(":", 2)[2] if transfer.id.startswith(prefix) else transfer.id,
        kind=transfer.spec.kind.value,
        amount_tinybar=transfer.amount_tinybar,
        delta_tinybar=transfer.leg_for(account),
        counterparty=other,
        memo=transfer.spec.memo,
        created_at_ns=transfer.created_at_ns,
        hedera_transaction_id=hedera_tx,
    )


def _replay_status(ledger: Ledger, transfer_id: str, response: Response) -> None:
    if ledger.get_transfer(transfer_id) is not None:
        response.status_code = status.HTTP_200_OK  # a replay: same transfer, nothing new


@router.post("/payments", status_code=201, response_model=TransferPublic,
             responses={200: _REPLAYED, **http_guard.documented(_CODES, *_MOVES)})
def pay(
    body: PaymentCreate, ledger: LedgerDep, client_id: ClientDep, response: Response
) -> TransferPublic:
    """Move ``amount_tinybar`` from your account to a player's available balance."""
    spec = TransferSpec.move(
        f"api:{client_id}:{body.payment_id}",
        client_account(client_id),
        player_account(body.to_player, AccountKind.AVAILABLE),
        body.amount_tinybar,
        memo=body.memo,
    )
    _replay_status(ledger, spec.id, response)
    return _public(ledger.transfer(spec), client_account(client_id), client_id)


@router.post("/charges", status_code=201, response_model=TransferPublic,
             responses={200: _REPLAYED, **http_guard.documented(
                 _CODES, *_MOVES, "charge_not_authorized")})
def charge(
    body: ChargeCreate, ledger: LedgerDep, client_id: ClientDep, response: Response
) -> TransferPublic:
    """Move ``amount_tinybar`` from a player's available balance to your account.

    Allowed only within the charge mandate the player granted you (else 403).
    """
    spec = TransferSpec.move(
        f"api:{client_id}:{body.charge_id}",
        player_account(body.from_player, AccountKind.AVAILABLE),
        client_account(client_id),
        body.amount_tinybar,
        memo=body.memo,
    )
    _replay_status(ledger, spec.id, response)
    transfer = ledger.run(
        lambda c: clients.charge(c, client_id, body.from_player, spec, now_ns=ledger.clock())
    )
    return _public(transfer, client_account(client_id), client_id)


PayoutStatus = Literal["pending", "settled", "failed"]
_STATUS_OF: dict[PayoutState, PayoutStatus] = {
    PayoutState.PENDING: "pending", PayoutState.POSTED: "settled", PayoutState.VOIDED: "failed"}


def _payout_public(found: ClientPayout, payout_id: str) -> PayoutPublic:
    payout = found.payout
    failed = payout.state is PayoutState.VOIDED
    return PayoutPublic(
        payout_id=payout_id,
        to_account=payout.destination,
        amount_tinybar=payout.amount_tinybar,
        memo=found.memo,
        status=_STATUS_OF[payout.state],
        hedera_transaction_id=found.transaction_id,
        consensus_timestamp_ns=found.consensus_ns,
        failure_reason=payout.failure if failed else None,
        refunded_tinybar=refunded_tinybar(payout),
        created_at_ns=found.created_at_ns,
    )


@router.post("/payouts", status_code=201, response_model=PayoutPublic,
             responses={200: {"model": PayoutPublic,
                              "description": "A replay of an earlier payout with the same id and "
                                             "content: that payout as it is now, nothing booked "
                                             "again."},
                        **http_guard.documented(_CODES, "too_large", "invalid_input",
                                                "unauthorized", "ledger_error",
                                                "idempotency_conflict", "insufficient_funds",
                                                "busy")})
def payout(
    body: PayoutCreate, ledger: LedgerDep, client_id: ClientDep, response: Response
) -> PayoutPublic:
    """Pay ``amount_tinybar`` from your balance to the Hedera account ``to_account``.

    Booked at once (your balance is debited); the platform settles it on Hedera exactly once,
    batched with other payouts, and pays the network fee. Follow it with
    ``GET /v1/payouts/{payout_id}``; a payout that fails is refunded to your balance.
    """
    found, created = ledger.run(
        lambda c: request_client_payout(
            c, client_id, body.payout_id, body.to_account, body.amount_tinybar,
            memo=body.memo, now_ns=ledger.clock(),
        )
    )
    if not created:
        response.status_code = status.HTTP_200_OK  # a replay: nothing booked again
    return _payout_public(found, body.payout_id)


@router.get("/payouts/{payout_id}", response_model=PayoutPublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized",
                                            "unknown_payout", "busy"))
def payout_status(
    payout_id: Annotated[str, Path(pattern=_REQUEST_ID)], ledger: LedgerDep, client_id: ClientDep
) -> PayoutPublic | JSONResponse:
    """Your payout and its status: pending, settled (Hedera transaction id and consensus time)
    or failed (reason; the amount refunded to your balance)."""
    found = ledger.run(lambda c: client_payout(c, client_id, payout_id))
    if found is None:
        return _error(404, "unknown_payout", f"you have no payout {payout_id!r}")
    return _payout_public(found, payout_id)


def _withdrawal_public(found: ClientPayout, withdrawal_id: str) -> WithdrawalPublic:
    as_payout = _payout_public(found, withdrawal_id)
    return WithdrawalPublic(withdrawal_id=withdrawal_id,
                            **as_payout.model_dump(exclude={"payout_id", "memo"}))


@router.post("/withdrawals", status_code=201, response_model=WithdrawalPublic,
             responses={200: {"model": WithdrawalPublic,
                              "description": "A replay of an earlier withdrawal with the same id "
                                             "and content: that withdrawal as it is now, nothing "
                                             "booked again."},
                        **http_guard.documented(_CODES, "too_large", "invalid_input",
                                                "unauthorized", "ledger_error",
                                                "idempotency_conflict", "insufficient_funds",
                                                "busy")})
def withdraw(
    body: WithdrawalCreate, ledger: LedgerDep, client_id: ClientDep, response: Response
) -> WithdrawalPublic:
    """Withdraw ``amount_tinybar`` from your balance to your Hedera account ``to_account``.

    A payout to your own account (see ``POST /v1/payouts``), with ids of its own: booked at once,
    settled on Hedera exactly once, the network fee paid by the platform; a withdrawal that fails
    is refunded to your balance. Fund your balance by sending HBAR to the platform's treasury
    account with the memo ``client:<your client id>``.
    """
    found, created = ledger.run(
        lambda c: request_client_withdrawal(
            c, client_id, body.withdrawal_id, body.to_account, body.amount_tinybar,
            now_ns=ledger.clock(),
        )
    )
    if not created:
        response.status_code = status.HTTP_200_OK  # a replay: nothing booked again
    return _withdrawal_public(found, body.withdrawal_id)


@router.get("/withdrawals/{withdrawal_id}", response_model=WithdrawalPublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized",
                                            "unknown_withdrawal", "busy"))
def withdrawal_status(
    withdrawal_id: Annotated[str, Path(pattern=_REQUEST_ID)],
    ledger: LedgerDep,
    client_id: ClientDep,
) -> WithdrawalPublic | JSONResponse:
    """Your withdrawal and its status: pending, settled (Hedera transaction id and consensus
    time) or failed (reason; the amount refunded to your balance)."""
    found = ledger.run(lambda c: client_withdrawal(c, client_id, withdrawal_id))
    if found is None:
        return _error(404, "unknown_withdrawal", f"you have no withdrawal {withdrawal_id!r}")
    return _withdrawal_public(found, withdrawal_id)


@router.get("/balance", response_model=BalancePublic,
            responses=http_guard.documented(_CODES, "unauthorized", "busy"))
def balance(ledger: LedgerDep, client_id: ClientDep) -> BalancePublic:
    """Your account's balance."""
    return BalancePublic(
        client_id=client_id, balance_tinybar=ledger.balance(client_account(client_id))
    )


@router.get("/history", response_model=HistoryPublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized", "busy"))
def history(
    ledger: LedgerDep,
    client_id: ClientDep,
    request: Request,
    limit: Annotated[int, Query(ge=1)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
) -> HistoryPublic:
    """Transfers touching your account, newest first (``limit`` is capped by the server)."""
    limit = min(limit, request.app.state.history_limit)
    account = client_account(client_id)
    items = ledger.history(account, limit=limit, offset=offset)
    tx_ids = ledger.run(lambda c: hedera_transaction_ids(c, client_id, items))
    return HistoryPublic(
        items=[_public(t, account, client_id, tx_ids.get(t.id)) for t in items],
        limit=limit, offset=offset,
    )


# --- errors ----------------------------------------------------------------------------------
_STATUS: list[tuple[type[Exception], int, str]] = [
    (InvalidInputError, 422, "invalid_input"),
    (UnknownAccountError, 404, "unknown_account"),
    (UnknownTransferError, 404, "unknown_transfer"),
    (ChargeNotAuthorizedError, 403, "charge_not_authorized"),
    (IdempotencyConflictError, 409, "idempotency_conflict"),
    (InsufficientFundsError, 409, "insufficient_funds"),
    (TransferStateError, 409, "invalid_state"),
    (ConcurrencyError, 503, "busy"),
    (LedgerError, 400, "ledger_error"),
]


def _error(status_code: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(ErrorPublic(code=code, detail=detail).model_dump(), status_code=status_code)


def _ledger_error(_request: Request, exc: Exception) -> JSONResponse:
    status_code, code = next((s, c) for cls, s, c in _STATUS if isinstance(exc, cls))
    return _error(status_code, code, str(exc))


def _unauthorized(_request: Request, _exc: Exception) -> JSONResponse:
    response = _error(401, "unauthorized", "missing or unknown X-API-Key")
    response.headers["WWW-Authenticate"] = "APIKey"
    return response


def create_app(ledger: Ledger | None = None, *, settings: Settings | None = None) -> FastAPI:
    """The payments API app over ``ledger`` (default: the ledger at ``settings.database_url``)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="CrowdLearning payments API",
        version="1",
        description=__doc__,
    )
    app.state.ledger = ledger or open_ledger(settings)
    app.state.history_limit = settings.payments_api_history_limit
    app.include_router(router)
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(_UnauthorizedError, _unauthorized)
    http_guard.install(app, max_body_bytes=settings.payments_api_max_body_bytes)
    app.add_middleware(SecurityHeaders)  # outermost: on the guard's 413 as well
    return app
