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
the same batches as its own payouts (the service's own worker when
``payments_settle_interval_s`` > 0); the platform's treasury pays the network fee.

Webhooks (``PUT /v1/webhook``): settled and failed payouts and withdrawals and received deposits
are POSTed to the client's endpoint as signed events, at least once per event id, retried with
exponential backoff (``payments.webhooks``; the service's worker delivers them). The client reads
its events (``GET /v1/webhook/events``) and the delivery log (``GET /v1/webhook/deliveries``),
paged, and replays an event (``POST /v1/webhook/events/{event_id}/replay``).

Funding: a client tops up its balance by sending HBAR on Hedera to the platform's treasury
account with the memo ``client:<client id>`` (credited once, when the platform's mirror reader
sees it), and withdraws it with ``POST /v1/withdrawals``: a payout to its own Hedera account.
Both show in ``GET /v1/history`` with their ``hedera_transaction_id``.

Limits (per client): ``payments_client_rps`` requests per second on average with bursts of
``payments_client_burst`` (a token bucket per process), beyond which any ``/v1`` route answers 429
``rate_limited``; payouts and withdrawals booked in any rolling 24 h (failed ones not counted) up to
``payments_client_daily_payout_tinybar``, beyond which 429 ``quota_exceeded`` and nothing is
booked. Both 429s carry ``Retry-After`` (whole seconds). Operations: ``GET /healthz`` (the process
answers), ``GET /readyz`` (the database answers a trivial query, else 503 ``not_ready``),
``GET /metrics`` (Prometheus text; a bearer token, or loopback only when none is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from pydantic import AfterValidator, BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    payout_volume,
    player_account,
)
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.ledger.clients import (
    ClientPayout,
    authenticate,
    client_payout,
    client_payout_id,
    client_withdrawal,
    client_withdrawal_id,
    hedera_transaction_ids,
    refunded_tinybar,
    request_client_payout,
    request_client_withdrawal,
)
from crowdlearning.ledger.payouts import PayoutState, find_payout
from crowdlearning.ledger.schema import accounts as accounts_table
from crowdlearning.ledger.schema import api_clients as api_clients_table
from crowdlearning.ledger.schema import payouts as payouts_table
from crowdlearning.payments import webhooks
from crowdlearning.payments.worker import PaymentsWorker
from crowdlearning.security_headers import SecurityHeaders
from crowdlearning.server.schemas import HederaAccountId

__all__ = ["Metrics", "TokenBuckets", "create_app", "ops_router", "router"]

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


class _Settling(BaseModel):
    """Where money sent to a Hedera account is: pending, settled, or failed (and refunded)."""

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


class WithdrawalPublic(_Settling):
    """A withdrawal and where it is: pending, settled on Hedera, or failed (and refunded)."""

    withdrawal_id: str = Field(description="Your withdrawal id.")
    to_account: str
    amount_tinybar: int = Field(description="What leaves your balance and what your account "
                                            "receives, exactly.")


class PayoutPublic(_Settling):
    """A payout and where it is: pending, settled on Hedera, or failed (and refunded)."""

    payout_id: str = Field(description="Your payout id.")
    to_account: str
    amount_tinybar: int = Field(description="What leaves your balance and what the recipient "
                                            "receives, exactly.")
    memo: str


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


# --- limits and metrics ----------------------------------------------------------------------
class TokenBuckets:
    """A token bucket per client: ``rate`` tokens a second, at most ``burst`` saved up.

    Written here rather than taken from a library: the one installed (pyrate-limiter) answers
    "allowed or not" but not how long until the next token, which ``Retry-After`` needs, and a
    bucket is a few lines. In memory and per process: N processes allow N times the rate.
    """

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()  # sync routes run on a thread pool

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if there was one, else seconds until there is."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class Metrics:
    """The API's counters, exposed in the Prometheus text format (version 0.0.4).

    Written by hand: prometheus-client is not a dependency, and a handful of counters in that
    documented line format (``# HELP``, ``# TYPE``, ``name{label="value"} number``) needs none.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}  # (route, method, status)
        self.payouts_booked: dict[str, int] = {}  # kind -> count
        self.payouts_booked_tinybar: dict[str, int] = {}  # kind -> tinybar
        self.refusals: dict[str, int] = {}  # reason (rate_limited, quota_exceeded) -> count

    def add(self, table: dict, key: object, amount: int = 1) -> None:  # type: ignore[type-arg]
        """Add ``amount`` to ``table[key]``."""
        with self._lock:
            table[key] = table.get(key, 0) + amount

    def render(self, pending_payouts: int | None) -> str:
        """The exposition text; the pending-payouts gauge is left out when it is unknown."""
        with self._lock:
            families = [
                ("payments_http_requests_total", "counter",
                 "Requests answered, by route template, method and status.",
                 [({"route": r, "method": m, "status": s}, n)
                  for (r, m, s), n in sorted(self.requests.items())]),
                ("payments_payouts_booked_total", "counter",
                 "Payouts booked through the API, by kind (payout, withdrawal).",
                 [({"kind": k}, n) for k, n in sorted(self.payouts_booked.items())]),
                ("payments_payouts_booked_tinybar_total", "counter",
                 "Tinybar booked in payouts through the API, by kind.",
                 [({"kind": k}, n) for k, n in sorted(self.payouts_booked_tinybar.items())]),
                ("payments_limit_refusals_total", "counter",
                 "Requests refused with 429, by reason (rate_limited, quota_exceeded).",
                 [({"reason": k}, n) for k, n in sorted(self.refusals.items())]),
            ]
        if pending_payouts is not None:
            families.append(("payments_ledger_pending_payouts", "gauge",
                             "Payouts booked in the ledger and not yet settled or failed.",
                             [({}, pending_payouts)]))
        lines: list[str] = []
        for name, kind, help_text, samples in families:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
            for labels, value in samples:
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _CountRequests:
    """ASGI middleware counting answers by route template (never the raw path: bounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered: list[int] = []

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            code = str(answered[0]) if answered else "none"
            self.metrics.add(self.metrics.requests, (route, scope["method"], code))


class _LimitedError(Exception):
    """A request over one of the client's limits: 429 ``code`` with ``Retry-After``."""

    def __init__(self, code: str, retry_after_s: float, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail
        self.retry_after = max(1, math.ceil(retry_after_s))


_DAY_NS = 86_400 * 10**9


def _check_quota(conn: sa.Connection, client_id: str, ledger_id: str, amount: int,
                 limit: int, now_ns: int) -> None:
    """Refuse (``_LimitedError``) a new payout that would take the client's payouts booked in
    the last 24 h (not failed ones) past ``limit``; replays and 0 (no quota) pass. Reads the
    running per-minute counter (``ledger/payout_volume.py``), not the day's payouts."""
    if limit <= 0 or find_payout(conn, ledger_id) is not None:
        return  # no quota, or a replay / id conflict: the booking answers those
    # the client's row locked: concurrent payouts of one client are checked one after another
    account_id = conn.execute(
        sa.select(accounts_table.c.id)
        .join(api_clients_table, api_clients_table.c.account_id == accounts_table.c.id)
        .where(api_clients_table.c.id == client_id)
        .with_for_update(of=api_clients_table)).scalar()
    if account_id is None:
        return  # no such client: the booking answers that
    used = payout_volume.volume_since(conn, account_id, now_ns)
    if used + amount <= limit:
        return
    if amount > limit:
        raise _LimitedError("quota_exceeded", 86_400,
                            f"{amount} tinybar is more than your daily payout quota ({limit})")
    refill = payout_volume.refill_at_ns(conn, account_id, used + amount - limit, now_ns)
    wait_ns = _DAY_NS if refill is None else refill - now_ns
    raise _LimitedError("quota_exceeded", wait_ns / 1e9,
                        f"payouts booked in the last 24 h: {used} of {limit} tinybar; "
                        f"{amount} more does not fit")


def _limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, _LimitedError)
    metrics: Metrics = request.app.state.metrics
    metrics.add(metrics.refusals, exc.code)
    return http_guard.error_response(429, exc.code, exc.detail,
                                     headers={"Retry-After": str(exc.retry_after)})


# --- dependencies ----------------------------------------------------------------------------
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="Your client API key.")


class _UnauthorizedError(Exception):
    """No or an unknown API key."""


def get_ledger(request: Request) -> Ledger:
    """The ledger the app was built with."""
    return request.app.state.ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def current_client(
    request: Request, ledger: LedgerDep, key: Annotated[str | None, Depends(_api_key)]
) -> str:
    """The client id owning the request's API key, once within its request rate (else 429)."""
    client_id = ledger.run(lambda c: authenticate(c, key)) if key else None
    if client_id is None:
        raise _UnauthorizedError
    wait_s = request.app.state.rate_limits.take(client_id)
    if wait_s > 0:
        raise _LimitedError("rate_limited", wait_s,
                            f"over {request.app.state.rate_limits.rate:g} requests per second")
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
    "rate_limited": (429, "over your request rate (`payments_client_rps`, bursts of "
                          "`payments_client_burst`): retry after `Retry-After` seconds"),
    "quota_exceeded": (429, "over your daily payout volume (payouts and withdrawals booked in "
                            "the last 24 h): nothing booked; `Retry-After` says when it fits"),
}
_MOVES = ("too_large", "invalid_input", "unauthorized", "ledger_error", "unknown_account",
          "idempotency_conflict", "insufficient_funds", "invalid_state", "busy", "rate_limited")
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


