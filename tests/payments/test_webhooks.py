"""Webhooks: endpoint registration, the event outbox (one event per fact), signed delivery with
retries, the delivery log (issue 15, item 3)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger
from crowdlearning.ledger.clients import client_payout_id, issue_key, open_client
from crowdlearning.ledger.clients import request_client_payout as book_payout
from crowdlearning.ledger.payouts import post_payout, void_payout
from crowdlearning.ledger.schema import webhook_events
from crowdlearning.payments.api import create_app
from crowdlearning.payments.client import SignatureError, verify_signature
from crowdlearning.payments.webhooks import (
    SIGNATURE_HEADER,
    WebhookDispatcher,
    event_id,
    record_events,
)
from tests.ledger.factories import ledger_on

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

NOW = 1_700_000_000 * 10**9


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    with ledger_on(request.param, tmp_path, request) as books:
        books.run(lambda c: open_client(c, "acme", now_ns=1))
        books.deposit("acme-funding", "client:acme", 10_000)
        yield books


@pytest.fixture
def api(ledger: Ledger) -> TestClient:
    key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
    return TestClient(create_app(ledger, settings=Settings()), headers={"X-API-Key": key})


class Receiver:
    """A local HTTP endpoint on 127.0.0.1 answering ``status`` and keeping what it got."""

    def __init__(self) -> None:
        self.status = 200
        self.got: list[tuple[bytes, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((body, dict(self.headers)))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def _settled_payout(ledger: Ledger, payout_id: str = "po-1", *, fail: bool = False) -> str:
    ledger_id = client_payout_id("acme", payout_id)

    def work(conn: sa.Connection) -> None:
        book_payout(conn, "acme", payout_id, "0.0.5005", 700, memo="m", now_ns=NOW)
        if fail:
            void_payout(conn, ledger_id, "INVALID_ACCOUNT_ID", now_ns=NOW)
        else:
            post_payout(conn, ledger_id, now_ns=NOW)

    ledger.run(work)
    return ledger_id


def _events(ledger: Ledger) -> list[sa.Row]:
    with ledger.engine.connect() as conn:
        return conn.execute(sa.select(webhook_events).order_by(webhook_events.c.type)).all()


def test_a_settled_payout_yields_one_event_however_often_it_is_scanned(ledger: Ledger) -> None:
    ledger_id = _settled_payout(ledger)
    _settled_payout(ledger, "po-2", fail=True)
    assert record_events(ledger, now_ns=NOW) == 2
    assert record_events(ledger, now_ns=NOW + 1) == 0  # the same facts again: nothing new
    rows = _events(ledger)
    assert [(r.type, r.source_id) for r in rows] == [
        ("payout.failed", client_payout_id("acme", "po-2")), ("payout.settled", ledger_id)]
    settled = json.loads(rows[1].payload)
    assert settled["id"] == event_id("payout.settled", ledger_id) == rows[1].id
    assert settled["data"]["payout_id"] == "po-1"
    assert settled["data"]["amount_tinybar"] == 700
    failed = json.loads(rows[0].payload)["data"]
    assert (failed["failure_reason"], failed["refunded_tinybar"]) == ("INVALID_ACCOUNT_ID", 700)


def test_a_client_deposit_is_an_event_and_a_players_is_not(ledger: Ledger) -> None:
    ledger.deposit("deposit:0.0.1234-1700000000-5", "client:acme", 300)
    ledger.open_player("bob")
    ledger.deposit("deposit:0.0.1234-1700000001-6", "player:bob:available", 300)
    assert record_events(ledger, now_ns=NOW) == 1
    assert record_events(ledger, now_ns=NOW) == 0
    (row,) = _events(ledger)
    data = json.loads(row.payload)["data"]
    assert row.type == "deposit.received" and row.client_id == "acme"
    assert data == {"amount_tinybar": 300, "credited_at_ns": data["credited_at_ns"],
                    "hedera_transaction_id": "0.0.1234@1700000000.5"}


def test_the_secret_is_shown_once(api: TestClient) -> None:
    assert api.get("/v1/webhook").json()["code"] == "no_webhook"
    created = api.put("/v1/webhook", json={"url": "https://example.com/hooks"})
    assert created.status_code == 200, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    shown = api.get("/v1/webhook")
    assert shown.json()["url"] == "https://example.com/hooks"
    assert secret not in shown.text and "secret" not in shown.json()
    again = api.put("/v1/webhook", json={"url": "https://example.com/hooks"}).json()["secret"]
    assert again != secret  # a new PUT rotates it
    assert api.delete("/v1/webhook").status_code == 204
    assert api.delete("/v1/webhook").status_code == 404
    refused = api.put("/v1/webhook", json={"url": "http://example.com/hooks"})
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_input"


def test_delivery_is_signed_and_verifies(ledger: Ledger, api: TestClient,
                                         receiver: Receiver) -> None:
    secret = api.put("/v1/webhook", json={"url": receiver.url}).json()["secret"]
    ledger_id = _settled_payout(ledger)
    record_events(ledger, now_ns=NOW)
    dispatcher = WebhookDispatcher(ledger, timeout_s=5.0)
    try:
        assert dispatcher.run_once(NOW) == 1
        assert dispatcher.run_once(NOW + 10**12) == 0  # delivered: never sent again
    finally:
        dispatcher.close()
    ((body, headers),) = receiver.got
    assert verify_signature(secret, body, headers[SIGNATURE_HEADER], now=NOW / 1e9) == NOW // 10**9
    with pytest.raises(SignatureError):
        verify_signature(secret, body + b" ", headers[SIGNATURE_HEADER], now=NOW / 1e9)
    event = json.loads(body)
    assert (event["id"], event["type"]) == (event_id("payout.settled", ledger_id),
                                            "payout.settled")
    log = api.get("/v1/webhook/deliveries").json()["items"]
    assert [(d["ok"], d["status_code"], d["attempt"]) for d in log] == [(True, 200, 1)]


def test_a_failing_endpoint_is_retried_with_backoff(ledger: Ledger, api: TestClient,
                                                    receiver: Receiver) -> None:
    api.put("/v1/webhook", json={"url": receiver.url})
    _settled_payout(ledger)
    record_events(ledger, now_ns=NOW)
    dispatcher = WebhookDispatcher(ledger, base_backoff_s=10.0)
    try:
        receiver.status = 500
        assert dispatcher.run_once(NOW) == 0
        assert dispatcher.run_once(NOW + 9 * 10**9) == 0  # backing off: not sent
        assert len(receiver.got) == 1
        receiver.status = 204
        assert dispatcher.run_once(NOW + 10 * 10**9) == 1
    finally:
        dispatcher.close()
    first, second = receiver.got
    assert first[0] == second[0]  # the same event, byte for byte
    log = api.get("/v1/webhook/deliveries").json()["items"]
    assert [(d["attempt"], d["ok"], d["status_code"]) for d in log] == [
        (2, True, 204), (1, False, 500)]
    assert log[1]["error"] == "HTTP 500"


def test_an_unreachable_endpoint_fails_after_max_attempts(ledger: Ledger, api: TestClient,
                                                          receiver: Receiver) -> None:
    url = receiver.url
    receiver.close()  # nothing listens there any more: connection refused
    api.put("/v1/webhook", json={"url": url})
    _settled_payout(ledger)
    record_events(ledger, now_ns=NOW)
    dispatcher = WebhookDispatcher(ledger, timeout_s=2.0, base_backoff_s=1.0, max_attempts=2)
    try:
        assert dispatcher.run_once(NOW) == 0
        assert dispatcher.run_once(NOW + 10**9) == 0
        assert dispatcher.run_once(NOW + 10**12) == 0  # given up: not attempted again
    finally:
        dispatcher.close()
    assert [r.state for r in _events(ledger)] == ["failed"]
    assert len(api.get("/v1/webhook/deliveries").json()["items"]) == 2


def _book_and_post(ledger: Ledger, payout_id: str, at_ns: int) -> None:
    ledger.run(lambda c: book_payout(c, "acme", payout_id, "0.0.5005", 10, memo="",
                                     now_ns=at_ns))
    ledger.run(lambda c: post_payout(c, client_payout_id("acme", payout_id), now_ns=at_ns))


def test_a_pass_reads_only_facts_after_its_watermark(ledger: Ledger) -> None:
    """record_events keeps watermarks (payments_cursors): a pass reads the facts stamped after
    them (less the lag), not every settled payout ever; a fact committed late, stamped within
    the lag before the watermark, is still evented."""
    from crowdlearning.ledger.cursors import read_cursor
    from crowdlearning.payments.webhooks import PAYOUTS_WATERMARK, WATERMARK_LAG_NS

    for n in range(5):
        _book_and_post(ledger, f"old-{n}", NOW + n)
    assert record_events(ledger, now_ns=NOW + 10) == 5
    assert ledger.run(lambda c: read_cursor(c, PAYOUTS_WATERMARK)) == str(NOW + 4)
    mid = NOW + 10 * WATERMARK_LAG_NS
    _book_and_post(ledger, "mid", mid)
    assert record_events(ledger, now_ns=mid + 1) == 1
    assert ledger.run(lambda c: read_cursor(c, PAYOUTS_WATERMARK)) == str(mid)
    # the settled payouts long before the watermark are not read again: an event taken away
    # from under one is not re-recorded (the pass never looked at it), while ...
    ledger.run(lambda c: c.execute(webhook_events.delete()
                                   .where(webhook_events.c.source_id == "api:acme:old-0")))
    _book_and_post(ledger, "new", mid + 5)
    # ... a payout stamped before the newest one read, but committed after that read (a slow
    # settlement transaction, another process's clock), is found: it is within the lag
    _book_and_post(ledger, "late", mid - WATERMARK_LAG_NS // 2)
    assert record_events(ledger, now_ns=mid + 10) == 2
    sources = set(ledger.run(lambda c: c.execute(sa.select(webhook_events.c.source_id))
                             .scalars().all()))
    assert {"api:acme:new", "api:acme:late", "api:acme:mid"} <= sources
    assert "api:acme:old-0" not in sources
    assert ledger.run(lambda c: read_cursor(c, PAYOUTS_WATERMARK)) == str(mid + 5)
    assert record_events(ledger, now_ns=mid + 20) == 0  # nothing new: nothing written


def test_the_watermarked_reads_use_their_indexes(tmp_path: Path) -> None:
    """record_events' own two scans are index range reads on SQLite (so a pass does not grow
    with the books): the statements it runs, explained with their parameters."""
    from crowdlearning.ledger import make_engine
    from tests.ledger.factories import new_ledger

    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    books = new_ledger(engine)
    books.run(lambda c: open_client(c, "acme", now_ns=1))
    seen: list[tuple[str, object]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def keep(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        if statement.lstrip().startswith("SELECT") and "ledger_" in statement:
            seen.append((statement, parameters))

    record_events(books, now_ns=NOW)
    sa.event.remove(engine, "before_cursor_execute", keep)
    plans = []
    with engine.connect() as conn:
        for statement, parameters in seen:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.append(" ".join(str(row[-1]) for row in rows))
    assert any("ix_ledger_payouts_resolved" in plan for plan in plans), plans
    assert any("ix_ledger_transfers_deposit_created" in plan for plan in plans), plans
    engine.dispose()


@pytest.mark.parametrize("lag_s", [None, "300"])
def test_the_watermark_lag_is_a_setting(ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
                                        lag_s: str | None) -> None:
    """CROWDLEARNING_PAYMENTS_WEBHOOK_WATERMARK_LAG_S sets how far behind its watermark the
    service's worker looks again: a payout stamped 200 s before the newest one evented (a late
    commit, a lagging clock) is found with 300 s, and not with the default of 120 s."""
    from crowdlearning.payments.worker import PassReport, PaymentsWorker

    if lag_s is not None:
        monkeypatch.setenv("CROWDLEARNING_PAYMENTS_WEBHOOK_WATERMARK_LAG_S", lag_s)
    settings = Settings()
    assert settings.payments_webhook_watermark_lag_s == float(lag_s or 120)
    worker = PaymentsWorker.from_settings(ledger, settings)
    now = time.time_ns()  # the worker's passes stamp and read with the real clock
    _book_and_post(ledger, "newest", now)
    worker.deliver(PassReport())
    _book_and_post(ledger, "late", now - 200 * 10**9)
    worker.deliver(PassReport())
    sources = set(ledger.run(lambda c: c.execute(sa.select(webhook_events.c.source_id))
                             .scalars().all()))
    assert "api:acme:newest" in sources
    assert ("api:acme:late" in sources) is (lag_s is not None)
