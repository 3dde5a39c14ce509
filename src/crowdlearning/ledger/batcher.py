"""``MoveBatcher``: callers book one transfer at a time; one thread books them in batches.

For services whose callers each hold one transfer (an HTTP request, a game event) and would
otherwise pay a database transaction each: ``batcher.move(...)`` queues the transfer and blocks
until the writer thread has booked it with ``Ledger.transfer_many`` together with whatever else
arrived meanwhile. This is group commit: while one batch commits, the next one fills up; by
default the writer takes what is queued without waiting, ``max_wait_s`` makes it wait that long
for company. The caller sees what ``Ledger.move`` would give it: the booked (or already booked)
``Transfer``, or the same exception (``InsufficientFundsError``, ``UnknownAccountError``,
``IdempotencyConflictError``). If the batch's transaction itself fails (e.g.
``ConcurrencyError``), every caller in it gets that error and may retry with the same id.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from types import TracebackType

from crowdlearning.ledger.batch import MAX_BATCH, BatchItem, Outcome
from crowdlearning.ledger.book import Ledger
from crowdlearning.ledger.errors import (
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    LedgerError,
    UnknownAccountError,
)
from crowdlearning.ledger.records import Transfer, TransferKind, TransferSpec

__all__ = ["MoveBatcher"]

_ERRORS: dict[Outcome, type[LedgerError]] = {
    Outcome.INSUFFICIENT_FUNDS: InsufficientFundsError,
    Outcome.UNKNOWN_ACCOUNT: UnknownAccountError,
    Outcome.IDEMPOTENCY_CONFLICT: IdempotencyConflictError,
}
_Request = tuple[TransferSpec, "Future[BatchItem]"]


class MoveBatcher:
    """A writer thread booking queued transfers in batches; use as a context manager."""

    def __init__(self, ledger: Ledger, *, max_batch: int = 500, max_wait_s: float = 0.0) -> None:
        if not 0 < max_batch <= MAX_BATCH:
            raise InvalidInputError(f"max_batch must be in 1..{MAX_BATCH}, got {max_batch}")
        self.ledger = ledger
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.batches = 0  # transactions run so far (for benchmarks and tests)
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ledger-batcher", daemon=True)
        self._closed = False
        self._thread.start()

    def submit(self, spec: TransferSpec) -> Future[BatchItem]:
        """Queue ``spec``; the future resolves to its ``BatchItem`` once its batch committed."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        if spec.kind in (TransferKind.POST, TransferKind.VOID):  # refused alone, not the batch
            raise InvalidInputError(f"transfer {spec.id}: post/void transfers are not batched")
        future: Future[BatchItem] = Future()
        self._queue.put((spec, future))
        return future

    def transfer(self, spec: TransferSpec) -> Transfer:
        """Book ``spec`` in the next batch; returns or raises like ``Ledger.transfer``."""
        item = self.submit(spec).result()
        if item.transfer is not None:
            return item.transfer
        error = _ERRORS[item.outcome]
        if error is InsufficientFundsError:
            raise InsufficientFundsError(item.detail, item.account)
        raise error(item.detail)

    def move(
        self,
        transfer_id: str,
        from_account: str,
        to_account: str,
        amount_tinybar: int,
        memo: str = "",
    ) -> Transfer:
        """Like ``Ledger.move``, booked together with other callers' transfers."""
        spec = TransferSpec.move(transfer_id, from_account, to_account, amount_tinybar, memo=memo)
        return self.transfer(spec)

    def close(self) -> None:
        """Book what is queued, then stop the writer thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> MoveBatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    request = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if request is None:
                    stopping = True
                    break
                batch.append(request)
            self._book(batch)

    def _book(self, batch: list[_Request]) -> None:
        try:
            items = self.ledger.transfer_many([spec for spec, _ in batch])
        except BaseException as exc:  # the whole transaction failed: every caller learns why
            for _, future in batch:
                future.set_exception(exc)
            return
        finally:
            self.batches += 1
        for (_, future), item in zip(batch, items, strict=True):
            future.set_result(item)