class MandatePublic(BaseModel):
    """What a player allows you to charge (granted on the consent page, docs/payments-consent.md).
    """

    player_id: str
    status: Literal["active", "revoked"]
    allowance_tinybar: int = Field(description="How much more you may charge (0 when revoked).")
    spent_tinybar: int = Field(description="What you charged this player so far.")
    granted_at_ns: int = Field(description="The player's last grant, change or revocation.")


_CODES["unknown_mandate"] = (404, "this player granted you no charge mandate")


@router.get("/mandates/{player_id}", response_model=MandatePublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized",
                                            "unknown_mandate", "busy", "rate_limited"))
def mandate(
    player_id: Annotated[str, Path(pattern=_PLAYER_ID)], ledger: LedgerDep, client_id: ClientDep
) -> MandatePublic | JSONResponse:
    """The charge mandate a player granted you: whether it is active, how much you may still
    charge and how much you did (read it before charging, or after the player comes back from
    the consent page)."""
    found = ledger.run(lambda c: clients.find_mandate(c, player_id, client_id))
    if found is None:
        return _error(404, "unknown_mandate", f"player {player_id!r} granted you no mandate")
    return MandatePublic(player_id=player_id,
                         status="revoked" if found.revoked else "active",
                         allowance_tinybar=0 if found.revoked else found.allowance_tinybar,
                         spent_tinybar=found.spent_tinybar, granted_at_ns=found.granted_at_ns)


