"""From a finished run to the player's screen: verdict, money moved, Hedera transaction id.

The game loop calls ``Referee.on_finish`` inside a tick; the runtime's worker thread writes each
finished run into the verdict backlog on disk (``backlog.py``: a busy judge or a restart loses
no run) and feeds the oldest to the judge (``judging``: in a child process by default) in
batches as large as the judge has workers (one run at a time inline, several on a Ray pool or a
shared judge); each answer comes back to its run's ``Outbox`` on the event loop.
Background tasks settle pending payouts (pushing ``settled`` with the Hedera transaction id to
the player who earned them), close rounds (a promoted champion drives new runs at once) and read
deposits.

A paid run holds stake from its start (``run_holds.py``); the referee gives that hold back when
the run will not be judged: it ended with nothing recorded (``on_discard``), the verdict queue
was full, or the judge gave up on it. Once a run is answered whatever is still held behind it is
released (a hold its verdict settled is left as it is). At start, the holds of this server's
paid runs that are neither live nor in the backlog (lost in a restart) are voided.

Messages pushed: ``queued`` (place in the line for a verdict, when others are ahead),
``verdict`` (decision, effect %, reward / penalty, balances, audit and payout ids, and the
``explanation`` the judge built with it: ``judging.local.verdict_message``,
``evaluation.explain``),
``settled`` (payout id, Hedera transaction id, state), ``error`` (``verdict_queue_full``,
``verdict_failed``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from crowdlearning.config import Settings
from crowdlearning.evaluation.curriculum import play_tracks, unlocked_families
from crowdlearning.judging.errors import JudgeUnavailableError
from crowdlearning.policy.network import Policy
from crowdlearning.server.backlog import VerdictBacklog
from crowdlearning.server.game_loop import FinishedRun, Outbox, RunSpec
from crowdlearning.server.runtime import DEPOSIT_CURSOR, Runtime
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_bank import TrackBank

__all__ = ["Referee", "backlog_dir"]

log = logging.getLogger(__name__)
MAX_JUDGE_ATTEMPTS = 3  # a batch the judge fails this often is answered with an error
MAX_JUDGE_CRASHES = 5  # a run the judge process died on this often is answered with an error


def backlog_dir(settings: Settings) -> Path:
    """This server's verdict backlog (several game servers may share one data directory)."""
    return settings.data_dir / "verdict-backlog" / f"{socket.gethostname()}-{settings.server_port}"


