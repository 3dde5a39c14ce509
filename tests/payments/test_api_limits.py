"""Per-client limits (429 with Retry-After), health, readiness and metrics (issue 15, item 6)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, make_engine
from crowdlearning.ledger.clients import issue_key, open_client
from crowdlearning.payments.api import TokenBuckets, create_app
from tests.ledger.factories import new_ledger

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = new_ledger(engine)
    ledger.run(lambda c: open_client(c, "acme", now_ns=1))
    ledger.deposit("acme-funding", "client:acme", 10_000)
    yield ledger
    engine.dispose()


@pytest.fixture
def key(ledger: Ledger) -> str:
    return ledger.run(lambda c: issue_key(c, "acme", now_ns=1))


def _client(ledger: Ledger, key: str, **settings: object) -> TestClient:
    app = create_app(ledger, settings=Settings(**settings))  # type: ignore[arg-type]
    return TestClient(app, headers={"X-API-Key": key}, client=LOOPBACK)


def _payout(api: TestClient, payout_id: str, amount: int):  # type: ignore[no-untyped-def]
    body = {"payout_id": payout_id, "to_account": "0.0.5005", "amount_tinybar": amount}
    return api.post("/v1/payouts", json=body)


def test_a_burst_passes_then_429_rate_limited_with_retry_after(ledger: Ledger, key: str) -> None:
    api = _client(ledger, key, payments_client_rps=0.5, payments_client_burst=3)
    assert [api.get("/v1/balance").status_code for _ in range(3)] == [200, 200, 200]
    refused = api.get("/v1/balance")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited" and set(refused.json()) == {"code", "detail"}
    assert refused.headers["Retry-After"] == "2"  # one token at 0.5/s: up to 2 s away
    # another client has its own bucket
    ledger.run(lambda c: open_client(c, "other", now_ns=1))
    other = ledger.run(lambda c: issue_key(c, "other", now_ns=1))
    assert api.get("/v1/balance", headers={"X-API-Key": other}).status_code == 200


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] = 0.25
    assert buckets.take("a") == pytest.approx(0.25)  # half a token saved up
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    now[0] = 100.0
    assert [buckets.take("a") for _ in range(3)][:2] == [0.0, 0.0]  # capped at the burst


def test_daily_quota_refuses_a_payout_and_books_nothing(ledger: Ledger, key: str) -> None:
    api = _client(ledger, key, payments_client_daily_payout_tinybar=1_000)
    assert _payout(api, "p-1", 600).status_code == 201
    wd = {"withdrawal_id": "w-1", "to_account": "0.0.5006", "amount_tinybar": 300}
    assert api.post("/v1/withdrawals", json=wd).status_code == 201  # 900 of 1,000 used
    refused = _payout(api, "p-2", 101)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "quota_exceeded" and set(refused.json()) == {"code", "detail"}
    # it fits once p-1 (600, the oldest) leaves the 24 h window: about a day from now (the
    # counter is per minute: the end of p-1's minute plus 24 h)
    assert 86_000 < int(refused.headers["Retry-After"]) <= 86_400 + 60
    assert ledger.balance("client:acme") == 10_000 - 900
    assert api.get("/v1/payouts/p-2").status_code == 404  # nothing booked
    assert _payout(api, "p-1", 600).status_code == 200  # a replay is no new volume
    assert _payout(api, "p-3", 100).status_code == 201  # exactly up to the quota
    assert _payout(api, "p-4", 1).json()["code"] == "quota_exceeded"


def test_daily_quota_counter_frees_voided_payouts_survives_restarts_and_rolls(
        tmp_path: Path) -> None:
    """The running per-minute counter (ledger/payout_volume.py) against the facts it counts:
    a voided payout frees its volume, a new app over the same database (a restart) sees the
    same volume, and a payout leaves the window a day (and at most a minute) later."""
    from crowdlearning.ledger import payout_volume
    from crowdlearning.ledger.payouts import void_payout
    from crowdlearning.ledger.schema import api_clients

    now = [1_700_000_000 * 10**9]
    engine = make_engine(f"sqlite:///{tmp_path / 'quota.db'}")
    ledger = new_ledger(engine, clock=lambda: now[0])
    ledger.run(lambda c: open_client(c, "acme", now_ns=1))
    ledger.deposit("acme-funding", "client:acme", 10_000)
    key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
    api = _client(ledger, key, payments_client_daily_payout_tinybar=1_000)
    assert _payout(api, "p-1", 700).status_code == 201
    now[0] += 3600 * 10**9
    assert _payout(api, "p-2", 300).status_code == 201
    assert _payout(api, "p-3", 1).json()["code"] == "quota_exceeded"
    # a failed (voided) payout does not count
    ledger.run(lambda c: void_payout(c, "api:acme:p-2", "INVALID_ACCOUNT_ID", now_ns=now[0]))
    account_id = ledger.run(lambda c: c.execute(sa.select(api_clients.c.account_id)
                                                .where(api_clients.c.id == "acme")).scalar())
    assert ledger.run(lambda c: payout_volume.volume_since(c, account_id, now[0])) == 700
    # a restart: a new app (and ledger) over the same database counts the same
    again = _client(new_ledger(engine, clock=lambda: now[0]), key,
                    payments_client_daily_payout_tinybar=1_000)
    assert _payout(again, "p-4", 300).status_code == 201
    refused = _payout(again, "p-5", 1)
    assert refused.json()["code"] == "quota_exceeded"
    # p-1 (booked an hour ago) leaves the window at the end of its minute + 24 h
    assert 23 * 3600 <= int(refused.headers["Retry-After"]) <= 23 * 3600 + 60
    now[0] += 23 * 3600 * 10**9 + 61 * 10**9
    assert _payout(again, "p-5", 700).status_code == 201  # p-1's 700 has left the window
    assert _payout(again, "p-6", 1).json()["code"] == "quota_exceeded"  # 300 + 700 used
    engine.dispose()


def test_healthz_readyz_and_readyz_503_without_a_database(
        ledger: Ledger, key: str, tmp_path: Path) -> None:
    api = _client(ledger, key)
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    gone = make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    down = TestClient(create_app(Ledger(gone, stake_minimum_tinybar=10, hold_tinybar=5),
                                 settings=Settings()))
    assert down.get("/healthz").status_code == 200  # alive all the same
    answer = down.get("/readyz")
    assert (answer.status_code, answer.json()["code"]) == (503, "not_ready")
    assert down.get("/metrics").status_code == 403  # no token and not loopback ("testclient")


def _sample(text: str, line_start: str) -> float:
    match = re.search(rf"^{re.escape(line_start)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_counters_move(ledger: Ledger, key: str) -> None:
    api = _client(ledger, key, payments_client_rps=0.01, payments_client_burst=4)
    assert _payout(api, "p-1", 250).status_code == 201
    assert api.get("/v1/payouts/p-1").status_code == 200
    assert api.get("/v1/balance").status_code == 200
    assert api.get("/v1/balance").status_code == 200
    assert api.get("/v1/balance").status_code == 429
    answer = api.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    assert "# TYPE payments_http_requests_total counter" in text
    requests = 'payments_http_requests_total{route="%s",method="%s",status="%s"}'
    assert _sample(text, requests % ("/v1/payouts", "POST", "201")) == 1
    assert _sample(text, requests % ("/v1/payouts/{payout_id}", "GET", "200")) == 1
    assert _sample(text, requests % ("/v1/balance", "GET", "200")) == 2
    assert _sample(text, requests % ("/v1/balance", "GET", "429")) == 1
    assert _sample(text, 'payments_payouts_booked_total{kind="payout"}') == 1
    assert _sample(text, 'payments_payouts_booked_tinybar_total{kind="payout"}') == 250
    assert _sample(text, 'payments_limit_refusals_total{reason="rate_limited"}') == 1
    assert _sample(text, "payments_ledger_pending_payouts") == 1
    again = api.get("/metrics").text  # the scrape itself was counted
    assert _sample(again, requests % ("/metrics", "GET", "200")) == 1


def test_metrics_token_when_set(ledger: Ledger, key: str) -> None:
    app = create_app(ledger, settings=Settings(payments_metrics_token="s3cret"))
    api = TestClient(app)  # not loopback: the token is what counts
    assert api.get("/metrics").json()["code"] == "unauthorized"
    assert api.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
