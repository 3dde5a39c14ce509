"""Webhooks for payments API clients: an endpoint per client, an event outbox, signed delivery.

A client registers one endpoint (``PUT /v1/webhook``: an ``https://`` URL, or
``http://127.0.0.1[:port]/...`` for development) and gets a secret, shown once. Three ledger
facts become events for the client they concern:

    payout.settled     a client's payout (or withdrawal, ``data.kind``) was posted on Hedera
    payout.failed      it was voided (and refunded)
    deposit.received   a Hedera deposit with the memo ``client:<id>`` was credited

``record_events(ledger)`` scans the books for such facts not yet evented and writes one row each
to ``webhook_events`` (the outbox), unique by ``(type, source id)`` (the ledger payout id or the
deposit's transfer id): scanning the same fact twice, or from two processes at once, never makes
a second event. The event id is derived from the fact (``evt_`` + SHA-256 prefix), so a client
de-duplicates on it. Events are recorded for every client, with or without an endpoint; they are
delivered once one is registered (including earlier ones).

``WebhookDispatcher.run_once(now_ns)`` POSTs the due events of clients with an endpoint: the body
is the event's JSON (``{"id", "type", "created_at_ns", "data"}``, the same bytes on every
attempt), signed in the header ``CrowdLearning-Signature: t=<unix s>,v1=<hex>``
(``client.sign_payload``; check it with ``client.verify_signature``). A 2xx marks the event
delivered; anything else (another status, a timeout, a refused connection) is logged and retried
``base_backoff_s * 2**(attempt-1)`` (capped at ``max_backoff_s``) after the failed attempt
ended, until ``max_attempts``, after which the event is ``failed``. Every attempt is a row of
``webhook_deliveries`` (``GET /v1/webhook/deliveries``). A batch of due events is leased in one
statement before it is sent (``lease_s``; ``concurrency`` POSTs in flight at once). Delivery is
at least once: a crash between the POST and marking it delivered sends it again once the lease
is over.

Replay: ``replay_event`` (``POST /v1/webhook/events/{event_id}/replay``) puts one of the
client's events back in the queue, due now with a fresh attempt budget, whatever its state
(delivered, failed or still pending); the payload and event id stay the same, so a client that
already processed it de-duplicates the replay. ``list_events`` (``GET /v1/webhook/events``) pages
through the client's events and their state.

Where they run: ``payments.worker.PaymentsWorker``, started by ``crowdlearning payments serve``
with the app's lifespan: ``record_events`` then ``run_once`` every
``payments_webhook_interval_s``, and at once after its settlement runs posted or voided payouts.
Several dispatchers over one database are safe (each event is claimed before it is sent).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crowdlearning.ledger import Ledger
from crowdlearning.ledger.clients import refunded_tinybar
from crowdlearning.ledger.cursors import read_cursor, write_cursor
from crowdlearning.ledger.payouts import PayoutState, find_payout, settlement_of
from crowdlearning.ledger.schema import api_clients, legs, payouts, transfers
from crowdlearning.ledger.schema import webhook_deliveries as deliveries_table
from crowdlearning.ledger.schema import webhook_endpoints as endpoints_table
from crowdlearning.ledger.schema import webhook_events as events_table
from crowdlearning.payments.client import sign_payload

__all__ = [
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "URL_PATTERN",
    "Delivery",
    "Endpoint",
    "EventSummary",
    "WebhookDispatcher",
    "delete_endpoint",
    "event_id",
    "get_endpoint",
    "list_deliveries",
    "list_events",
    "record_events",
    "replay_event",
    "set_endpoint",
]

SIGNATURE_HEADER = "CrowdLearning-Signature"
EVENT_TYPES = ("payout.settled", "payout.failed", "deposit.received")
# https anywhere, or plain http to 127.0.0.1 only (development); no spaces, no userinfo, no NUL
URL_PATTERN = (r"^(https://[^\s/?#@\x00]+|http://127\.0\.0\.1(:[0-9]{1,5})?)"
               r"([/?][^\s#\x00]*)?$")
_MIRROR_TX_ID = re.compile(r"(\d+\.\d+\.\d+)-(\d+)-(\d+)")


def _now_ns() -> int:
    return time.time_ns()


def event_id(event_type: str, source_id: str) -> str:
    """The event id of a fact: the same fact always gives the same id."""
    return "evt_" + hashlib.sha256(f"{event_type}\n{source_id}".encode()).hexdigest()[:40]


# --- endpoints -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """A client's registered endpoint (the secret is never read back out)."""

    url: str
    created_at_ns: int


