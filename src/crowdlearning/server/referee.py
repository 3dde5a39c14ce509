"""From a finished run to the player's screen: verdict, money moved, Hedera transaction id.

The game loop calls ``Referee.on_finish`` inside a tick; the contribution goes to the judge
(``judge.py``: in a child process by default) through the runtime's worker thread, and the
answer comes back to the run's ``Outbox`` on the event loop. Background tasks settle pending
payouts (pushing ``settled`` with the Hedera transaction id to the player who earned them) and
close rounds (a promoted champion takes the wheel at once).

Messages pushed: ``verdict`` (decision, effect %, reward / penalty, balances, audit and payout
ids), ``settled`` (payout id, Hedera transaction id, state), ``error`` (``verdict_queue_full``,
``verdict_failed``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future

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
        runtime.game.on_finish = self.on_finish

    # --- verdicts ---------------------------------------------------------------------------
    def on_finish(self, run: FinishedRun) -> None:
        if self.in_flight >= self.runtime.settings.server_verdict_queue:
            run.outbox.event({"type": "error", "code": "verdict_queue_full",
                              "message": "too many runs are waiting for a verdict; this run "
                                         "was not judged and nothing was recorded"})
            return
        self.in_flight += 1
        judge = self.runtime.judge  # encoding the contribution is the worker's job, not the tick's
        future = self.runtime.worker.submit(
            lambda: judge.submit(run.spec, run.contribution.to_bytes()))
        future.add_done_callback(
            lambda f: self.loop.call_soon_threadsafe(self._deliver, run, f))

    def _deliver(self, run: FinishedRun, future: Future) -> None:
        self.in_flight -= 1
        try:
            message = future.result()
        except Exception as exc:
            log.exception("verdict for %s failed", run.spec.run_id)
            run.outbox.event({"type": "error", "code": "verdict_failed",
                              "message": f"the verdict could not be computed: {exc}"})
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
