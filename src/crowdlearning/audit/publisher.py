"""``AuditPublisher``: its own thread seals journal entries into blocks and publishes them.

Never on the verdict or payout path: those only append entries (``AuditJournal.append``,
``collect_settled``). Each round (every ``poll_s``, at most a second):

1. at the first round, ``sweep_settled`` journals any settled transaction still missing;
2. **seal**: while at least ``max_entries`` entries wait, seal a full block; seal the rest into
   a partial block once the oldest has waited ``interval_s`` (so an entry waits at most about
   ``interval_s + poll_s`` for its block);
3. **publish** the blocks not yet confirmed, oldest first, ONE message each: sign the block's
   message with a fresh transaction id and store it with the block *before* sending; then send
   the stored bytes (again after a crash: ``DUPLICATE_TRANSACTION`` is accepted) until a receipt
   says SUCCESS (-> ``published``, with the message's sequence number on the topic). A stored
   message whose window passed with no receipt never executed: it is signed anew, same content.

A failure (network down, refused message, database busy) ends the round; the next one comes
after a backoff doubling up to ``retry_max_s``. Nothing is lost: what is not published stays in
the journal, and a restart resumes from it (published blocks are never sent again).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from crowdlearning.audit.journal import AuditJournal, Block
from crowdlearning.audit.network import AuditNetwork, MessageReceipt
from crowdlearning.audit.topic import deployment_topic
from crowdlearning.config import Settings
from crowdlearning.errors import HederaError

__all__ = ["AuditPublishError", "AuditPublisher", "PublisherStats"]

log = logging.getLogger(__name__)


class AuditPublishError(HederaError):
    """A block's message was refused or failed; it is tried again after a backoff."""


@dataclass
class PublisherStats:
    """What a publisher did since it was made."""

    sealed: int = 0  # blocks sealed
    submissions: int = 0  # messages sent (a resend of the same bytes counts again)
    published: int = 0  # blocks confirmed
    failures: int = 0  # rounds that ended in an error
    swept: int = 0  # settled transactions journaled by the start-up sweep
    last_error: str = ""