def set_endpoint(conn: sa.Connection, client_id: str, url: str, *, now_ns: int) -> str:
    """Register (or replace) the client's endpoint with a fresh secret; return the secret."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    conn.execute(endpoints_table.delete().where(endpoints_table.c.client_id == client_id))
    conn.execute(endpoints_table.insert().values(client_id=client_id, url=url, secret=secret,
                                                 created_at_ns=now_ns))
    return secret


def get_endpoint(conn: sa.Connection, client_id: str) -> Endpoint | None:
    """The client's endpoint, or ``None``."""
    row = conn.execute(sa.select(endpoints_table.c.url, endpoints_table.c.created_at_ns)
                       .where(endpoints_table.c.client_id == client_id)).first()
    return None if row is None else Endpoint(row.url, row.created_at_ns)


def delete_endpoint(conn: sa.Connection, client_id: str) -> bool:
    """Remove the client's endpoint; whether there was one (its events stay, undelivered)."""
    result = conn.execute(endpoints_table.delete()
                          .where(endpoints_table.c.client_id == client_id))
    return result.rowcount > 0


# --- producing events ------------------------------------------------------------------------
def _request_id(client_id: str, ledger_id: str) -> tuple[str, str]:
    """``(kind, the client's id)`` of a client payout's ledger id (a hashed long id stays)."""
    namespace, _, rest = ledger_id.partition(":")
    kind = "withdrawal" if namespace == "wd" else "payout"
    return kind, rest.removeprefix(f"{client_id}:")


def _payout_events(conn: sa.Connection, now_ns: int, since_ns: int
                   ) -> tuple[list[dict[str, Any]], int | None]:
    """Events of client payouts resolved after ``since_ns`` not yet evented, and the newest
    ``resolved_at_ns`` read (``ix_ledger_payouts_resolved``: the pass reads only that range)."""
    # IN rather than LIKE "payout.%": an equality on the unique (type, source_id) index
    done = sa.select(events_table.c.id).where(
        events_table.c.source_id == payouts.c.id,
        events_table.c.type.in_(["payout.settled", "payout.failed"]))
    rows = conn.execute(
        sa.select(payouts.c.id, payouts.c.resolved_at_ns,
                  api_clients.c.id.label("client_id"))
        .join(api_clients, api_clients.c.account_id == payouts.c.from_account_id)
        # resolved_at_ns is set exactly when a payout is posted or voided: no filter on the
        # state, which would tempt a planner into ix_ledger_payouts_state (every posted payout)
        .where(payouts.c.resolved_at_ns > since_ns, ~sa.exists(done))
        .order_by(payouts.c.resolved_at_ns, payouts.c.id)
    ).all()
    newest = max((int(row.resolved_at_ns) for row in rows), default=None)
    events = []
    for row in rows:
        payout = find_payout(conn, row.id)
        assert payout is not None
        settled = payout.state is PayoutState.POSTED
        tx_id, consensus_ns = settlement_of(conn, payout)
        kind, request_id = _request_id(row.client_id, row.id)
        data = {
            "kind": kind, f"{kind}_id": request_id, "to_account": payout.destination,
            "amount_tinybar": payout.amount_tinybar,
            "status": "settled" if settled else "failed",
            "hedera_transaction_id": tx_id, "consensus_timestamp_ns": consensus_ns,
            "failure_reason": None if settled else payout.failure,
            "refunded_tinybar": refunded_tinybar(payout),
        }
        events.append(_event(row.client_id, "payout.settled" if settled else "payout.failed",
                             row.id, data, now_ns))
    return events, newest