def _count_booked(request: Request, kind: str, amount: int, created: bool) -> None:
    if created:
        metrics: Metrics = request.app.state.metrics
        metrics.add(metrics.payouts_booked, kind)
        metrics.add(metrics.payouts_booked_tinybar, kind, amount)


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
                                                "busy", "rate_limited", "quota_exceeded")})
def payout(
    body: PayoutCreate, ledger: LedgerDep, client_id: ClientDep, response: Response,
    request: Request,
) -> PayoutPublic:
    """Pay ``amount_tinybar`` from your balance to the Hedera account ``to_account``.

    Booked at once (your balance is debited); the platform settles it on Hedera exactly once,
    batched with other payouts, and pays the network fee. Follow it with
    ``GET /v1/payouts/{payout_id}``; a payout that fails is refunded to your balance.
    """
    limit = request.app.state.daily_payout_tinybar

    def book(c: sa.Connection) -> tuple[ClientPayout, bool]:
        now_ns = ledger.clock()
        _check_quota(c, client_id, client_payout_id(client_id, body.payout_id),
                     body.amount_tinybar, limit, now_ns)
        return request_client_payout(c, client_id, body.payout_id, body.to_account,
                                     body.amount_tinybar, memo=body.memo, now_ns=now_ns)

    found, created = ledger.run(book)
    _count_booked(request, "payout", body.amount_tinybar, created)
    if not created:
        response.status_code = status.HTTP_200_OK  # a replay: nothing booked again
    return _payout_public(found, body.payout_id)


