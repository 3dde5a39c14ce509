"""The payments service's background worker: deposits, settlement and webhook delivery.

``crowdlearning payments serve`` starts one ``PaymentsWorker`` with the app's lifespan (daemon
threads, stopped at shutdown). Its steps:

0. reads the treasury's history on the mirror node (when a ``ServiceDepositReader`` is given:
   ``payments_deposit_poll_s`` > 0): client top-ups (memo ``client:<id>``) and player deposits
   credited once by Hedera transaction id, the network fees of the treasury's transactions
   (the settlement's payouts included) booked ``treasury -> network_fees``; a poll that
   credited something wakes the webhook step (``deposit.received``);
1. settles (when a ``Settler`` is given: ``payments_settle_interval_s`` > 0): one
   ``Settler.run_once``; a run that prepared, posted or voided anything is followed at once by
   another (up to ``max_settle_runs_per_pass``), so a backlog drains without waiting for the
   interval;
2. records webhook events for new ledger facts (``webhooks.record_events``: settled and failed
   payouts, client deposits, whichever process booked them) and delivers the due ones
   (``WebhookDispatcher.run_once``, repeated while full batches go out).

In the service each step has a thread of its own (``start``): deposits every
``payments_deposit_poll_s``, settlement every
``payments_settle_interval_s``, webhooks every ``payments_webhook_interval_s`` and at once after a
settlement run posted or voided payouts, or when ``wake()`` is called (a replay, a deposit
reader in the same process). ``run_once`` is one pass of both in the caller's thread.
Errors of one pass are logged and the next pass retries: every step is idempotent and crash-safe
(the settlement protocol, the outbox's unique facts, the dispatcher's leases), so a ``kill -9``
anywhere loses nothing and a restart resumes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger
from crowdlearning.payments import webhooks
from crowdlearning.payments.deposits import ServiceDepositReader
from crowdlearning.payments.settlement import Settler
from crowdlearning.payments.webhooks import WebhookDispatcher

__all__ = ["PassReport", "PaymentsWorker", "dispatcher_from_settings"]

log = logging.getLogger(__name__)


def dispatcher_from_settings(ledger: Ledger, settings: Settings) -> WebhookDispatcher:
    """A dispatcher with the ``payments_webhook_*`` settings; its lease (how long a claimed
    event waits before another dispatcher, or this one after a crash, sends it again) outlasts
    one delivery's timeout."""
    timeout = settings.payments_webhook_timeout_s
    return WebhookDispatcher(
        ledger, timeout_s=timeout, base_backoff_s=settings.payments_webhook_base_backoff_s,
        max_backoff_s=settings.payments_webhook_max_backoff_s,
        max_attempts=settings.payments_webhook_max_attempts, lease_s=2 * timeout + 1,
        concurrency=settings.payments_webhook_concurrency)


@dataclass
class PassReport:
    """What one worker pass did."""

    deposits_credited: int = 0
    fees_booked_tinybar: int = 0
    settlement_runs: int = 0
    posted_payouts: int = 0
    voided_payouts: int = 0
    events_recorded: int = 0
    events_delivered: int = 0


