"""The payments client library (``payments/client.py``) against the payments API in process:
retries resend the same idempotency id, refusals carry ``{code, detail}`` and the status, and
the webhook signature check accepts good signatures only."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, client_account, make_engine
from crowdlearning.ledger.clients import issue_key, open_client
from crowdlearning.payments.api import create_app
from crowdlearning.payments.client import (
    AsyncPaymentsClient,
    PaymentsClient,
    PaymentsError,
    RetryPolicy,
    SignatureError,
    sign_payload,
    verify_signature,
)
from tests.ledger.factories import new_ledger

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(60)
HBAR = 100_000_000
BASE = "http://testserver"
TO = "0.0.4242"


class Faults:
    """Scripted failures, in order: ``"drop_request"`` (a connection error before sending),
    ``"drop_response"`` (the server handled it, the answer is lost), ``"busy"`` (503) and
    ``"throttled"`` (429, Retry-After: 3); ``None``: pass through."""

    def __init__(self, *plan: str | None) -> None:
        self.plan = list(plan)
        self.bodies: list[dict] = []

    def before(self, request: httpx.Request) -> httpx.Response | None:
        if request.content:
            self.bodies.append(json.loads(request.content))
        step = self.plan.pop(0) if self.plan else None
        if step == "drop_request":
            raise httpx.ConnectError("connection refused (simulated)", request=request)
        if step == "busy":
            return httpx.Response(503, json={"code": "busy", "detail": "retry it"})
        if step == "quota":
            return httpx.Response(429, headers={"Retry-After": "3600"},
                                  json={"code": "quota_exceeded", "detail": "until tomorrow"})
        if step == "throttled":
            return httpx.Response(429, headers={"Retry-After": "3"},
                                  json={"code": "rate_limited", "detail": "slow down"})
        return None if step is None else httpx.Response(599)  # 599: a marker, replaced below

    @staticmethod
    def after(request: httpx.Request, marker: httpx.Response | None) -> None:
        if marker is not None and marker.status_code == 599:
            raise httpx.ReadError("connection reset after sending (simulated)", request=request)


class FlakyTransport(httpx.BaseTransport):
    """Sends requests to the app in process (through a TestClient), with ``faults`` first."""

    def __init__(self, api: TestClient, faults: Faults) -> None:
        self.api, self.faults = api, faults

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        early = self.faults.before(request)
        if early is not None and early.status_code != 599:
            return early
        answer = self.api.request(request.method, str(request.url), content=request.content,
                                  headers=dict(request.headers))
        self.faults.after(request, early)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


class AsyncFlakyTransport(httpx.AsyncBaseTransport):
    """The app over ``httpx.ASGITransport``, with ``faults`` first."""

    def __init__(self, app: object, faults: Faults) -> None:
        self.inner, self.faults = httpx.ASGITransport(app=app), faults  # type: ignore[arg-type]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        early = self.faults.before(request)
        if early is not None and early.status_code != 599:
            return early
        answer = await self.inner.handle_async_request(request)
        await answer.aread()
        self.faults.after(request, early)
        return answer


class Stack:
    def __init__(self, ledger: Ledger, api: TestClient, key: str) -> None:
        self.ledger, self.api, self.key = ledger, api, key
        self.sleeps: list[float] = []

    def client(self, *plan: str | None, retries: int = 4) -> tuple[PaymentsClient, Faults]:
        faults = Faults(*plan)
        client = PaymentsClient(BASE, self.key, transport=FlakyTransport(self.api, faults),
                                retry=RetryPolicy(retries=retries), sleep=self.sleeps.append)
        return client, faults

    def balance(self) -> int:
        return self.ledger.balance(client_account("acme"))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = new_ledger(engine)
    ledger.run(lambda c: open_client(c, "acme", now_ns=1))
    ledger.open_player("alice")
    key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
    ledger.deposit("deposit:funding", client_account("acme"), 10 * HBAR)
    with TestClient(create_app(ledger, settings=Settings()), raise_server_exceptions=False) as api:
        yield Stack(ledger, api, key)
    engine.dispose()


def test_a_lost_answer_is_retried_with_the_same_generated_id_and_booked_once(
    stack: Stack,
) -> None:
    # GIVEN the first answer is lost after the server booked it, the second attempt cannot
    # connect at all
    client, faults = stack.client("drop_response", "drop_request")
    with client:
        # WHEN the caller asks for a payout without an id of its own
        payout = client.create_payout(TO, 3 * HBAR, memo="prize")
        # THEN three attempts carried one id, generated once; the last is the server's replay
        ids = {body["payout_id"] for body in faults.bodies}
        assert len(faults.bodies) == 3 and ids == {payout["payout_id"]}
        assert payout["status"] == "pending" and payout["amount_tinybar"] == 3 * HBAR
        assert stack.sleeps == [0.25, 0.5]  # exponential backoff between attempts
        # AND the money moved once
        assert stack.balance() == 7 * HBAR
        assert client.get_payout(payout["payout_id"]) == payout
        assert client.balance() == {"client_id": "acme", "balance_tinybar": 7 * HBAR}
    stack.ledger.check_books()


def test_busy_and_throttled_answers_are_retried_honouring_retry_after(stack: Stack) -> None:
    client, faults = stack.client("busy", "throttled")
    with client:
        done = client.create_withdrawal(TO, HBAR, withdrawal_id="wd-1")
        assert done["withdrawal_id"] == "wd-1" and done["status"] == "pending"
        assert stack.sleeps == [0.25, 3.0]  # backoff, then the server's Retry-After
        assert [b["withdrawal_id"] for b in faults.bodies] == ["wd-1"] * 3
        assert client.get_withdrawal("wd-1")["amount_tinybar"] == HBAR
    assert stack.balance() == 9 * HBAR


def test_a_retry_after_beyond_the_policy_is_raised_at_once(stack: Stack) -> None:
    client, faults = stack.client("quota")
    with client, pytest.raises(PaymentsError) as quota:
        client.create_payout(TO, HBAR, payout_id="p-q")
    assert (quota.value.status, quota.value.code) == (429, "quota_exceeded")
    assert len(faults.bodies) == 1 and stack.sleeps == []  # an hour is the caller's to wait


def test_refusals_carry_status_code_and_detail(stack: Stack) -> None:
    client, _ = stack.client()
    with client:
        with pytest.raises(PaymentsError) as short:
            client.create_payout(TO, 11 * HBAR, payout_id="too-much")
        assert (short.value.status, short.value.code) == (409, "insufficient_funds")
        assert short.value.detail
        with pytest.raises(PaymentsError) as unknown:
            client.get_payout("never-made")
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_payout")
        client.create_payout(TO, HBAR, payout_id="p-1")
        with pytest.raises(PaymentsError) as conflict:
            client.create_payout(TO, 2 * HBAR, payout_id="p-1")
        assert (conflict.value.status, conflict.value.code) == (409, "idempotency_conflict")
        paid = client.pay("alice", 1000, payment_id="pay-1")
        assert paid["delta_tinybar"] == -1000
        assert any(item["id"] == "pay-1" for item in client.history()["items"])
    stranger = PaymentsClient(BASE, "not-a-key", transport=FlakyTransport(stack.api, Faults()))
    with stranger, pytest.raises(PaymentsError) as denied:
        stranger.balance()
    assert (denied.value.status, denied.value.code) == (401, "unauthorized")
    assert stack.balance() == 9 * HBAR - 1000  # only p-1 and pay-1 booked


def test_retries_run_out_as_an_unavailable_error(stack: Stack) -> None:
    client, faults = stack.client("drop_request", "drop_request", "drop_request", retries=2)
    with client, pytest.raises(PaymentsError) as gone:
        client.create_payout(TO, HBAR, payout_id="p-2")
    assert (gone.value.status, gone.value.code) == (None, "unavailable")
    assert len(faults.bodies) == 3 and stack.sleeps == [0.25, 0.5]
    assert stack.balance() == 10 * HBAR


def test_the_async_client_retries_with_the_same_id(stack: Stack) -> None:
    faults = Faults("drop_response", "busy")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> tuple[dict, dict]:
        async with AsyncPaymentsClient(
            BASE, stack.key, transport=AsyncFlakyTransport(stack.api.app, faults), sleep=sleep
        ) as client:
            payout = await client.create_payout(TO, 2 * HBAR)
            return dict(payout), dict(await client.get_payout(payout["payout_id"]))

    payout, again = asyncio.run(scenario())
    assert {b["payout_id"] for b in faults.bodies} == {payout["payout_id"]}
    assert len(faults.bodies) == 3 and slept == [0.25, 0.5]
    assert again == payout and stack.balance() == 8 * HBAR


# --- webhook signatures ------------------------------------------------------------------------
SECRET = "whsec_test"
BODY = b'{"id":"evt_1","type":"payout.settled","payout_id":"p-1"}'


def test_a_good_signature_is_accepted() -> None:
    header = sign_payload(SECRET, BODY, 1_800_000_000)
    assert verify_signature(SECRET, BODY, header, 300, now=1_800_000_100) == 1_800_000_000
    rotated = f"{header},v1={'0' * 64}"  # an old secret's signature beside the current one
    assert verify_signature(SECRET, BODY, rotated, 300, now=1_800_000_000) == 1_800_000_000


@pytest.mark.parametrize("case", ["tampered body", "wrong secret", "too old", "from the future",
                                  "no signature", "no timestamp", "retimed"])
def test_bad_signatures_are_refused(case: str) -> None:
    t = 1_800_000_000
    body, secret, header, now = BODY, SECRET, sign_payload(SECRET, BODY, t), t + 10
    if case == "tampered body":
        body = BODY.replace(b"p-1", b"p-2")
    elif case == "wrong secret":
        secret = "whsec_other"
    elif case == "too old":
        now = t + 301
    elif case == "from the future":
        now = t - 301
    elif case == "no signature":
        header = f"t={t}"
    elif case == "no timestamp":
        header = header.split(",", 1)[1]
    elif case == "retimed":  # a replay with a fresh timestamp but the old signature
        header = header.replace(f"t={t}", f"t={t + 1000}")
        now = t + 1000
    with pytest.raises(SignatureError):
        verify_signature(secret, body, header, 300, now=now)