@router.get("/payouts/{payout_id}", response_model=PayoutPublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized",
                                            "unknown_payout", "busy", "rate_limited"))
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
                                                "busy", "rate_limited", "quota_exceeded")})
def withdraw(
    body: WithdrawalCreate, ledger: LedgerDep, client_id: ClientDep, response: Response,
    request: Request,
) -> WithdrawalPublic:
    """Withdraw ``amount_tinybar`` from your balance to your Hedera account ``to_account``.

    A payout to your own account (see ``POST /v1/payouts``), with ids of its own: booked at once,
    settled on Hedera exactly once, the network fee paid by the platform; a withdrawal that fails
    is refunded to your balance. Fund your balance by sending HBAR to the platform's treasury
    account with the memo ``client:<your client id>``.
    """
    limit = request.app.state.daily_payout_tinybar

    def book(c: sa.Connection) -> tuple[ClientPayout, bool]:
        now_ns = ledger.clock()
        _check_quota(c, client_id, client_withdrawal_id(client_id, body.withdrawal_id),
                     body.amount_tinybar, limit, now_ns)
        return request_client_withdrawal(c, client_id, body.withdrawal_id, body.to_account,
                                         body.amount_tinybar, now_ns=now_ns)

    found, created = ledger.run(book)
    _count_booked(request, "withdrawal", body.amount_tinybar, created)
    if not created:
        response.status_code = status.HTTP_200_OK  # a replay: nothing booked again
    return _withdrawal_public(found, body.withdrawal_id)


@router.get("/withdrawals/{withdrawal_id}", response_model=WithdrawalPublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized",
                                            "unknown_withdrawal", "busy", "rate_limited"))
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
            responses=http_guard.documented(_CODES, "unauthorized", "busy", "rate_limited"))
def balance(ledger: LedgerDep, client_id: ClientDep) -> BalancePublic:
    """Your account's balance."""
    return BalancePublic(
        client_id=client_id, balance_tinybar=ledger.balance(client_account(client_id))
    )


@router.get("/history", response_model=HistoryPublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized", "busy",
                                            "rate_limited"))
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


# --- webhooks --------------------------------------------------------------------------------
class WebhookSet(http_guard.StrictBody):
    """Where to deliver your events."""

    url: str = Field(max_length=2048, pattern=webhooks.URL_PATTERN,
                     description="An `https://` URL (or `http://127.0.0.1[:port]/...` in "
                                 "development) that receives the events as signed POSTs.")


class WebhookPublic(BaseModel):
    """Your webhook endpoint."""

    url: str
    created_at_ns: int


class WebhookCreated(WebhookPublic):
    """Your webhook endpoint and its signing secret, shown this once."""

    secret: str = Field(description="The HMAC-SHA256 key of the `CrowdLearning-Signature` "
                                    "header: shown only in this answer; a new PUT replaces it.")