class Referee:
    """See the module docstring; create it on the event loop that runs the game."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop) -> None:
        self.runtime, self.loop = runtime, loop
        self._awaiting: dict[str, Outbox] = {}  # payout id -> who to tell when it settles
        self._arrived: deque[FinishedRun] = deque()  # finished, not yet in the backlog
        self._outboxes: dict[str, Outbox] = {}  # run id -> who waits for its verdict
        self._attempts: dict[str, int] = {}  # backlog key -> judge failures so far
        self._unavailable_s = 0.0  # current back-off while the judge cannot be reached
        self._crashes: dict[str, int] = {}  # backlog key -> judge deaths while judging it
        self._lock = threading.Lock()
        self._deposit_lock = threading.Lock()
        self._draining = False
        self._offered: tuple[str, ...] | None = None  # families whose play tracks were offered
        settings = runtime.settings
        self.backlog = VerdictBacklog(backlog_dir(settings))
        # runs not yet answered: the backlog left by the last start, plus what finishes now
        self.in_flight = len(self.backlog)
        # a batch is judged together: as many runs as the judge has workers (one at a time
        # inline, where a bigger batch would only make the first run wait for the last)
        self.batch_size = (settings.judge_workers
                           if settings.judge_backend == "ray" or settings.judge_url else 1)
        self.holds = runtime.holds
        runtime.game.on_finish = self.on_finish
        runtime.game.on_discard = self.on_discard
        self.holds.void_orphans(self.backlog.run_ids() | runtime.game.live_run_ids())
        if len(self.backlog):
            log.info("%d finished runs from the last start wait for their verdict",
                     len(self.backlog))
            self._draining = True
            self._schedule()

    # --- verdicts ---------------------------------------------------------------------------
    def on_finish(self, run: FinishedRun) -> None:
        """In the tick: hand the run on (the worker writes it down and judges it)."""
        if self.in_flight >= self.runtime.settings.server_verdict_queue:
            run.outbox.event({"type": "error", "code": "verdict_queue_full",
                              "message": "too many runs are waiting for a verdict; this run "
                                         "was not judged and nothing was recorded"
                                         + (" (its stake is no longer held)"
                                            if run.spec.paid else "")})
            self.on_discard(run.spec, "the verdict queue was full")
            return
        self.in_flight += 1
        with self._lock:
            self._arrived.append(run)
            start = not self._draining
            self._draining = True
        if start:
            self._schedule()

    def on_discard(self, spec: RunSpec, why: str) -> None:
        """A run that will never be judged: a paid one's hold is given back (off the loop)."""
        if spec.paid:
            try:
                self.loop.run_in_executor(None, self.holds.void, spec.run_id, why)
            except RuntimeError:  # the loop is closing: void it here
                self.holds.void(spec.run_id, why)

    def _judge_batch(self) -> None:
        """On the worker: write the runs that arrived into the backlog (encoding them is the
        worker's job, not the tick's), judge the oldest ``batch_size`` together, then hand the
        worker back (settlement and rounds interleave) and come again while runs wait. Whatever
        fails here, judging goes on: a run leaves the backlog only with its answer."""
        try:
            self._write_arrived()
            aside = self.backlog.set_aside
            batch = self.backlog.head(self.batch_size)
            if self.backlog.set_aside > aside:  # unreadable: no run to answer, none waits
                self.loop.call_soon_threadsafe(self._forget, self.backlog.set_aside - aside)
            if batch:
                self._judge(batch)
        except Exception:
            log.exception("the verdict worker failed; trying again shortly")
            time.sleep(1.0)
        finally:
            with self._lock:
                more = bool(self._arrived) or len(self.backlog) > 0
                self._draining = more
            if more:
                self._schedule()

    def _write_arrived(self) -> None:
        """Into the backlog, oldest first; a run leaves ``_arrived`` only once written."""
        while True:
            with self._lock:
                if not self._arrived:
                    return
                run = self._arrived[0]
            self._outboxes[run.spec.run_id] = run.outbox
            place = self.backlog.push(run.spec, run.contribution.to_bytes())
            with self._lock:
                self._arrived.popleft()
            if place > self.batch_size:
                self.loop.call_soon_threadsafe(run.outbox.event, {
                    "type": "queued", "position": place,
                    "message": f"{place - 1} runs are ahead of yours for a verdict; it will "
                               "arrive here, and in your wallet's run history"})

    def close(self) -> None:
        """At shutdown (the worker stopped): write down runs that finished but were not yet in
        the backlog, so that the next start judges them."""
        with self._lock:
            arrived = list(self._arrived)
            self._arrived.clear()
        for run in arrived:
            self.backlog.push(run.spec, run.contribution.to_bytes())
        if arrived:
            log.info("%d finished runs kept for the next start", len(arrived))

    def _judge(self, batch: list[tuple[str, RunSpec, bytes]]) -> None:
        try:
            messages: list[dict] = list(self.runtime.judge.submit_many(
                [(spec, data) for _, spec, data in batch]))
            if len(messages) != len(batch):
                raise RuntimeError(f"the judge answered {len(messages)} of {len(batch)} runs")
        except JudgeUnavailableError as exc:  # keep the runs, back off
            if exc.during_request:  # the judge died on this batch: perhaps because of it
                for key, spec, _ in batch:
                    self._crashes[key] = self._crashes.get(key, 0) + 1
                    if self._crashes[key] >= MAX_JUDGE_CRASHES:
                        self._finish(key, spec, {
                            "type": "error", "code": "verdict_failed",
                            "message": "the judge failed on this run "
                                       f"{MAX_JUDGE_CRASHES} times; it was not judged"})
            self._unavailable_s = min(30.0, max(0.5, 2 * self._unavailable_s))
            log.warning("judge unavailable (%s): trying again in %.1f s", exc,
                        self._unavailable_s)
            time.sleep(self._unavailable_s)
            return
        except Exception as exc:  # the judge failed on this batch
            log.exception("verdicts for %d runs failed", len(batch))
            for key, spec, _ in batch:
                self._attempts[key] = self._attempts.get(key, 0) + 1
                if self._attempts[key] >= MAX_JUDGE_ATTEMPTS:  # given up: tell the player
                    self._finish(key, spec, {
                        "type": "error", "code": "verdict_failed",
                        "message": f"the verdict could not be computed: {exc}"})
            time.sleep(min(5.0, 0.5 * max(self._attempts.values(), default=1)))
            return
        self._unavailable_s = 0.0
        for (key, spec, _), message in zip(batch, messages, strict=True):
            self._finish(key, spec, message)

    def _finish(self, key: str, spec: RunSpec, message: dict) -> None:
        self.backlog.remove(key)
        self._attempts.pop(key, None)
        self._crashes.pop(key, None)
        if spec.paid:  # answered: nothing can book on its hold any more
            self.holds.void(spec.run_id, f"not judged: {message.get('message', '')}"
                            if message.get("type") == "error" else "judged without its hold")
        self.loop.call_soon_threadsafe(self._deliver, spec.run_id, message)

    def _schedule(self) -> None:
        try:
            self.runtime.worker.submit(self._judge_batch)
        except RuntimeError:  # shutting down: the backlog keeps the runs for the next start
            with self._lock:
                self._draining = False

    def _forget(self, count: int) -> None:
        self.in_flight -= count

    def _deliver(self, run_id: str, message: dict) -> None:
        self.in_flight -= 1
        outbox = self._outboxes.pop(run_id, None)
        if outbox is None:  # judged after a restart: the run history shows it
            return
        if message.get("payout_id"):
            self._awaiting[message["payout_id"]] = outbox
        outbox.event(message)

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
            # that version's weights (a shared registry may already hold a newer champion)
            net, _ = self.runtime.trainer.registry.load(version)
            self.loop.call_soon_threadsafe(self._swap, Policy(net), version)
        # a promotion's mastery, or a stalled champion (``Curriculum.stalled``), may have
        # unlocked a family
        self._offer_unlocked_tracks()

    def _offer_unlocked_tracks(self) -> None:
        """The play tracks of families the curriculum unlocked since the game started (kept
        beside the registry): generated and packed here, added on the loop."""
        runtime = self.runtime
        families = unlocked_families(runtime.trainer.registry.root)
        if families == self._offered:
            return  # nothing new: the tracks are not generated again
        self._offered = families
        fresh = {seed: t for seed, t in
                 play_tracks(runtime.settings.server_play_tracks, families,
                             runtime.settings.server_frontier_play_tracks).items()
                 if seed not in runtime.tracks}
        if fresh:
            bank = TrackBank.build([*runtime.game.sim.bank.tracks, *fresh.values()])
            self.loop.call_soon_threadsafe(self._add_tracks, fresh, bank)

    def _add_tracks(self, tracks: dict[int, Track], bank: TrackBank) -> None:
        self.runtime.game.add_tracks(tracks, bank)
        self.runtime.tracks.update(tracks)

    def _swap(self, policy: Policy, version: int) -> None:
        self.runtime.game.set_champion(policy, version)  # runs in progress keep their version

    # --- deposits ---------------------------------------------------------------------------
    async def deposits_forever(self) -> None:
        if self.runtime.deposit_reader is None:
            return
        while True:
            await asyncio.sleep(self.runtime.settings.server_deposit_poll_s)
            # on a thread of its own, not the verdict worker: deposits need no judge, and must
            # not wait while the worker backs off from an unreachable one
            try:
                await asyncio.to_thread(self.poll_deposits_once)
            except Exception:
                log.exception("reading deposits failed")

    def poll_deposits_once(self) -> int:
        """Credit new deposits seen on the mirror node; returns how many were credited.

        The ledger's shared position (``ServiceDepositReader``) moves after the ledger writes,
        then this server's copy of it: a crash in between re-reads a page, and the ledger's
        transfer ids (``deposit:<transaction id>``, ``fee:...``) make that a no-op."""
        reader = self.runtime.deposit_reader
        if reader is None:
            return 0
        with self._deposit_lock:  # one reader at a time moves the cursor
            result = reader.poll()
            self.runtime.store.set_cursor(DEPOSIT_CURSOR, reader.watcher.cursor)
        return len(result.credited)

    async def _in_worker(self, fn: Callable[[], object]) -> None:
        try:
            await self.loop.run_in_executor(self.runtime.worker, fn)
        except Exception:
            log.exception("background job %s failed", getattr(fn, "__name__", fn))
