"""Webhooks delivered by themselves: the payments service's worker settles payouts and delivers
their events (started and stopped with the app), to a real HTTP receiver on 127.0.0.1 that
fails the first attempts; a client replays an event and pages through its events and delivery
log (issue 15, item 3)."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, PayoutState
from crowdlearning.ledger.clients import client_payout_id, issue_key, open_client
from crowdlearning.payments.client import verify_signature
from crowdlearning.payments.memory_transport import MemoryTransport
from crowdlearning.payments.settlement import Settler
from crowdlearning.payments.webhooks import SIGNATURE_HEADER, WebhookDispatcher, event_id
from crowdlearning.payments.worker import PaymentsWorker
from tests.ledger.factories import ledger_on

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(60)
TREASURY = "0.0.2"
RECIPIENTS = [f"0.0.{5000 + n}" for n in range(12)]  # more than one Hedera transaction


class FlakyReceiver:
    """An HTTP endpoint on 127.0.0.1 that answers 503 to the first ``fail_first`` attempts of
    each event id, then 200; keeps every request (body, headers, time received)."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.got: list[tuple[bytes, dict[str, str], float]] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                eid = json.loads(body)["id"]
                with outer.lock:
                    outer.got.append((body, dict(self.headers), time.monotonic()))
                    outer.attempts[eid] = outer.attempts.get(eid, 0) + 1
                    failing = outer.attempts[eid] <= outer.fail_first
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> dict[str, bytes]:
        """Event id -> body of the events answered 200 (de-duplicated by id)."""
        with self.lock:
            seen: dict[str, int] = {}
            out: dict[str, bytes] = {}
            for body, _headers, _at in self.got:
                eid = json.loads(body)["id"]
                seen[eid] = seen.get(eid, 0) + 1
                if seen[eid] > self.fail_first:
                    out[eid] = body
            return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    with ledger_on(request.param, tmp_path, request) as books:
        books.run(lambda c: open_client(c, "acme", now_ns=1))
        books.deposit("acme-funding", "client:acme", 1_000_000)
        yield books


@pytest.fixture
def receiver() -> Iterator[FlakyReceiver]:
    found = FlakyReceiver(fail_first=2)
    yield found
    found.close()