class DeliveryPublic(BaseModel):
    """One attempt to deliver an event to your endpoint."""

    event_id: str
    event_type: str
    url: str
    attempt: int
    ok: bool = Field(description="Your endpoint answered 2xx.")
    status_code: int | None = Field(None, description="Its HTTP status, if it answered.")
    error: str | None = None
    attempted_at_ns: int


class EventPublic(BaseModel):
    """One of your events and where its delivery is."""

    id: str = Field(description="The event id: the same on every delivery, de-duplicate on it.")
    type: str = Field(description="`payout.settled`, `payout.failed` or `deposit.received`.")
    state: Literal["pending", "delivered", "failed"] = Field(
        description="Delivered (your endpoint answered 2xx), pending (being retried with "
                    "backoff) or failed (every attempt failed: replay it).")
    attempts: int = Field(description="Attempts since it was recorded or last replayed.")
    next_attempt_ns: int
    created_at_ns: int
    delivered_at_ns: int | None = None


class EventsPublic(BaseModel):
    """A page of your events, newest first."""

    items: list[EventPublic]
    limit: int
    offset: int


class DeliveriesPublic(BaseModel):
    """A page of delivery attempts, newest first."""

    items: list[DeliveryPublic]
    limit: int
    offset: int


_CODES["no_webhook"] = (404, "you have no webhook endpoint registered")
_CODES["unknown_event"] = (404, "you have no event with this id")
_EVENT_ID = r"^evt_[0-9a-f]{40}$"


