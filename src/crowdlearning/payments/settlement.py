"""Exactly-once settlement of payouts on Hedera, and reconciliation of the ledger with receipts.

The protocol (docs/ledger.md, "exactly once"), after TigerBeetle's reliable transaction submission:

1. Batch unassigned pending payouts: one treasury debit plus at most
   ``transport.max_transfers_per_transaction - 1`` recipients per transaction.
2. ``prepare_transfer`` signs the batch with a fresh transaction id; the id and the signed bytes are
   committed to the database, with the claim of the payouts, *before* anything is sent.
3. For every live stored transaction:

   - *never sent* (no submission started, or each one provably sent nothing: the transport
     raised an error with ``maybe_delivered = False``, e.g. no node reachable): the network
     cannot know it. Window over: give it up (``expired``) and re-queue its payouts without
     counting an attempt; else submit it. No receipt is needed to decide.
   - *maybe sent*: ask for its receipt. ``SUCCESS``: post its payouts. Another final status: the
     transaction moved nothing; re-queue the payouts (a payout that already failed goes alone
     next time) or void them after ``max_attempts``. No receipt and the valid window (plus a
     margin) is over: decide whether it ever executed (below). Otherwise submit the *same
     bytes* again (``DUPLICATE_TRANSACTION`` counts as accepted).

Deciding "maybe sent, window over, no receipt". Hedera keeps a receipt ``receipt_ttl_s`` = 180 s
after consensus, and consensus is never before the valid start, so "no receipt" proves "never
executed" when asked after the window closed and before ``valid_start + receipt_ttl_s``. Later
(a long outage, a settler that was down), the transport's history is asked
(``transaction_history``: the mirror node, which keeps every transaction and tells up to when its
history is complete): found = its status; absent from a history complete past the window = never
executed, re-queue. Only when the transport has no history (or it cannot answer yet) does the
transaction stay *stuck* (retried every run; ``resolve_stuck`` for an operator). A transport whose
``get_receipt`` is authoritative forever (the in-memory twin) is used with ``receipt_ttl_s=None``.

Outages: a transport failure with the network unavailable ends the run's network work (no new
transactions are signed into an outage); the SDK transport readmits its nodes after each failure,
so the first run after the network returns goes through.

A crash anywhere leaves either nothing (before the commit in 2: the signed bytes are forgotten and
never sent) or a stored transaction that step 3 resumes, so each payout leaves the treasury once.
Transport failures (exceptions) leave the stored state untouched; the next run retries.
``fault_step`` (tests only, ``CROWDLEARNING_SETTLEMENT_FAULT_STEP``) kills the process with
SIGKILL at one named step (``FAULT_STEPS``) to prove it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import sqlalchemy as sa

from crowdlearning.config import Settings
from crowdlearning.errors import ConfigurationError, HederaUnavailableError
from crowdlearning.hedera.transport import HederaTransport, TransferReceipt
from crowdlearning.ledger import Ledger, Payout, TransferStateError
from crowdlearning.ledger import settlement_store as store
from crowdlearning.ledger.payouts import void_payout
from crowdlearning.ledger.schema import transfers

__all__ = [
    "FAULT_STEPS",
    "ReconciliationReport",
    "SettlementReport",
    "Settler",
    "TransportFailedError",
    "reconcile",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


# Where ``fault_step`` kills the process: signed (not stored) / stored (not sent) / marked as
# sending (not sent) / sent (answer not recorded) / receipt seen (not posted) / posted.
FAULT_STEPS = ("sign", "store", "send", "submit", "receipt", "post")


class TransportFailedError(Exception):
    """The transport raised; the stored state is untouched and the next run retries."""

    @property
    def network_down(self) -> bool:
        """The network did not answer (as opposed to refusing a request)."""
        return isinstance(self.__cause__, HederaUnavailableError)

    @property
    def maybe_delivered(self) -> bool:
        """False only when the transport proved that nothing was sent."""
        return bool(getattr(self.__cause__, "maybe_delivered", True))


@dataclass
class SettlementReport:
    """What one settlement run did (counts of transactions and payouts)."""

    prepared: int = 0
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    expired: int = 0
    posted_payouts: int = 0
    voided_payouts: int = 0
    transport_errors: int = 0
    stuck: int = 0  # past the receipt TTL, no receipt, no answer from history (yet)
    live: int = 0  # transactions still awaiting a receipt after the run
    network_down: bool = False  # the network did not answer: the run stopped early


@dataclass(frozen=True)
class Settler:
    """Moves pending payouts onto Hedera exactly once; call ``run_once`` periodically."""

    ledger: Ledger
    transport: HederaTransport
    clock: Callable[[], int] = time.time_ns  # epoch nanoseconds
    max_payouts_per_run: int = 1000
    max_attempts: int = 5
    expiry_margin_s: int = 10
    receipt_ttl_s: int | None = 180  # how long the network keeps receipts; None = forever
    fault_step: str = ""  # tests only: SIGKILL this process at that step (FAULT_STEPS)
    _recipients: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.fault_step and self.fault_step not in FAULT_STEPS:
            raise ValueError(f"fault_step={self.fault_step!r}: one of {FAULT_STEPS}")
        limit = self.transport.max_transfers_per_transaction - 1  # the treasury debit is one
        if limit < 1:
            raise ValueError(f"max_transfers_per_transaction must be >= 2, got {limit + 1}")
        object.__setattr__(self, "_recipients", limit)

    @classmethod
    def from_settings(
        cls, ledger: Ledger, transport: HederaTransport, settings: Settings
    ) -> Settler:
        """A settler with the ``settlement_*`` settings."""
        if settings.settlement_fault_step and settings.environment == "production":
            raise ConfigurationError("settlement_fault_step kills the process: tests only")
        return cls(
            ledger,
            transport,
            max_payouts_per_run=settings.settlement_max_payouts_per_run,
            max_attempts=settings.settlement_max_attempts,
            expiry_margin_s=settings.settlement_expiry_margin_s,
            receipt_ttl_s=settings.settlement_receipt_ttl_s or None,
            fault_step=settings.settlement_fault_step,
        )

    def run_once(self) -> SettlementReport:
        """Advance live transactions, batch and store new ones, then send those."""
        report = SettlementReport()
        self._advance_all(self._live(store.LIVE_STATES), report)
        fresh: list[store.StoredTransaction] = []
        if not report.network_down:  # signing into an outage only makes transactions to expire
            try:
                self._prepare_batches(report, fresh)
            except TransportFailedError as exc:
                report.transport_errors += 1
                log.warning("could not prepare a transaction: %s", exc)
        self._advance_all(fresh, report)
        report.live = len(self._live(store.LIVE_STATES))
        return report

    def _fault(self, step: str) -> None:
        """Tests only: die here as ``kill -9`` would (no cleanup, no commit)."""
        if self.fault_step == step:
            log.critical("settlement fault injection: SIGKILL at step %r", step)
            os.kill(os.getpid(), signal.SIGKILL)

    def run_until_settled(self, *, max_runs: int, pause_s: float = 0.0) -> SettlementReport:
        """Run up to ``max_runs`` times until no transaction is live; return the last report."""
        report = self.run_once()
        for _ in range(max_runs - 1):
            if report.live == 0:
                break
            time.sleep(pause_s)
            report = self.run_once()
        return report

    # --- step 1 and 2: batch, sign, store --------------------------------------------------
    def _prepare_batches(
        self, report: SettlementReport, fresh: list[store.StoredTransaction]
    ) -> None:
        queued = self.ledger.run(lambda c: store.unassigned_payouts(c, self.max_payouts_per_run))
        for batch in self._batches(queued, report):
            transfers = _transfer_list(self.transport.treasury_account_id, batch)
            prepared = self._call(
                self.transport.prepare_transfer, transfers, memo=f"payouts x{len(batch)}"
            )
            self._fault("sign")
            try:
                self.ledger.run(
                    partial(
                        store.claim_batch,
                        prepared=prepared,
                        payout_ids=[p.id for p in batch],
                        now_ns=self.clock(),
                    )
                )
            except TransferStateError:
                log.info(
                    "payouts claimed concurrently; dropping unsent %s", prepared.transaction_id
                )
                continue
            self._fault("store")
            report.prepared += 1
            fresh.append(store.StoredTransaction(prepared, "prepared", 0, None))

    def _batches(self, queued: list[Payout], report: SettlementReport) -> list[list[Payout]]:
        batches: list[list[Payout]] = []
        current: list[Payout] = []
        for payout in queued:
            if payout.destination == self.transport.treasury_account_id:
                self._void(payout, "destination is the treasury itself", report)
                continue
            if payout.attempts > 0:  # failed before: alone, so it cannot sink others
                batches.append([payout])
                continue
            if len({p.destination for p in [*current, payout]}) > self._recipients:
                batches.append(current)
                current = []
            current.append(payout)
        return [*batches, current] if current else batches

    def _void(self, payout: Payout, reason: str, report: SettlementReport) -> None:
        self.ledger.run(lambda c: void_payout(c, payout.id, reason, now_ns=self.clock()))
        report.voided_payouts += 1

    # --- step 3: receipts, expiry, (re)submission -------------------------------------------
    def _live(self, states: tuple[str, ...]) -> list[store.StoredTransaction]:
        limit = self.max_payouts_per_run
        return self.ledger.run(lambda c: store.list_transactions(c, states, limit))

    def _advance_all(
        self, transactions: list[store.StoredTransaction], report: SettlementReport
    ) -> None:
        for stored in transactions:
            if report.network_down:
                return  # the rest waits for the next run (each call would only time out)
            try:
                self._advance(stored, report)
            except TransportFailedError as exc:
                report.transport_errors += 1
                report.network_down = exc.network_down
                log.warning("transport error on %s: %s", stored.id, exc)

    def _call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # any transport failure: nothing stored changes, retry later
            raise TransportFailedError(f"{type(exc).__name__}: {exc}") from exc

    def _advance(self, stored: store.StoredTransaction, report: SettlementReport) -> None:
        if stored.never_sent:
            if stored.expired(self.clock(), self.expiry_margin_s):
                # the bytes never left this process and can no longer execute
                self._finish_unsent(stored, "expired", "EXPIRED_UNSENT", report, was_sent=False)
                return
            self._submit(stored, report)
            receipt = self._call(self.transport.get_receipt, stored.id)
            if receipt is not None:
                self._finish(stored, receipt, report)
            return
        receipt = self._call(self.transport.get_receipt, stored.id)
        if receipt is None and stored.expired(self.clock(), self.expiry_margin_s):
            if self._receipt_may_be_forgotten(stored):
                self._decide_from_history(stored, report)
                return
            self._finish_unsent(stored, "expired", "EXPIRED_WITHOUT_RECEIPT", report)
            return
        if receipt is None:
            self._submit(stored, report)
            receipt = self._call(self.transport.get_receipt, stored.id)
        if receipt is not None:
            self._finish(stored, receipt, report)

    def _receipt_may_be_forgotten(self, stored: store.StoredTransaction) -> bool:
        if self.receipt_ttl_s is None:
            return False
        return self.clock() > stored.prepared.valid_start_ns + self.receipt_ttl_s * 10**9

    def _decide_from_history(self, stored: store.StoredTransaction, report: SettlementReport
                             ) -> None:
        """Maybe sent, window over, receipt possibly forgotten: ask the network's history."""
        lookup = getattr(self.transport, "transaction_history", None)
        if lookup is None:
            report.stuck += 1
            log.error("no receipt for %s, too late to prove it never ran, and no history to "
                      "ask: an operator must check a mirror node (resolve_stuck)", stored.id)
            return
        final_by_ns = stored.window_end_ns + self.expiry_margin_s * 10**9
        try:
            status = self._call(lookup, stored.id, final_by_ns=final_by_ns)
        except TransportFailedError as exc:
            report.stuck += 1
            log.warning("%s undecided for now (retried next run): %s", stored.id, exc)
            return
        if status is None:  # absent from a history complete past its window: never executed
            self._finish_unsent(stored, "expired", "NOT_IN_HISTORY", report)
        else:
            self._finish(stored, TransferReceipt(stored.id, status), report)

    def resolve_stuck(self, transaction_id: str, *, executed: bool) -> SettlementReport:
        """Operator: settle a stuck transaction after checking a mirror node for its outcome."""
        stored = self.ledger.run(lambda c: store.get_transaction(c, transaction_id))
        if stored is None or stored.state not in store.LIVE_STATES:
            raise TransferStateError(f"{transaction_id} is not a live settlement transaction")
        report = SettlementReport()
        status = "SUCCESS" if executed else "EXPIRED_WITHOUT_RECEIPT"
        self._finish(stored, TransferReceipt(transaction_id, status), report, state="expired")
        return report

    def _submit(self, stored: store.StoredTransaction, report: SettlementReport) -> None:
        self.ledger.run(lambda c: store.mark_sending(c, stored.id, now_ns=self.clock()))
        self._fault("send")
        try:
            outcome = self._call(self.transport.submit, stored.prepared)
        except TransportFailedError as exc:
            if not exc.maybe_delivered:
                self.ledger.run(lambda c: store.unmark_sending(c, stored.id, now_ns=self.clock()))
            raise
        self._fault("submit")
        self.ledger.run(
            lambda c: store.record_submit(
                c, stored.id, status=outcome.status, accepted=outcome.accepted, now_ns=self.clock()
            )
        )
        report.submitted += 1
        if not outcome.accepted:
            log.warning(
                "node refused %s: %s (retrying until it expires)", stored.id, outcome.status
            )

    def _finish(
        self,
        stored: store.StoredTransaction,
        receipt: TransferReceipt,
        report: SettlementReport,
        *,
        state: str = "failed",
    ) -> None:
        if receipt.status != "SUCCESS":
            self._finish_unsent(stored, state, receipt.status, report)
            return
        self._fault("receipt")
        posted = self.ledger.run(
            lambda c: store.finish_succeeded(
                c, stored.id, consensus_ns=receipt.consensus_timestamp_ns, now_ns=self.clock()
            )
        )
        self._fault("post")
        report.succeeded += 1
        report.posted_payouts += len(posted)

    def _finish_unsent(
        self,
        stored: store.StoredTransaction,
        state: str,
        status: str,
        report: SettlementReport,
        *,
        was_sent: bool = True,
    ) -> None:
        voided = self.ledger.run(
            lambda c: store.finish_unsent(
                c,
                stored.id,
                state=state,
                status=status,
                max_attempts=self.max_attempts,
                now_ns=self.clock(),
                was_sent=was_sent,
            )
        )
        report.voided_payouts += len(voided)
        if state == "failed":
            report.failed += 1
        else:
            report.expired += 1