class PaymentsWorker:
    """Reads deposits, settles payouts and delivers webhooks in background threads (see the
    module doc)."""

    def __init__(self, ledger: Ledger, dispatcher: WebhookDispatcher | None, *,
                 settler: Settler | None = None, webhook_interval_s: float = 2.0,
                 settle_interval_s: float = 2.0, max_settle_runs_per_pass: int = 50,
                 deposits: ServiceDepositReader | None = None,
                 deposit_interval_s: float = 2.0,
                 watermark_lag_s: float = webhooks.WATERMARK_LAG_NS / 1e9) -> None:
        self.ledger, self.dispatcher, self.settler = ledger, dispatcher, settler
        self.watermark_lag_ns = round(watermark_lag_s * 1e9)
        self.deposits, self.deposit_interval_s = deposits, deposit_interval_s
        self.webhook_interval_s, self.settle_interval_s = webhook_interval_s, settle_interval_s
        self.max_settle_runs_per_pass = max_settle_runs_per_pass
        self._wake = threading.Event()  # deliver now
        self._settle_wake = threading.Event()  # only to stop promptly
        self._deposit_wake = threading.Event()  # only to stop promptly
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_settle = self._next_webhooks = 0.0

    @classmethod
    def from_settings(cls, ledger: Ledger, settings: Settings, *,
                      settler: Settler | None = None,
                      deposits: ServiceDepositReader | None = None) -> PaymentsWorker:
        """A worker with the ``payments_webhook_*`` (the watermark lag included) /
        ``payments_settle_interval_s`` / ``payments_deposit_poll_s`` settings; no dispatcher when
        ``payments_webhook_interval_s`` is 0."""
        dispatcher = (dispatcher_from_settings(ledger, settings)
                      if settings.payments_webhook_interval_s > 0 else None)
        return cls(ledger, dispatcher, settler=settler, deposits=deposits,
                   webhook_interval_s=settings.payments_webhook_interval_s or 3600.0,
                   settle_interval_s=settings.payments_settle_interval_s or 3600.0,
                   deposit_interval_s=settings.payments_deposit_poll_s or 3600.0,
                   watermark_lag_s=settings.payments_webhook_watermark_lag_s)

    # --- one pass --------------------------------------------------------------------------
    def read_deposits(self, report: PassReport) -> None:
        """One poll of the treasury's history; wake the webhooks when something was credited."""
        if self.deposits is None:
            return
        result = self.deposits.poll()
        report.deposits_credited += len(result.credited)
        report.fees_booked_tinybar += result.fees_booked_tinybar
        if result.credited:
            self._wake.set()  # deposit.received: recorded and delivered now

    def settle(self, report: PassReport) -> None:
        """Settlement runs until one changes nothing (bounded per pass)."""
        if self.settler is None:
            return
        for _ in range(self.max_settle_runs_per_pass):
            run = self.settler.run_once()
            report.settlement_runs += 1
            report.posted_payouts += run.posted_payouts
            report.voided_payouts += run.voided_payouts
            if run.posted_payouts or run.voided_payouts:
                self._wake.set()  # their events: recorded and delivered now
            if run.network_down or not (run.prepared or run.posted_payouts
                                        or run.voided_payouts):
                return  # nothing moved (at most receipts awaited): wait for the interval
            if self._stop.is_set():
                return

    def deliver(self, report: PassReport) -> None:
        """Record new events, then deliver due ones while full batches go out."""
        if self.dispatcher is None:
            return
        report.events_recorded += webhooks.record_events(self.ledger,
                                                         lag_ns=self.watermark_lag_ns)
        while not self._stop.is_set():
            attempted, delivered = self.dispatcher.run_due()
            report.events_delivered += delivered
            if attempted < self.dispatcher.batch:
                return

    def run_once(self, *, force: bool = False) -> PassReport:
        """One pass: deposits, settle if due, then webhooks if due (or after payouts moved or
        deposits were credited, or woken)."""
        report = PassReport()
        now = time.monotonic()
        self.read_deposits(report)
        if self.settler is not None and (force or now >= self._next_settle):
            self._next_settle = now + self.settle_interval_s
            self.settle(report)
        woken = self._wake.is_set()
        self._wake.clear()
        moved = report.posted_payouts or report.voided_payouts or report.deposits_credited
        if self.dispatcher is not None and (force or woken or moved
                                            or now >= self._next_webhooks):
            self._next_webhooks = time.monotonic() + self.webhook_interval_s
            self.deliver(report)
        return report

    # --- the threads -----------------------------------------------------------------------
    def wake(self) -> None:
        """Record and deliver events now (e.g. after a deposit was credited)."""
        self._wake.set()

    def start(self) -> PaymentsWorker:
        """Run in daemon threads until ``stop``: one reads deposits, one settles, one delivers
        webhooks (so slow endpoints never hold settlement back, nor settlement the deliveries,
        nor a slow mirror node either)."""
        if not self._threads:
            self._stop.clear()
            loops = [("deposits", self._deposit_loop, self.deposits),
                     ("settle", self._settle_loop, self.settler),
                     ("webhooks", self._webhook_loop, self.dispatcher)]
            self._threads = [threading.Thread(target=loop, name=f"payments-{name}", daemon=True)
                             for name, loop, needed in loops if needed is not None]
            for thread in self._threads:
                thread.start()
        return self

    @property
    def running(self) -> bool:
        """Whether its threads are running."""
        return any(thread.is_alive() for thread in self._threads)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the threads after their current step (and close the dispatcher's HTTP client)."""
        self._stop.set()
        self._wake.set()
        self._settle_wake.set()
        self._deposit_wake.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        self._threads = []
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.deposits is not None:
            self.deposits.close()

    def _deposit_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.read_deposits(PassReport())
            except Exception:  # mirror or database away: the next poll retries from the cursor
                log.exception("payments worker: reading deposits failed")
            self._deposit_wake.wait(timeout=self.deposit_interval_s)
            self._deposit_wake.clear()

    def _settle_loop(self) -> None:
        while not self._stop.is_set():
            report = PassReport()
            try:
                self.settle(report)
            except Exception:  # database or network away: the next run retries
                log.exception("payments worker: settlement run failed")
            self._settle_wake.wait(timeout=self.settle_interval_s)
            self._settle_wake.clear()

    def _webhook_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.deliver(PassReport())
            except Exception:  # database away: the next pass retries
                log.exception("payments worker: webhook pass failed")
            self._wake.wait(timeout=self.webhook_interval_s)