class _SharedPathRoute(APIRoute):
    """A route whose 405 names every method of its path (Starlette names only its own)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            allowed = sorted(m for r in _webhook_router.routes if isinstance(r, APIRoute)
                             and r.path_format == self.path_format.removeprefix("/v1")
                             for m in r.methods)
            raise StarletteHTTPException(405, headers={"Allow": ", ".join(allowed)})
        await super().handle(scope, receive, send)


_webhook_router = APIRouter(route_class=_SharedPathRoute)


@_webhook_router.put("/webhook", response_model=WebhookCreated,
            responses=http_guard.documented(_CODES, "too_large", "invalid_input", "unauthorized",
                                            "busy", "rate_limited"))
def set_webhook(body: WebhookSet, ledger: LedgerDep, client_id: ClientDep) -> WebhookCreated:
    """Register (or replace) your webhook endpoint; the answer carries its secret, shown once.

    Events (``payout.settled``, ``payout.failed``, ``deposit.received``) are POSTed as JSON
    ``{id, type, created_at_ns, data}`` with ``CrowdLearning-Signature: t=<unix s>,v1=<hex>``
    (HMAC-SHA256 of ``"<t>." + body`` with the secret); answer 2xx, else it is retried with
    backoff. Delivery is at least once: de-duplicate by the event ``id``."""
    now_ns = ledger.clock()
    secret = ledger.run(lambda c: webhooks.set_endpoint(c, client_id, body.url, now_ns=now_ns))
    return WebhookCreated(url=body.url, created_at_ns=now_ns, secret=secret)


@_webhook_router.get("/webhook", response_model=WebhookPublic,
            responses=http_guard.documented(_CODES, "unauthorized", "no_webhook", "busy",
                                            "rate_limited"))
def get_webhook(ledger: LedgerDep, client_id: ClientDep) -> WebhookPublic | JSONResponse:
    """Your webhook endpoint (never its secret)."""
    found = ledger.run(lambda c: webhooks.get_endpoint(c, client_id))
    if found is None:
        return _error(404, "no_webhook", "you have no webhook endpoint")
    return WebhookPublic(url=found.url, created_at_ns=found.created_at_ns)


@_webhook_router.delete("/webhook", status_code=204, response_class=Response,
               responses=http_guard.documented(_CODES, "unauthorized", "no_webhook", "busy",
                                               "rate_limited"))
def delete_webhook(ledger: LedgerDep, client_id: ClientDep) -> Response:
    """Remove your webhook endpoint; events are kept and delivered once you register again."""
    if not ledger.run(lambda c: webhooks.delete_endpoint(c, client_id)):
        return _error(404, "no_webhook", "you have no webhook endpoint")
    return Response(status_code=204)


@_webhook_router.get("/webhook/deliveries", response_model=DeliveriesPublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized", "busy",
                                            "rate_limited"))
def webhook_deliveries(
    ledger: LedgerDep,
    client_id: ClientDep,
    request: Request,
    limit: Annotated[int, Query(ge=1)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
    event_id: Annotated[str | None, Query(pattern=_EVENT_ID)] = None,
) -> DeliveriesPublic:
    """Attempts to deliver your events (of one event with ``event_id``), newest first
    (``limit`` is capped by the server; page with ``offset``)."""
    limit = min(limit, request.app.state.history_limit)
    found = ledger.run(lambda c: webhooks.list_deliveries(c, client_id, limit=limit,
                                                          offset=offset, event_id=event_id))
    return DeliveriesPublic(items=[DeliveryPublic(**vars(d)) for d in found],
                            limit=limit, offset=offset)


@_webhook_router.get("/webhook/events", response_model=EventsPublic,
            responses=http_guard.documented(_CODES, "invalid_input", "unauthorized", "busy",
                                            "rate_limited"))
def webhook_events(
    ledger: LedgerDep,
    client_id: ClientDep,
    request: Request,
    limit: Annotated[int, Query(ge=1)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**6)] = 0,
    state: Literal["pending", "delivered", "failed"] | None = None,
) -> EventsPublic:
    """Your events (those in ``state``, if given), newest first: recorded for every settled or
    failed payout or withdrawal and every deposit, delivered once you have an endpoint."""
    limit = min(limit, request.app.state.history_limit)
    found = ledger.run(lambda c: webhooks.list_events(c, client_id, limit=limit, offset=offset,
                                                      state=state))
    return EventsPublic(items=[EventPublic(**vars(e)) for e in found], limit=limit,
                        offset=offset)


@_webhook_router.post("/webhook/events/{event_id}/replay", status_code=202,
                      response_model=EventPublic,
                      responses=http_guard.documented(_CODES, "invalid_input", "unauthorized",
                                                      "unknown_event", "busy", "rate_limited"))
def replay_webhook_event(
    event_id: Annotated[str, Path(pattern=_EVENT_ID)],
    ledger: LedgerDep,
    client_id: ClientDep,
    request: Request,
) -> EventPublic | JSONResponse:
    """Deliver one of your events again: queued now with a fresh attempt budget, whatever its
    state (a failed one, or one delivered that you lost). The same id and body: your
    de-duplication by event id still holds."""
    now_ns = ledger.clock()

    def replay(c: sa.Connection) -> list[webhooks.EventSummary]:
        if not webhooks.replay_event(c, client_id, event_id, now_ns=now_ns):
            return []
        return webhooks.list_events(c, client_id, limit=1, offset=0, event_id=event_id)

    found = ledger.run(replay)
    if not found:
        return _error(404, "unknown_event", f"you have no event {event_id!r}")
    worker = request.app.state.worker
    if worker is not None:
        worker.wake()
    return EventPublic(**vars(found[0]))


router.include_router(_webhook_router)


# --- operations: health, readiness, metrics --------------------------------------------------
class HealthPublic(BaseModel):
    """The process answers (``/healthz``) or is ready to serve (``/readyz``)."""

    status: Literal["ok", "ready"]


_OPS_CODES: dict[str, tuple[int, str]] = {
    "unauthorized": (401, "`payments_metrics_token` is set and the request's `Authorization: "
                          "Bearer` token is missing or another"),
    "forbidden": (403, "no `payments_metrics_token` is set and the request is not from loopback"),
    "not_ready": (503, "the database did not answer a trivial query"),
}
_LOOPBACK = frozenset({"127.0.0.1", "::1"})
ops_router = APIRouter(tags=["operations"])


@ops_router.get("/healthz", response_model=HealthPublic)
def healthz() -> HealthPublic:
    """The process is alive and answering (no authentication, touches nothing)."""
    return HealthPublic(status="ok")


@ops_router.get("/readyz", response_model=HealthPublic,
                responses=http_guard.documented(_OPS_CODES, "not_ready"))
def readyz(ledger: LedgerDep) -> HealthPublic | JSONResponse:
    """Ready to serve: the database answers ``SELECT 1`` (no authentication)."""
    try:
        with ledger.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means not ready
        return _error(503, "not_ready", f"database unreachable: {type(exc).__name__}")
    return HealthPublic(status="ready")


def _pending_payouts(ledger: Ledger) -> int | None:
    try:
        with ledger.engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(payouts_table)
                .where(payouts_table.c.state == PayoutState.PENDING.value)).scalar_one())
    except Exception:  # the database is down: the gauge is left out, the counters still answer
        return None


def _as_json(responses: dict[int | str, dict]) -> dict[int | str, dict]:  # type: ignore[type-arg]
    """Error responses of a text route: their body is JSON, not the route's text/plain."""
    ref = {"$ref": "#/components/schemas/ErrorPublic"}
    return {status_code: {**{k: v for k, v in entry.items() if k != "model"},
                          "content": {"application/json": {"schema": ref}}}
            for status_code, entry in responses.items()}


