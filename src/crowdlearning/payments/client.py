"""A small typed Python client for the payments API (``crowdlearning payments serve``).

Sync (:class:`PaymentsClient`, over ``httpx.Client``) and async (:class:`AsyncPaymentsClient`,
over ``httpx.AsyncClient``), same methods::

    from crowdlearning.payments.client import PaymentsClient

    with PaymentsClient("http://127.0.0.1:8001", api_key) as api:
        api.balance()                                   # {"client_id", "balance_tinybar"}
        p = api.create_payout("0.0.1234", 5_000_000)    # payout_id generated once
        api.wait_for_payout(p["payout_id"], timeout_s=60)

Retries: a connection error (nothing or maybe something reached the server), 429 and 503 are
retried with exponential backoff (``Retry-After`` honoured when the server sends one; one longer
than ``RetryPolicy.max_s``, e.g. a daily quota, is raised at once), at most ``retries`` times.
Every retry sends the *same* body, so the same idempotency id
(``payout_id``, ``withdrawal_id``, ``payment_id``, ``charge_id``): the service books it once and
answers a replay with 200 and the original. Leave the id out and the client generates one
(``uuid4``) once per call and reuses it on that call's retries; pass your own (e.g. your order
id) to stay idempotent across *your* process restarts too.

Errors: every refusal is a :class:`PaymentsError` carrying ``status`` (HTTP status, ``None``
when the server could not be reached), ``code`` and ``detail`` (the service's error body
``{code, detail}``; ``code`` is ``"unavailable"`` when the retries ran out without an answer,
``"http_<status>"`` when the answer was not in the error shape).

Amounts are integer tinybars (1 HBAR = 100,000,000 tinybar) everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import httpx

__all__ = [
    "AsyncPaymentsClient",
    "Balance",
    "History",
    "HistoryItem",
    "Mandate",
    "PaymentsClient",
    "PaymentsError",
    "Payout",
    "RetryPolicy",
    "SignatureError",
    "Transfer",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
    "Withdrawal",
    "sign_payload",
    "verify_signature",
]

PayoutStatus = Literal["pending", "settled", "failed"]
RETRY_STATUSES = frozenset({429, 503})


class Balance(TypedDict):
    client_id: str
    balance_tinybar: int


class Mandate(TypedDict):
    """What a player allows you to charge (``GET /v1/mandates/{player_id}``)."""

    player_id: str
    status: str  # active | revoked
    allowance_tinybar: int
    spent_tinybar: int
    granted_at_ns: int


class Transfer(TypedDict):
    """A payment or charge as the service answers it (also a history item)."""

    id: str
    kind: str
    amount_tinybar: int
    delta_tinybar: int
    counterparty: str
    memo: str
    created_at_ns: int
    hedera_transaction_id: str | None


HistoryItem = Transfer


class History(TypedDict):
    items: list[Transfer]
    limit: int
    offset: int


class Payout(TypedDict):
    payout_id: str
    to_account: str
    amount_tinybar: int
    memo: str
    status: PayoutStatus
    hedera_transaction_id: str | None
    consensus_timestamp_ns: int | None
    failure_reason: str | None
    refunded_tinybar: int
    created_at_ns: int


class Withdrawal(TypedDict):
    withdrawal_id: str
    to_account: str
    amount_tinybar: int
    status: PayoutStatus
    hedera_transaction_id: str | None
    consensus_timestamp_ns: int | None
    failure_reason: str | None
    refunded_tinybar: int
    created_at_ns: int


class Webhook(TypedDict, total=False):
    url: str
    created_at_ns: int
    secret: str  # only in the answer to set_webhook


class WebhookEvent(TypedDict):
    id: str
    type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_ns: int
    created_at_ns: int
    delivered_at_ns: int | None


class WebhookDelivery(TypedDict):
    event_id: str
    event_type: str
    url: str
    attempt: int
    ok: bool
    status_code: int | None
    error: str | None
    attempted_at_ns: int


def _page(limit: int, offset: int, **more: str | None) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, **{k: v for k, v in more.items() if v is not None}}


class PaymentsError(Exception):
    """The service refused a request, or could not be reached after the retries."""

    def __init__(self, status: int | None, code: str, detail: str) -> None:
        super().__init__(f"{status or 'no answer'} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` more attempts after the first, sleeping ``base_s * 2**n`` (at most
    ``max_s``); a ``Retry-After`` header wins, and one beyond ``max_s`` (e.g. a daily quota)
    is not waited for: the 429 is raised at once for the caller to decide."""

    retries: int = 4
    base_s: float = 0.25
    max_s: float = 8.0

    def delay(self, attempt: int, retry_after: str | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; ``None``: do not retry."""
        if retry_after is not None:
            try:
                wait = max(float(retry_after), 0.0)
            except ValueError:
                wait = None  # an HTTP date: fall back on the backoff
            if wait is not None:
                return wait if wait <= self.max_s else None
        return min(self.base_s * 2**attempt, self.max_s)


def _new_id() -> str:
    return uuid.uuid4().hex  # 32 characters: within the service's 64-character request ids


def _error_of(response: httpx.Response) -> PaymentsError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return PaymentsError(response.status_code, body["code"], str(body.get("detail", "")))
    return PaymentsError(response.status_code, f"http_{response.status_code}",
                         response.text[:500])


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    json: Mapping[str, Any] | None = None
    params: Mapping[str, Any] | None = None


def _payout_body(to_account: str, amount_tinybar: int, memo: str, payout_id: str | None
                 ) -> dict[str, Any]:
    return {"payout_id": payout_id or _new_id(), "to_account": to_account,
            "amount_tinybar": amount_tinybar, "memo": memo}


def _withdrawal_body(to_account: str, amount_tinybar: int, withdrawal_id: str | None
                     ) -> dict[str, Any]:
    return {"withdrawal_id": withdrawal_id or _new_id(), "to_account": to_account,
            "amount_tinybar": amount_tinybar}


class PaymentsClient:
    """The payments API over ``httpx.Client`` (thread-safe as httpx is; close it when done)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                  headers={"X-API-Key": api_key}, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PaymentsClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _send(self, call: _Call) -> Any:
        for attempt in range(self.retry.retries + 1):
            last = attempt == self.retry.retries
            try:
                response = self._http.request(call.method, call.path, json=call.json,
                                              params=call.params)
            except httpx.TransportError as exc:
                if last:
                    raise PaymentsError(None, "unavailable", f"{type(exc).__name__}: {exc}"
                                        ) from exc
                self._sleep(min(self.retry.base_s * 2**attempt, self.retry.max_s))
                continue
            wait = self.retry.delay(attempt, response.headers.get("Retry-After"))
            if response.status_code in RETRY_STATUSES and not last and wait is not None:
                self._sleep(wait)
                continue
            if response.is_success:
                return response.json()
            raise _error_of(response)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the API ------------------------------------------------------------------------------
    def balance(self) -> Balance:
        """Your balance: ``GET /v1/balance``."""
        return self._send(_Call("GET", "/v1/balance"))

    def history(self, *, limit: int = 50, offset: int = 0) -> History:
        """Transfers touching your account, newest first: ``GET /v1/history``."""
        return self._send(_Call("GET", "/v1/history", params={"limit": limit, "offset": offset}))

    def pay(self, to_player: str, amount_tinybar: int, *, memo: str = "",
            payment_id: str | None = None) -> Transfer:
        """Pay a player of the platform from your balance: ``POST /v1/payments``."""
        return self._send(_Call("POST", "/v1/payments", json={
            "payment_id": payment_id or _new_id(), "to_player": to_player,
            "amount_tinybar": amount_tinybar, "memo": memo}))

    def charge(self, from_player: str, amount_tinybar: int, *, memo: str = "",
               charge_id: str | None = None) -> Transfer:
        """Charge a player within their mandate: ``POST /v1/charges``."""
        return self._send(_Call("POST", "/v1/charges", json={
            "charge_id": charge_id or _new_id(), "from_player": from_player,
            "amount_tinybar": amount_tinybar, "memo": memo}))

    def mandate(self, player_id: str) -> Mandate:
        """What ``player_id`` allows you to charge: ``GET /v1/mandates/{player_id}``."""
        return self._send(_Call("GET", f"/v1/mandates/{player_id}"))

    def create_payout(self, to_account: str, amount_tinybar: int, *, memo: str = "",
                      payout_id: str | None = None) -> Payout:
        """Pay any Hedera account from your balance: ``POST /v1/payouts`` (booked at once,
        settled on Hedera by the platform). The answer's ``payout_id`` is the one to follow."""
        body = _payout_body(to_account, amount_tinybar, memo, payout_id)
        return self._send(_Call("POST", "/v1/payouts", json=body))

    def get_payout(self, payout_id: str) -> Payout:
        """``GET /v1/payouts/{payout_id}``: status ``pending``, ``settled`` or ``failed``."""
        return self._send(_Call("GET", f"/v1/payouts/{payout_id}"))

    def wait_for_payout(self, payout_id: str, *, timeout_s: float = 60.0,
                        poll_s: float = 1.0) -> Payout:
        """Poll until the payout is ``settled`` or ``failed``; the last answer at ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (payout := self.get_payout(payout_id))["status"] == "pending":
            if time.monotonic() >= deadline:
                break
            self._sleep(poll_s)
        return payout

    def create_withdrawal(self, to_account: str, amount_tinybar: int, *,
                          withdrawal_id: str | None = None) -> Withdrawal:
        """Withdraw your balance to your own Hedera account: ``POST /v1/withdrawals``."""
        body = _withdrawal_body(to_account, amount_tinybar, withdrawal_id)
        return self._send(_Call("POST", "/v1/withdrawals", json=body))

    def get_withdrawal(self, withdrawal_id: str) -> Withdrawal:
        """``GET /v1/withdrawals/{withdrawal_id}``."""
        return self._send(_Call("GET", f"/v1/withdrawals/{withdrawal_id}"))

    def set_webhook(self, url: str) -> Webhook:
        """Register (or replace) your endpoint: ``PUT /v1/webhook``; the answer's ``secret``
        (shown once) is what :func:`verify_signature` checks deliveries with."""
        return self._send(_Call("PUT", "/v1/webhook", json={"url": url}))

    def webhook_events(self, *, limit: int = 50, offset: int = 0, state: str | None = None
                       ) -> list[WebhookEvent]:
        """Your events, newest first: ``GET /v1/webhook/events``."""
        return self._send(_Call("GET", "/v1/webhook/events",
                                params=_page(limit, offset, state=state)))["items"]

    def webhook_deliveries(self, *, limit: int = 50, offset: int = 0,
                           event_id: str | None = None) -> list[WebhookDelivery]:
        """Delivery attempts, newest first: ``GET /v1/webhook/deliveries``."""
        return self._send(_Call("GET", "/v1/webhook/deliveries",
                                params=_page(limit, offset, event_id=event_id)))["items"]

    def replay_webhook_event(self, event_id: str) -> WebhookEvent:
        """Deliver an event again: ``POST /v1/webhook/events/{event_id}/replay``."""
        return self._send(_Call("POST", f"/v1/webhook/events/{event_id}/replay"))


class AsyncPaymentsClient:
    """The payments API over ``httpx.AsyncClient``: :class:`PaymentsClient`'s methods, awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                       headers={"X-API-Key": api_key}, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncPaymentsClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _send(self, call: _Call) -> Any:
        for attempt in range(self.retry.retries + 1):
            last = attempt == self.retry.retries
            try:
                response = await self._http.request(call.method, call.path, json=call.json,
                                                    params=call.params)
            except httpx.TransportError as exc:
                if last:
                    raise PaymentsError(None, "unavailable", f"{type(exc).__name__}: {exc}"
                                        ) from exc
                await self._sleep(min(self.retry.base_s * 2**attempt, self.retry.max_s))
                continue
            wait = self.retry.delay(attempt, response.headers.get("Retry-After"))
            if response.status_code in RETRY_STATUSES and not last and wait is not None:
                await self._sleep(wait)
                continue
            if response.is_success:
                return response.json()
            raise _error_of(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def balance(self) -> Balance:
        return await self._send(_Call("GET", "/v1/balance"))

    async def mandate(self, player_id: str) -> Mandate:
        return await self._send(_Call("GET", f"/v1/mandates/{player_id}"))

    async def history(self, *, limit: int = 50, offset: int = 0) -> History:
        return await self._send(_Call("GET", "/v1/history",
                                      params={"limit": limit, "offset": offset}))

    async def pay(self, to_player: str, amount_tinybar: int, *, memo: str = "",
                  payment_id: str | None = None) -> Transfer:
        return await self._send(_Call("POST", "/v1/payments", json={
            "payment_id": payment_id or _new_id(), "to_player": to_player,
            "amount_tinybar": amount_tinybar, "memo": memo}))

    async def charge(self, from_player: str, amount_tinybar: int, *, memo: str = "",
                     charge_id: str | None = None) -> Transfer:
        return await self._send(_Call("POST", "/v1/charges", json={
            "charge_id": charge_id or _new_id(), "from_player": from_player,
            "amount_tinybar": amount_tinybar, "memo": memo}))

    async def create_payout(self, to_account: str, amount_tinybar: int, *, memo: str = "",
                            payout_id: str | None = None) -> Payout:
        body = _payout_body(to_account, amount_tinybar, memo, payout_id)
        return await self._send(_Call("POST", "/v1/payouts", json=body))

    async def get_payout(self, payout_id: str) -> Payout:
        return await self._send(_Call("GET", f"/v1/payouts/{payout_id}"))

    async def wait_for_payout(self, payout_id: str, *, timeout_s: float = 60.0,
                              poll_s: float = 1.0) -> Payout:
        deadline = time.monotonic() + timeout_s
        while (payout := await self.get_payout(payout_id))["status"] == "pending":
            if time.monotonic() >= deadline:
                break
            await self._sleep(poll_s)
        return payout

    async def create_withdrawal(self, to_account: str, amount_tinybar: int, *,
                                withdrawal_id: str | None = None) -> Withdrawal:
        body = _withdrawal_body(to_account, amount_tinybar, withdrawal_id)
        return await self._send(_Call("POST", "/v1/withdrawals", json=body))

    async def get_withdrawal(self, withdrawal_id: str) -> Withdrawal:
        return await self._send(_Call("GET", f"/v1/withdrawals/{withdrawal_id}"))

    async def set_webhook(self, url: str) -> Webhook:
        return await self._send(_Call("PUT", "/v1/webhook", json={"url": url}))

    async def webhook_events(self, *, limit: int = 50, offset: int = 0,
                             state: str | None = None) -> list[WebhookEvent]:
        return (await self._send(_Call("GET", "/v1/webhook/events",
                                       params=_page(limit, offset, state=state))))["items"]

    async def webhook_deliveries(self, *, limit: int = 50, offset: int = 0,
                                 event_id: str | None = None) -> list[WebhookDelivery]:
        return (await self._send(_Call("GET", "/v1/webhook/deliveries",
                                       params=_page(limit, offset, event_id=event_id))))["items"]

    async def replay_webhook_event(self, event_id: str) -> WebhookEvent:
        return await self._send(_Call("POST", f"/v1/webhook/events/{event_id}/replay"))


# --- webhook signatures ------------------------------------------------------------------------
class SignatureError(ValueError):
    """A webhook signature header that must not be trusted (malformed, wrong, or too old)."""


def sign_payload(secret: str, body: bytes, timestamp: int) -> str:
    """The header value ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, body: bytes, header: str, tolerance_s: float = 300.0,
                     *, now: float | None = None) -> int:
    """Check a webhook delivery as a client must before trusting it; return its timestamp.

    The service signs every delivery (``payments.webhooks``) in the header
    ``CrowdLearning-Signature: t=<unix seconds>,v1=<hex>`` (several ``v1=`` during a secret
    rotation), where ``v1`` is HMAC-SHA256 with the client's webhook secret over
    ``b"<t>." + body`` (the raw request body, bytes as received, before any JSON parsing).
    Accepted only if some ``v1`` matches (compared in constant time) and
    ``|now - t| <= tolerance_s``: the timestamp is signed, so an old delivery replayed later is
    refused; de-duplicate within the window by the event id.
    Raises :class:`SignatureError` otherwise.
    """
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError) as exc:
        raise SignatureError("no timestamp t=<unix seconds> in the signature header") from exc
    candidates = fields.get("v1", [])
    if not candidates:
        raise SignatureError("no v1= signature in the header")
    expected = sign_payload(secret, body, timestamp).rpartition("v1=")[2]
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise SignatureError("signature does not match the body")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"timestamp {timestamp} outside the {tolerance_s:g} s tolerance")
    return timestamp


def main(argv: list[str] | None = None) -> int:
    """``python -m crowdlearning.payments.client wait-payout <payout_id>``: poll the payout until
    it is settled or failed and print it as JSON; exit 0 when settled, 1 when failed or still
    pending at ``--timeout-s``. The key comes from ``PAYMENTS_API_KEY``."""
    import argparse
    import json
    import os
    import sys

    parser = argparse.ArgumentParser(prog="python -m crowdlearning.payments.client",
                                     description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait-payout", help="wait until a payout is settled (or failed)")
    wait.add_argument("payout_id")
    wait.add_argument("--url", default="http://127.0.0.1:8001", help="the payments API")
    wait.add_argument("--timeout-s", type=float, default=60.0)
    wait.add_argument("--poll-s", type=float, default=0.5)
    args = parser.parse_args(argv)
    key = os.environ.get("PAYMENTS_API_KEY", "")
    if not key:
        parser.error("set PAYMENTS_API_KEY")
    with PaymentsClient(args.url, key) as api:
        payout = api.wait_for_payout(args.payout_id, timeout_s=args.timeout_s,
                                     poll_s=args.poll_s)
    print(json.dumps(payout, separators=(",", ":")))
    if payout["status"] != "settled":
        print(f"payout {args.payout_id} is {payout['status']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
