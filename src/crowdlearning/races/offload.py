"""The race league's slow pure computation, in a child process: never on the game server's GIL.

Why. The game loop (``server/game_loop.py``) ticks on the event loop's thread; a worker *thread*
of the same process doing seconds of Python (drawing a track, re-simulating a race for its
replay, fine-tuning a team fork) takes the GIL from it every switch interval (5 ms), and a
tick of 15-25 ms at 1,000 players that gives the GIL up often (numpy calls, socket writes)
waits each time. ``bench/bench_race_stalls.py`` measures it per job, thread against child
(``docs/benchmarks.md``, "Race jobs beside the game loop").

What. ``Offload.run(job, *args)`` (blocking: call it from a worker thread, never the event
loop) runs ``job`` in a ``ProcessPoolExecutor`` of ONE ``spawn`` child (created by ``start`` or the
first job, at nice 19, single-threaded BLAS and torch, ending with its parent) and returns its
result; only the arguments and the result cross (pickled), so jobs are module-level functions
of plain, picklable data (the judge's child, ``judging/process.py``, is a whole stack behind a
pipe; stateless functions need no more than an executor):

- ``prepare_race(plan, registry_root)``: the race's track drawn, its ``TrackBank`` packed and
  every entrant version's weights read (``Prepared``); the live race (``RaceRunner``, its
  inference included) stays in the server: only the preparation moves.
- ``replay_race(plan, registry_root, frame_every)``: a finished race re-simulated (frames and
  result, whose digest must equal the live race's);
- ``draw_track(choice)``: the track of a recorded or scheduled race (``RaceService.track``).
- ``train_fork(...)`` (``races/forks.py``): a team fork's fine-tune, weights back as arrays;
  the server registers them.

Deterministic either way: the same functions run in the thread and in the child on the same
inputs, single-threaded, and weights cross as exact float32 arrays (``tests/races/
test_offload.py`` checks the plan's track, the replay digest and the fork weights both ways).

``races_offload`` = ``thread`` keeps the old path (the job runs on the calling thread). It is
also the fallback when the child cannot start (no ``/dev/shm`` semaphores or a process limit
in a sandbox, a main script ``spawn`` cannot import again, e.g. a parent run from stdin): a
server that cannot race off-GIL still races, slower ticks beside it, logged once. What stays on
the server's GIL: unpickling the result (a replay's ~900 kB of frames: ~10 ms in one call).
A child that dies during a job (killed, out of memory) fails that job (``BrokenProcessPool``:
the race fails, the next one runs) and a new child is started for the next job.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

__all__ = ["Offload", "OffloadMode", "Prepared", "Weights", "draw_track", "net_from_weights",
           "prepare_race", "replay_race", "weights_of"]

log = logging.getLogger(__name__)
OffloadMode = Literal["process", "thread"]
CHILD_NICENESS = 19  # the child yields the CPU to the game loop (not SCHED_IDLE: a race's
# preparation must still finish before its start on a busy machine)
START_TIMEOUT_S = 120.0  # the child's first answer (imports numpy, torch, numba)
T = TypeVar("T")
# a version's weights as plain data: (architecture dict, state dict of float32 arrays)
Weights = tuple[dict, dict[str, np.ndarray]]


class Offload:
    """Runs jobs in one child process (``mode`` "process") or on the calling thread ("thread");
    see the module docstring."""

    def __init__(self, mode: OffloadMode = "process", name: str = "races") -> None:
        if mode not in ("process", "thread"):
            raise ValueError(f"offload mode must be 'process' or 'thread', got {mode!r}")
        self.mode: OffloadMode = mode
        self.name = name
        self.fallback_reason: str | None = None  # why the process path was given up
        self.jobs = 0  # jobs run in the child
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def in_process(self) -> bool:
        """Jobs run in the child (not the fallback, not ``thread``)."""
        return self.mode == "process" and self.fallback_reason is None

    @property
    def running(self) -> bool:
        """A child is up."""
        return self._pool is not None

    def start(self) -> bool:
        """Start the child now if it is not running (blocking, ~2 s of the child's imports);
        whether jobs will run in it."""
        return self._pool_or_none() is not None

    def run(self, job: Callable[..., T], *args: Any) -> T:
        """``job(*args)`` in the child, or here (blocking)."""
        pool = self._pool_or_none()
        if pool is None:
            return job(*args)
        try:
            result = pool.submit(job, *args).result()
        except BrokenProcessPool:
            log.error("%s offload: the child process died during %s; a new one starts with "
                      "the next job", self.name, getattr(job, "__name__", job))
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        self.jobs += 1
        return result

    def _pool_or_none(self) -> ProcessPoolExecutor | None:
        if not self.in_process:
            return None
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name} offload is closed")
            if self._pool is None:
                self._pool = self._start()
            return self._pool

    def _start(self) -> ProcessPoolExecutor | None:
        """The child, answering; None (and the thread path from now on) if it cannot start."""
        pool = None
        try:
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_child_init, initargs=(os.getpid(),))
            pool.submit(_ping).result(timeout=START_TIMEOUT_S)
        except Exception as exc:  # any failure to start means: run here
            self.fallback_reason = f"{type(exc).__name__}: {exc}"
            log.warning("%s offload: no child process (%s); running on a thread of the game "
                        "server instead (its ticks will suffer)", self.name,
                        self.fallback_reason)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            return None
        return pool

    def stop(self) -> None:
        """Stop the child once its jobs are done; the next job starts another (for rare jobs:
        an idle child keeps ~400 MB of numpy, torch and numba resident)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def close(self) -> None:
        """Stop the child and wait until it has exited (queued jobs are cancelled; a job
        running in it, a second or two at most, is let finish): a server that stops leaves no
        process behind."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# --- the child --------------------------------------------------------------------------------
def _child_init(parent: int) -> None:
    """Single-threaded numerics (as the server), low priority, gone with its parent."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # for anything loaded from now on; the loaded BLAS just below
    from crowdlearning.policy.network import single_threaded_blas, use_torch_threads

    use_torch_threads(1)
    single_threaded_blas()
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)

    def watch() -> None:  # a server killed with SIGKILL cannot stop its child
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="offload-parent-watch", daemon=True).start()