def _deposit_events(conn: sa.Connection, now_ns: int, since_ns: int
                    ) -> tuple[list[dict[str, Any]], int | None]:
    """Events of client deposits credited after ``since_ns`` not yet evented, and the newest
    ``created_at_ns`` read (the partial index ``ix_ledger_transfers_deposit_created``, whose
    predicate the query repeats word for word so that SQLite uses it)."""
    done = sa.select(events_table.c.id).where(events_table.c.source_id == transfers.c.id,
                                              events_table.c.type == "deposit.received")
    rows = conn.execute(
        sa.select(transfers.c.id, transfers.c.created_at_ns, legs.c.amount_tinybar,
                  api_clients.c.id.label("client_id"))
        .join(legs, legs.c.transfer_id == transfers.c.id)
        .join(api_clients, api_clients.c.account_id == legs.c.account_id)
        .where(sa.text("ledger_transfers.id LIKE 'deposit:%'"),
               transfers.c.created_at_ns > since_ns, legs.c.amount_tinybar > 0,
               ~sa.exists(done))
        .order_by(transfers.c.created_at_ns, transfers.c.id)
    ).all()
    newest = max((int(row.created_at_ns) for row in rows), default=None)
    events = []
    for row in rows:
        match = _MIRROR_TX_ID.fullmatch(row.id.removeprefix("deposit:"))
        data = {"amount_tinybar": row.amount_tinybar, "credited_at_ns": row.created_at_ns,
                "hedera_transaction_id": f"{match[1]}@{match[2]}.{match[3]}" if match else None}
        events.append(_event(row.client_id, "deposit.received", row.id, data, now_ns))
    return events, newest


def _event(client_id: str, event_type: str, source_id: str, data: dict[str, Any],
           now_ns: int) -> dict[str, Any]:
    eid = event_id(event_type, source_id)
    payload = json.dumps({"id": eid, "type": event_type, "created_at_ns": now_ns, "data": data},
                         separators=(",", ":"), sort_keys=True)
    return {"id": eid, "client_id": client_id, "type": event_type, "source_id": source_id,
            "payload": payload, "state": "pending", "attempts": 0, "next_attempt_ns": now_ns,
            "created_at_ns": now_ns}


# How far behind its watermark a pass looks again: a fact stamped (by its writer's clock, inside
# its database transaction) before the newest one already read, but committed after that read,
# is still found if it is at most this much older. Covers commit delays and clock skew between
# the processes that settle and credit; a pass costs the facts of this window plus the new ones.
# The default of ``record_events``; the service's worker passes its setting,
# ``CROWDLEARNING_PAYMENTS_WEBHOOK_WATERMARK_LAG_S`` (``config.py``, same default).
WATERMARK_LAG_NS = 120 * 10**9
PAYOUTS_WATERMARK, DEPOSITS_WATERMARK = "webhooks:payouts", "webhooks:deposits"


def record_events(ledger: Ledger, *, now_ns: int | None = None,
                  lag_ns: int = WATERMARK_LAG_NS) -> int:
    """Write an event for each client payout settled or failed and each client deposit not yet
    evented; return how many were new (a fact already evented, here or concurrently, is skipped).

    A pass reads only facts stamped after its watermarks (the newest ``resolved_at_ns`` /
    deposit ``created_at_ns`` seen, kept in ``payments_cursors`` and written in the same
    database transaction as the events) less ``lag_ns``: its cost follows the new facts, not the
    books' history. A crash before the commit leaves the watermarks where they were."""
    at = _now_ns() if now_ns is None else now_ns

    def work(conn: sa.Connection) -> int:
        marks = {name: int(read_cursor(conn, name) or 0)
                 for name in (PAYOUTS_WATERMARK, DEPOSITS_WATERMARK)}
        payout_rows, newest_payout = _payout_events(conn, at, marks[PAYOUTS_WATERMARK] - lag_ns)
        deposit_rows, newest_deposit = _deposit_events(conn, at,
                                                       marks[DEPOSITS_WATERMARK] - lag_ns)
        rows = payout_rows + deposit_rows
        new = 0
        if rows:
            dialect = {"postgresql": postgresql, "sqlite": sqlite}[conn.dialect.name]
            stmt = (dialect.insert(events_table).on_conflict_do_nothing()
                    .returning(events_table.c.id))
            new = sum(len(conn.execute(stmt.values(**row)).all()) for row in rows)
        for name, newest in ((PAYOUTS_WATERMARK, newest_payout),
                             (DEPOSITS_WATERMARK, newest_deposit)):
            if newest is not None and newest > marks[name]:
                write_cursor(conn, name, str(newest), now_ns=at)
        return new

    return ledger.run(work)


