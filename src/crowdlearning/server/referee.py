"""From a finished run to the player's screen: verdict, money moved, Hedera transaction id.

The game loop calls ``Referee.on_finish`` inside a tick; finished runs queue up and go to the
judge (``judge.py``: in a child process by default) in batches through the runtime's worker
thread (a batch is as large as the judge has workers: one run at a time inline, several on a Ray
pool or a shared judge), and each answer comes back to its run's ``Outbox`` on the event loop.
Background tasks settle pending payouts (pushing ``settled`` with the Hedera transaction id to
the player who earned them), close rounds (a promoted champion drives new runs at once) and read
deposits.

Messages pushed: ``verdict`` (decision, effect %, reward / penalty, balances, audit and payout
ids), ``settled`` (payout id, Hedera transaction id, state), ``error`` (``verdict_queue_full``,
``verdict_failed``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable

from crowdlearning.policy.network import Policy
from crowdlearning.server.game_loop import FinishedRun, Outbox
from crowdlearning.server.runtime import DEPOSIT_CURSOR, Runtime

__all__ = ["Referee"]

log = logging.getLogger(__name__)


class Referee:
    """See the module docstring; create it on the event loop that runs the game."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime, self.loop = runtime, loop
        self.in_flight = 0
        self._awaiting: dict[str, Outbox] = {}  # payout id -> who to tell when it settles
        self._queue: deque[FinishedRun] = deque()  # finished runs waiting for the judge
        self._lock = threading.Lock()
        self._deposit_lock = threading.Lock()
        self._draining = False
        settings = runtime.settings
        # a batch is judged together: as many runs as the judge has workers (one at a time
        # inline, where a bigger batch would only make the first run wait for the last)
        self.batch_size = (settings.judge_workers
                           if settings.judge_backend == "ray" or settings.judge_url else 1)
        runtime.game.on_finish = self.on_finish

    # --- verdicts ---------------------------------------------------------------------------
    def on_finish(self, run: FinishedRun) -> None:
        if self.in_flight >= self.runtime.settings.server_verdict_queue:
            run.outbox.event({"type": "error", "code": "verdict_queue_full",
                              "message": "too many runs are waiting for a verdict; this run "
                                         "was not judged and nothing was recorded"})
            return
        self.in_flight += 1
        with self._lock:
            self._queue.append(run)
            start = not self._draining
            self._draining = True
        if start:
            self._schedule()

    def _judge_batch(self) -> None:
        """On the worker: judge up to ``batch_size`` queued runs together, then hand the worker
        back (settlement and rounds interleave) and come again while runs are waiting."""
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(self.batch_size,
                                                               len(self._queue)))]
        try:
            # encoding the recordings is the worker's job, not the tick's
            messages: list[dict | Exception] = list(self.runtime.judge.submit_many(
                [(run.spec, run.contribution.to_bytes()) for run in batch]))
        except Exception as exc:
            log.exception("verdicts for %d runs failed", len(batch))
            messages = [exc] * len(batch)
        for run, message in zip(batch, messages, strict=True):
            self.loop.call_soon_threadsafe(self._deliver, run, message)
        with self._lock:
            more = bool(self._queue)
            self._draining = more
        if more:
            self._schedule()

    def _schedule(self) -> None:
        try:
            self.runtime.worker.submit(self._judge_batch)
        except RuntimeError:  # the server is shutting down: these runs go unjudged
            with self._lock:
                self._draining = False

    def _deliver(self, run: FinishedRun, message: dict | Exception) -> None:
        self.in_flight -= 1
        if isinstance(message, Exception):
            run.outbox.event({"type": "error", "code": "verdict_failed",
                              "message": f"the verdict could not be computed: {message}"})
            return
        if message.get("payout_id"):
            self._awaiting[message["payout_id"]] = run.outbox
        run.outbox.event(message)

    # --- settlement and rounds ------------------------------------------------------------
    async def settle_forever(self) -> None:
        while True:
            await asyncio.sleep(self.runtime.settings.server_settle_interval_s)
            await self._in_worker(self.settle_once)

    def settle_once(self) -> None:
        """One settlement run; tell players whose payouts reached a final state."""
        for message in self.runtime.judge.settle(list(self._awaiting)):
            outbox = self._awaiting.pop(message["payout_id"], None)
            if outbox is not None:
                self.loop.call_soon_threadsafe(outbox.event, message)

    async def rounds_forever(self) -> None:
        while True:
            await asyncio.sleep(self.runtime.settings.server_round_interval_s)
            await self._in_worker(self.close_round)

    def close_round(self) -> None:
        """Merge the round's improving contributions; a promoted champion drives from now on."""
        version = self.runtime.judge.close_round()
        if version is not None:
            policy = self.runtime.trainer.policy()
            self.loop.call_soon_threadsafe(self._swap, policy, version)

    def _swap(self, policy: Policy, version: int) -> None:
        self.runtime.game.set_champion(policy, version)  # runs in progress keep their version

    # --- deposits ---------------------------------------------------------------------------
    async def deposits_forever(self) -> None:
        if self.runtime.deposits is None:
            return
        while True:
            await asyncio.sleep(self.runtime.settings.server_deposit_poll_s)
            await self._in_worker(self.poll_deposits_once)

    def poll_deposits_once(self) -> int:
        """Credit new deposits seen on the mirror node; returns how many were credited.

        The cursor is saved after the ledger writes: a crash in between re-reads a page, and the
        ledger's transfer ids (``deposit:<transaction id>``) make that a no-op."""
        watcher = self.runtime.deposits
        if watcher is None:
            return 0
        with self._deposit_lock:  # one reader at a time moves the cursor
            result = watcher.poll()
            self.runtime.store.set_cursor(DEPOSIT_CURSOR, watcher.cursor)
        for d in result.unmatched:
            log.warning("deposit %s of %d tinybar names no player: refund it by hand",
                        d.transaction_id, d.amount_tinybar)
        return len(result.credited)

    async def _in_worker(self, fn: Callable[[], object]) -> None:
        try:
            await self.loop.run_in_executor(self.runtime.worker, fn)
        except Exception:
            log.exception("background job %s failed", getattr(fn, "__name__", fn))