class AuditPublisher:
    """See the module docstring. ``start`` runs it in a daemon thread; ``run_once`` is one
    round (tests, benchmarks)."""

    def __init__(self, journal: AuditJournal, network: AuditNetwork, *,
                 max_entries: int = 256, interval_s: float = 5.0, retry_max_s: float = 60.0,
                 configured_topic: str = "", poll_s: float | None = None,
                 expiry_margin_s: int = 10, batch: int = 100, sweep: bool = True,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        if max_entries < 1 or interval_s <= 0 or retry_max_s <= 0:
            raise ValueError("max_entries >= 1, interval_s > 0 and retry_max_s > 0")
        self.journal, self.network = journal, network
        self.max_entries, self.interval_s, self.retry_max_s = max_entries, interval_s, retry_max_s
        self.poll_s = poll_s if poll_s is not None else min(1.0, interval_s)
        self.configured_topic = configured_topic
        self.expiry_margin_s, self.batch, self.clock_ns = expiry_margin_s, batch, clock_ns
        self.stats = PublisherStats()
        self._swept = not sweep
        self._topic: str | None = None
        self._round = threading.Lock()  # one round at a time (the thread, or a caller)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, journal: AuditJournal, network: AuditNetwork,
                      settings: Settings) -> AuditPublisher:
        """A publisher on the ``CROWDLEARNING_AUDIT_*`` settings."""
        return cls(journal, network, max_entries=settings.audit_block_max_entries,
                   interval_s=settings.audit_block_interval_s,
                   retry_max_s=settings.audit_retry_max_s,
                   configured_topic=settings.hedera_audit_topic_id,
                   expiry_margin_s=settings.settlement_expiry_margin_s)

    # ------------------------------------------------------------------ the thread
    def start(self) -> AuditPublisher:
        """Run rounds in a daemon thread until ``stop``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="audit-publisher",
                                            daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Start the next round now."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (a round in progress finishes its current call)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _loop(self) -> None:
        delay = self.poll_s
        while not self._stop.is_set():
            try:
                self.run_once()
                delay = self.poll_s
            except Exception as exc:  # never let the thread die: the journal keeps everything
                self.stats.failures += 1
                self.stats.last_error = repr(exc)
                delay = min(self.retry_max_s, max(self.poll_s, 2 * delay))
                log.warning("audit publishing failed, retrying in about %.1f s: %s", delay, exc)
                delay *= random.uniform(0.75, 1.0)
            self._wake.wait(delay)
            self._wake.clear()

    # ------------------------------------------------------------------ one round
    def run_once(self, *, force: bool = False) -> int:
        """One round; ``force`` seals a partial block now. Returns the blocks it confirmed;
        raises on the first failure."""
        with self._round:
            if not self._swept:
                self.stats.swept += self.journal.sweep_settled()
                self._swept = True
            self._seal(force)
            return self._publish()

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Seal and publish everything journaled so far (retrying failures until
        ``timeout_s``); whether nothing is left unpublished."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.run_once(force=True)
                if self.journal.pending()[0] == 0 and not self.journal.unpublished(1):
                    return True
            except Exception as exc:
                log.warning("audit drain: %s", exc)
            if time.monotonic() > deadline:
                return False
            time.sleep(min(self.poll_s, 0.05))

    def _seal(self, force: bool) -> None:
        while True:
            count, oldest = self.journal.pending()
            if count == 0 or oldest is None:
                return
            due = force or (self.clock_ns() - oldest) / 1e9 >= self.interval_s
            if not due and count < self.max_entries:
                return
            if self.journal.seal(self.max_entries, 1 if due else self.max_entries) is None:
                return
            self.stats.sealed += 1

    def _publish(self) -> int:
        waiting = self.journal.unpublished(self.batch)
        if not waiting:
            return 0
        if self._topic is None:
            self._topic = deployment_topic(self.journal, self.network, self.configured_topic)
        return sum(self._advance(block, self._topic) for block in waiting)

    def _advance(self, block: Block, topic: str) -> bool:
        """Move one block's message on; True once it is confirmed."""
        prepared = block.prepared
        if prepared is None:
            signed = self.network.prepare_audit_message(topic, block.message)
            block = self.journal.store_prepared(block.seq, topic, signed)
            prepared = block.prepared
            assert prepared is not None
        else:  # stored before (an earlier round, another process, a crash): maybe it executed
            receipt = self.network.audit_message_receipt(prepared.transaction_id)
            if receipt is not None:
                return self._finish(block, receipt)
            end_ns = (prepared.valid_start_ns
                      + (prepared.valid_duration_s + self.expiry_margin_s) * 1_000_000_000)
            if self.clock_ns() > end_ns:  # never executed and never will: sign it anew
                self.journal.drop_transaction(block.seq, prepared.transaction_id,
                                              "window passed without a receipt")
                return False
        outcome = self.network.submit(prepared)
        self.stats.submissions += 1
        self.journal.record_submit(block.seq, outcome.status, accepted=outcome.accepted)
        if not outcome.accepted:
            raise AuditPublishError(f"audit block {block.seq}: the network refused its message "
                                    f"{prepared.transaction_id}: {outcome.status}")
        receipt = self.network.audit_message_receipt(prepared.transaction_id)
        return False if receipt is None else self._finish(block, receipt)

    def _finish(self, block: Block, receipt: MessageReceipt) -> bool:
        if receipt.status == "SUCCESS":
            self.journal.mark_published(block.seq, receipt.transaction_id,
                                        receipt.sequence_number)
            self.stats.published += 1
            return True
        self.journal.drop_transaction(block.seq, receipt.transaction_id,
                                      f"receipt {receipt.status}")
        raise AuditPublishError(f"audit block {block.seq}: message {receipt.transaction_id} "
                                f"failed: {receipt.status}")