# --- delivering them -------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """One delivery attempt of an event."""

    event_id: str
    event_type: str
    url: str
    attempt: int
    ok: bool
    status_code: int | None
    error: str | None
    attempted_at_ns: int


def list_deliveries(conn: sa.Connection, client_id: str, *, limit: int, offset: int,
                    event_id: str | None = None) -> list[Delivery]:
    """The client's delivery attempts (of one event, if given), newest first."""
    query = (sa.select(deliveries_table, events_table.c.type)
             .join(events_table, events_table.c.id == deliveries_table.c.event_id)
             .where(deliveries_table.c.client_id == client_id))
    if event_id is not None:
        query = query.where(deliveries_table.c.event_id == event_id)
    rows = conn.execute(
        query.order_by(deliveries_table.c.id.desc()).limit(limit).offset(offset)).all()
    return [Delivery(r.event_id, r.type, r.url, r.attempt, bool(r.ok), r.status_code, r.error,
                     r.attempted_at_ns) for r in rows]


@dataclass(frozen=True)
class EventSummary:
    """One of a client's events and where its delivery is."""

    id: str
    type: str
    state: str
    attempts: int
    next_attempt_ns: int
    created_at_ns: int
    delivered_at_ns: int | None


def list_events(conn: sa.Connection, client_id: str, *, limit: int, offset: int,
                state: str | None = None, event_id: str | None = None) -> list[EventSummary]:
    """The client's events (in ``state``, or the one ``event_id``, if given), newest first."""
    query = sa.select(events_table).where(events_table.c.client_id == client_id)
    if state is not None:
        query = query.where(events_table.c.state == state)
    if event_id is not None:
        query = query.where(events_table.c.id == event_id)
    rows = conn.execute(query.order_by(events_table.c.created_at_ns.desc(),
                                       events_table.c.id.desc()).limit(limit).offset(offset))
    return [EventSummary(r.id, r.type, r.state, r.attempts, r.next_attempt_ns, r.created_at_ns,
                         r.delivered_at_ns) for r in rows]


def replay_event(conn: sa.Connection, client_id: str, eid: str, *, now_ns: int) -> bool:
    """Queue the client's event ``eid`` again, due now with a fresh attempt budget (whatever
    its state); whether the client has such an event."""
    result = conn.execute(
        events_table.update()
        .where(events_table.c.id == eid, events_table.c.client_id == client_id)
        .values(state="pending", attempts=0, next_attempt_ns=now_ns, delivered_at_ns=None))
    return result.rowcount == 1