def _transfer_list(treasury: str, batch: list[Payout]) -> dict[str, int]:
    transfers: dict[str, int] = {treasury: -sum(p.amount_tinybar for p in batch)}
    for payout in batch:
        transfers[payout.destination] = transfers.get(payout.destination, 0) + payout.amount_tinybar
    return transfers


# --- reconciliation ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReconciliationReport:
    """Ledger versus network: ``mismatches`` must be empty; ``drift_tinybar`` needs explaining."""

    checked: int
    mismatches: tuple[str, ...]
    unverifiable: tuple[str, ...]  # final transactions whose receipt the network no longer has
    ledger_internal_tinybar: int  # what the treasury account should hold according to the books
    chain_treasury_tinybar: int
    # succeeded settlement transactions whose network fee is not booked (yet): the treasury
    # reader books ``fee:<transaction id>:<consensus time>`` when it reads their record
    fees_unbooked: tuple[str, ...] = ()
    network_fees_tinybar: int = 0  # what the books say the treasury paid the network

    @property
    def drift_tinybar(self) -> int:
        """On-chain treasury minus the books (unrecorded fees, deposits not yet credited)."""
        return self.chain_treasury_tinybar - self.ledger_internal_tinybar


def reconcile(
    ledger: Ledger, transport: HederaTransport, *, limit: int = 10_000
) -> ReconciliationReport:
    """Check the books; compare stored transactions with receipts, the books with the treasury."""
    books = ledger.check_books()
    states = ("succeeded", "failed", "expired", *store.LIVE_STATES)
    stored = ledger.run(lambda c: store.list_transactions(c, states, limit))
    mismatches, unverifiable = [], []
    for item in stored:
        receipt = transport.get_receipt(item.id)
        problem = _compare(item, receipt)
        if problem == "unverifiable":
            unverifiable.append(item.id)
        elif problem:
            mismatches.append(problem)
    chain = transport.account_balance(transport.treasury_account_id)
    succeeded = [item.id for item in stored if item.state == "succeeded"]
    return ReconciliationReport(
        len(stored), tuple(mismatches), tuple(unverifiable), books.internal_tinybar, chain,
        fees_unbooked=_unbooked_fees(ledger, succeeded),
        network_fees_tinybar=ledger.balance("network_fees"),
    )