def _ping() -> int:
    return os.getpid()


# --- jobs (module level: pickled by name) ---------------------------------------------------
def weights_of(net: Any) -> Weights:
    """A network as plain data (exact float32 copies)."""
    return (net.arch.to_dict(),
            {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()})


def net_from_weights(weights: Weights) -> Any:
    """The ``PolicyNet`` of ``weights_of`` (bit for bit the same parameters)."""
    import torch

    from crowdlearning.policy.network import Architecture, PolicyNet

    arch, state = weights
    net = PolicyNet(Architecture.from_dict(arch))
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    return net.eval()


@dataclass(frozen=True)
class Prepared:
    """What a race needs that is pure computation: its track, packed, and its models' weights."""

    track: Any  # sim.track.Track
    bank: Any  # sim.track_bank.TrackBank of [track]
    weights: dict[int, Weights]

    def policies(self) -> dict[int, Any]:
        """A ``Policy`` per version (cheap: the weights are read already)."""
        from crowdlearning.policy.network import Policy

        return {v: Policy(net_from_weights(w)) for v, w in self.weights.items()}


def prepare_race(plan: Any, registry_root: str | Path) -> Prepared:
    """Draw the race's track, pack it, read its entrants' weights (``plan``: ``RacePlan``)."""
    from crowdlearning.learning.registry import ModelRegistry
    from crowdlearning.sim.track_bank import TrackBank

    track = plan.track.track()
    registry = ModelRegistry(registry_root)
    weights = {v: weights_of(registry.load(v)[0])
               for v in sorted({e.version for e in plan.entrants})}
    return Prepared(track, TrackBank.build([track]), weights)


def draw_track(choice: Any) -> Any:
    """The ``Track`` of a ``TrackChoice``."""
    return choice.track()


def replay_race(plan: Any, registry_root: str | Path, frame_every: int) -> tuple[list[dict],
                                                                                 dict]:
    """``runner.replay`` of a recorded race, its policies loaded from the registry."""
    from crowdlearning.learning.registry import ModelRegistry
    from crowdlearning.races.runner import load_policies, replay

    policies = load_policies(ModelRegistry(registry_root), [e.version for e in plan.entrants])
    return replay(plan, policies, frame_every=frame_every)