class WebhookDispatcher:
    """Sends due events to their client's endpoint, signed; retries with exponential backoff."""

    def __init__(self, ledger: Ledger, *, http: httpx.Client | None = None,
                 timeout_s: float = 5.0, base_backoff_s: float = 10.0,
                 max_backoff_s: float = 3600.0, max_attempts: int = 12, batch: int = 100,
                 lease_s: float = 60.0, clock: Callable[[], int] = _now_ns,
                 concurrency: int = 1) -> None:
        self.ledger, self.clock = ledger, clock
        self.concurrency = concurrency  # deliveries in flight at once (threads)
        self._executor: ThreadPoolExecutor | None = None
        self.http = http or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self.base_backoff_ns = int(base_backoff_s * 1e9)
        self.max_backoff_ns = int(max_backoff_s * 1e9)
        self.max_attempts, self.batch, self.lease_ns = max_attempts, batch, int(lease_s * 1e9)

    def backoff_ns(self, attempt: int) -> int:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff_ns, self.base_backoff_ns * 2 ** min(attempt - 1, 40))

    def run_once(self, now_ns: int | None = None) -> int:
        """Attempt every due event once (up to ``batch``); return how many were delivered."""
        return self.run_due(now_ns)[1]

    def run_due(self, now_ns: int | None = None) -> tuple[int, int]:
        """As ``run_once``; return ``(due events seen, delivered)`` (as many seen as ``batch``:
        more may be due)."""
        now = self.clock() if now_ns is None else now_ns
        due = self.ledger.run(lambda c: c.execute(
            sa.select(events_table.c.id, events_table.c.next_attempt_ns, events_table.c.payload,
                      events_table.c.attempts, endpoints_table.c.url, endpoints_table.c.secret,
                      events_table.c.client_id)
            .join(endpoints_table, endpoints_table.c.client_id == events_table.c.client_id)
            .where(events_table.c.state == "pending", events_table.c.next_attempt_ns <= now)
            .order_by(events_table.c.next_attempt_ns, events_table.c.id).limit(self.batch)
        ).all())
        claimed = self._claim([row.id for row in due], now)  # the others: another dispatcher's
        rows = [row for row in due if row.id in claimed]

        def send(row: sa.Row) -> int:
            if now_ns is not None:  # a caller's fixed time: the backoff counts from it
                return self._deliver(row, now, now)
            return self._deliver(row, self.clock())

        if self.concurrency > 1 and len(rows) > 1:
            delivered = sum(self._pool().map(send, rows))
        else:
            delivered = sum(send(row) for row in rows)
        return len(due), delivered

    def _claim(self, ids: list[str], now: int) -> set[str]:
        """Lease the events still due (one statement): a crash leaves them due again once the
        lease is over."""
        if not ids:
            return set()

        def work(conn: sa.Connection) -> set[str]:
            return set(conn.execute(
                events_table.update()
                .where(events_table.c.id.in_(ids), events_table.c.state == "pending",
                       events_table.c.next_attempt_ns <= now)
                .values(next_attempt_ns=now + self.lease_ns)
                .returning(events_table.c.id)).scalars())
        return self.ledger.run(work)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency,
                                                thread_name_prefix="webhook-delivery")
        return self._executor

    def _deliver(self, row: sa.Row, now: int, done_ns: int | None = None) -> int:
        """One attempt, signed at ``now``; the backoff counts from when it ended (``done_ns``,
        default the clock then: a slow endpoint is not retried the moment it answers)."""
        body = row.payload.encode()
        headers = {"Content-Type": "application/json", "CrowdLearning-Event-Id": row.id,
                   SIGNATURE_HEADER: sign_payload(row.secret, body, now // 10**9)}
        status_code: int | None = None
        error: str | None = None
        try:
            response = self.http.post(row.url, content=body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:256]
        ok = error is None
        attempt = row.attempts + 1
        ended = self.clock() if done_ns is None else done_ns

        def record(conn: sa.Connection) -> None:
            conn.execute(deliveries_table.insert().values(
                event_id=row.id, client_id=row.client_id, url=row.url, attempt=attempt,
                status_code=status_code, error=error, ok=ok, attempted_at_ns=now))
            if ok:
                values: dict[str, Any] = {"state": "delivered", "delivered_at_ns": now}
            elif attempt >= self.max_attempts:
                values = {"state": "failed"}
            else:
                values = {"next_attempt_ns": ended + self.backoff_ns(attempt)}
            conn.execute(events_table.update().where(events_table.c.id == row.id)
                         .values(attempts=attempt, **values))

        self.ledger.run(record)
        return int(ok)

    def close(self) -> None:
        """Close the HTTP client (and the delivery threads)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.http.close()