@ops_router.get("/metrics", response_class=PlainTextResponse,
                responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                 "description": "Prometheus text exposition format 0.0.4."},
                           **_as_json(http_guard.documented(_OPS_CODES, "unauthorized",
                                                            "forbidden"))})
def metrics(request: Request, ledger: LedgerDep) -> Response:
    """The service's counters in Prometheus text format: requests by route and status, payouts
    booked, 429 refusals, and the ledger's pending payouts (a gauge)."""
    token: str = request.app.state.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "unauthorized", "missing or wrong metrics bearer token")
    elif request.client is None or request.client.host not in _LOOPBACK:
        return _error(403, "forbidden", "metrics are served to loopback only (no token set)")
    text = request.app.state.metrics.render(_pending_payouts(ledger))
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


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


def create_app(ledger: Ledger | None = None, *, settings: Settings | None = None,
               worker: PaymentsWorker | None = None) -> FastAPI:
    """The payments API app over ``ledger`` (default: the ledger at
    ``settings.payments_database_url``, or ``database_url`` when that is empty).

    ``worker`` (settlement and webhook delivery, ``payments.worker``) is started with the app's
    lifespan and stopped at its shutdown; ``crowdlearning payments serve`` passes one."""
    settings = settings or get_settings()
    if ledger is None and settings.payments_database_url:
        ledger = open_ledger(settings.model_copy(
            update={"database_url": settings.payments_database_url}))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)

    app = FastAPI(
        title="CrowdLearning payments API",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )
    app.state.worker = worker
    app.state.ledger = ledger or open_ledger(settings)
    app.state.history_limit = settings.payments_api_history_limit
    app.state.rate_limits = TokenBuckets(settings.payments_client_rps,
                                         settings.payments_client_burst)
    app.state.daily_payout_tinybar = settings.payments_client_daily_payout_tinybar
    app.state.metrics = Metrics()
    app.state.metrics_token = settings.payments_metrics_token.get_secret_value()
    app.include_router(router)
    app.include_router(ops_router)
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(_UnauthorizedError, _unauthorized)
    app.add_exception_handler(_LimitedError, _limited)
    http_guard.install(app, max_body_bytes=settings.payments_api_max_body_bytes)
    app.add_middleware(_CountRequests, metrics=app.state.metrics)  # counts the guard's 413 too
    app.add_middleware(SecurityHeaders)  # outermost: on the guard's 413 as well
    return app