def _wait(done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _stack(ledger: Ledger, *, base_backoff_s: float = 0.1
           ) -> tuple[TestClient, PaymentsWorker, MemoryTransport]:
    network = MemoryTransport(treasury_account_id=TREASURY,
                              balances={TREASURY: 10**12, **dict.fromkeys(RECIPIENTS, 0)})
    # the worker's own interval is long: what makes it deliver promptly is settlement posting
    # payouts (it triggers delivery at once) and the backoff retries it schedules itself
    dispatcher = WebhookDispatcher(ledger, timeout_s=2.0, base_backoff_s=base_backoff_s,
                                   max_backoff_s=1.0, lease_s=5.0, concurrency=4)
    worker = PaymentsWorker(ledger, dispatcher, settler=Settler(ledger, network),
                            webhook_interval_s=0.05, settle_interval_s=0.05)
    key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
    app = TestClient(create_app_with(ledger, worker), headers={"X-API-Key": key})
    return app, worker, network


def create_app_with(ledger: Ledger, worker: PaymentsWorker):  # type: ignore[no-untyped-def]
    from crowdlearning.payments.api import create_app

    return create_app(ledger, settings=Settings(payments_client_rps=10_000,
                                                payments_client_burst=10_000), worker=worker)


def test_the_service_settles_and_delivers_by_itself_retrying_a_failing_endpoint(
    ledger: Ledger, receiver: FlakyReceiver
) -> None:
    app, worker, network = _stack(ledger)
    with app:  # the app's lifespan starts the worker ...
        secret = app.put("/v1/webhook", json={"url": receiver.url}).json()["secret"]
        # GIVEN payouts booked through the API to twelve accounts (two Hedera transactions)
        for n, to in enumerate(RECIPIENTS):
            answer = app.post("/v1/payouts", json={"payout_id": f"po-{n}", "to_account": to,
                                                   "amount_tinybar": 100 + n})
            assert answer.status_code == 201, answer.text
        # WHEN nobody calls anything: the worker settles them and delivers their events,
        # each answered 503 twice before 200
        _wait(lambda: len(receiver.accepted()) == len(RECIPIENTS))
        assert worker.running
    assert not worker.running  # ... and its shutdown stops it
    # THEN every payout is settled on "chain" once, and announced once after de-duplication
    assert [network.balances[to] for to in RECIPIENTS] == [100 + n for n in range(12)]
    assert all(ledger.get_payout(client_payout_id("acme", f"po-{n}")).state
               is PayoutState.POSTED for n in range(12))
    accepted = receiver.accepted()
    assert set(accepted) == {event_id("payout.settled", client_payout_id("acme", f"po-{n}"))
                             for n in range(12)}
    assert sorted(json.loads(b)["data"]["payout_id"] for b in accepted.values()) == sorted(
        f"po-{n}" for n in range(12))
    assert all(receiver.attempts[eid] == 3 for eid in accepted)  # 2 failures, then delivered
    # AND every attempt is signed (timestamped: a stale one would be refused) over the same body
    for body, headers, _at in receiver.got:
        assert verify_signature(secret, body, headers[SIGNATURE_HEADER], tolerance_s=60)
        assert body == accepted[json.loads(body)["id"]]
    # AND the retries backed off: never sooner than 0.1 s, then 0.2 s (doubling, capped at 1 s)
    assert worker.dispatcher is not None
    assert [worker.dispatcher.backoff_ns(n) for n in (1, 2, 3, 5)] == [
        10**8, 2 * 10**8, 4 * 10**8, 10**9]
    for eid in accepted:
        at = sorted(t for body, _h, t in receiver.got if json.loads(body)["id"] == eid)
        # (measured on arrival: a send's own latency blurs it by a few ms)
        assert at[1] - at[0] >= 0.09 and at[2] - at[1] >= 0.18


def test_a_client_replays_an_event_and_pages_its_delivery_log(
    ledger: Ledger, receiver: FlakyReceiver
) -> None:
    receiver.fail_first = 0
    app, _worker, _network = _stack(ledger)
    with app:
        app.put("/v1/webhook", json={"url": receiver.url})
        for n in range(3):
            app.post("/v1/payouts", json={"payout_id": f"po-{n}", "to_account": RECIPIENTS[n],
                                          "amount_tinybar": 100})
        def states() -> list[str]:
            return sorted(e["state"] for e in app.get("/v1/webhook/events").json()["items"])

        _wait(lambda: states() == ["delivered"] * 3)  # sent, and the answer recorded
        assert len(receiver.got) == 3
        events = app.get("/v1/webhook/events").json()["items"]
        eid = events[0]["id"]
        # WHEN the client replays one delivered event
        replayed = app.post(f"/v1/webhook/events/{eid}/replay")
        assert replayed.status_code == 202, replayed.text
        assert replayed.json()["id"] == eid and replayed.json()["attempts"] == 0
        # THEN it arrives again, byte for byte the same (de-duplicable by its id)
        _wait(lambda: len(receiver.got) == 4 and states() == ["delivered"] * 3)
        assert receiver.got[3][0] == next(b for b, _h, _a in receiver.got[:3]
                                          if json.loads(b)["id"] == eid)
        # AND unknown or malformed ids are refused
        missing = app.post(f"/v1/webhook/events/evt_{'0' * 40}/replay")
        assert (missing.status_code, missing.json()["code"]) == (404, "unknown_event")
        assert app.post("/v1/webhook/events/nope/replay").status_code == 422
        # AND the delivery log pages: 4 attempts, newest first, 3 + 1
        page1 = app.get("/v1/webhook/deliveries", params={"limit": 3}).json()["items"]
        page2 = app.get("/v1/webhook/deliveries", params={"limit": 3, "offset": 3}).json()
        assert len(page1) == 3 and len(page2["items"]) == 1
        assert page1[0]["event_id"] == eid and page1[0]["ok"]
        of_one = app.get("/v1/webhook/deliveries", params={"event_id": eid}).json()["items"]
        assert [d["attempt"] for d in of_one] == [1, 1]  # the replay starts a fresh budget
        assert app.get("/v1/webhook/events", params={"state": "pending"}).json()["items"] == []


def test_a_failed_event_is_delivered_after_a_replay(ledger: Ledger,
                                                    receiver: FlakyReceiver) -> None:
    # GIVEN an endpoint that fails more often than the dispatcher tries
    receiver.fail_first = 3
    app, worker, _network = _stack(ledger, base_backoff_s=0.05)
    assert worker.dispatcher is not None
    worker.dispatcher.max_attempts = 2
    with app:
        app.put("/v1/webhook", json={"url": receiver.url})
        app.post("/v1/payouts", json={"payout_id": "po-0", "to_account": RECIPIENTS[0],
                                      "amount_tinybar": 100})
        _wait(lambda: [e["state"] for e in app.get("/v1/webhook/events").json()["items"]]
              == ["failed"])
        assert len(receiver.got) == 2
        eid = app.get("/v1/webhook/events").json()["items"][0]["id"]
        # WHEN the client replays it: two more attempts, the second one accepted
        assert app.post(f"/v1/webhook/events/{eid}/replay").status_code == 202
        _wait(lambda: [e["state"] for e in app.get("/v1/webhook/events").json()["items"]]
              == ["delivered"])
    assert list(receiver.accepted()) == [eid] and len(receiver.got) == 4


def test_one_pass_settles_then_delivers_what_it_settled(ledger: Ledger,
                                                        receiver: FlakyReceiver) -> None:
    receiver.fail_first = 0
    app, worker, network = _stack(ledger)  # not entered: no lifespan, no threads
    app.put("/v1/webhook", json={"url": receiver.url})
    for n in range(10):
        app.post("/v1/payouts", json={"payout_id": f"po-{n}", "to_account": RECIPIENTS[n],
                                      "amount_tinybar": 100})
    report = worker.run_once()
    assert not worker.running
    assert (report.posted_payouts, report.events_recorded, report.events_delivered) == (
        10, 10, 10)
    assert report.settlement_runs >= 2  # the run that changed something was followed by another
    assert len(receiver.accepted()) == 10 and sum(network.balances[a] for a in RECIPIENTS) == 1000
    again = worker.run_once(force=True)
    assert (again.posted_payouts, again.events_recorded, again.events_delivered) == (0, 0, 0)
    worker.stop()


def test_the_service_builds_its_worker_from_settings(ledger: Ledger) -> None:
    from crowdlearning.payments.cli import _worker

    off = {"payments_settle_interval_s": 0, "payments_deposit_poll_s": 0}
    assert _worker(ledger, Settings(payments_webhook_interval_s=0, **off)) is None
    worker = _worker(ledger, Settings(payments_webhook_interval_s=1.5,
                                      payments_webhook_concurrency=3, **off))
    assert worker is not None and worker.settler is None and worker.dispatcher is not None
    assert (worker.webhook_interval_s, worker.dispatcher.concurrency) == (1.5, 3)
    assert worker.dispatcher.lease_ns > worker.dispatcher.http.timeout.read * 1e9
    worker.stop()