def _unbooked_fees(ledger: Ledger, transaction_ids: list[str]) -> tuple[str, ...]:
    """Those of ``transaction_ids`` (``payer@seconds.nanos``) without a booked fee transfer
    ``fee:<payer-seconds-nanos>:<consensus time>`` (one read of the fee transfers)."""
    def fee_ids(conn: sa.Connection) -> set[str]:
        rows = conn.execute(sa.select(transfers.c.id).where(transfers.c.id.like("fee:%")))
        return {_sdk_id(row.id.removeprefix("fee:").rsplit(":", 1)[0]) for row in rows}

    booked = ledger.run(fee_ids)
    return tuple(tx_id for tx_id in transaction_ids if tx_id not in booked)


def _sdk_id(mirror_id: str) -> str:
    payer, _, rest = mirror_id.partition("-")
    return f"{payer}@{rest.replace('-', '.')}"


def _compare(item: store.StoredTransaction, receipt: TransferReceipt | None) -> str | None:
    status = None if receipt is None else receipt.status
    if item.state == "succeeded":
        if status is None:
            return "unverifiable"
        return None if status == "SUCCESS" else f"{item.id}: posted but receipt says {status}"
    if status == "SUCCESS":
        if item.state in store.LIVE_STATES:
            return None  # executed, not yet posted: the next settlement run posts it
        return f"{item.id}: executed on chain but the ledger marked it {item.state}"
    if item.state == "failed" and status is None:
        return "unverifiable"
    return None
