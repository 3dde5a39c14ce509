"""How much the game loop's ticks stall while the race league's slow jobs run beside it.

One process runs the real ``server/game_loop.py`` ``GameLoop`` headless on its asyncio event
loop at 20 Hz (``run_forever``, as the server does) with ``--players`` runs on 4 play tracks
(the champion drives them: no player inputs, no sockets; a run that ends is replaced at once,
so finished runs' recordings are built as in the server). Beside it, for ``--window-s`` each,
one background job runs back to back, the way the server runs it:

- ``prepare``: ``RaceService.prepare`` of the next timetable slots (plan, track drawn from the
  unlocked families, 8 models loaded, the ``RaceRunner`` built) on the service's worker thread;
- ``replay``: ``RaceService.replay`` of a recorded 2-lap, 8-car race (the cache emptied before
  each), on the same worker thread, as the replay route calls it;
- ``fork``: ``races.forks.build_fork`` (``--fork-updates`` steps, the production 500 by default)
  on a thread at the lowest priority, as ``TeamForks`` builds one.

Each job is measured with ``races_offload`` = ``thread`` (the job's computation on the worker
thread: the old path) and ``process`` (its pure computation in the offload's child process,
``races/offload.py``), interleaved in the same run, between two windows without any job (the
baseline). Per window: the tick interval (between tick starts) p50 / p99 / max, the tick's own
duration p50 / p99, jobs done and their median wall time, the 1-minute load average at the
window's end, and the p99 interval's ratio to the baseline's.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        .venv/bin/python bench/bench_race_stalls.py --players 1000 --window-s 10

Bounded: at most 1,000 players, 60 s a window.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy loads, here and in the offload's child

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from crowdlearning.config import Settings  # noqa: E402
from crowdlearning.evaluation.curriculum import play_tracks  # noqa: E402
from crowdlearning.learning.bootstrap import train_initial_model  # noqa: E402
from crowdlearning.learning.dagger import BASE_DATA_ID  # noqa: E402
from crowdlearning.learning.dataset import AggregatedDataset  # noqa: E402
from crowdlearning.learning.labels import LabelSet  # noqa: E402
from crowdlearning.learning.registry import ModelRegistry  # noqa: E402
from crowdlearning.ledger.db import make_engine  # noqa: E402
from crowdlearning.policy.network import Policy  # noqa: E402
from crowdlearning.races.forks import build_fork  # noqa: E402
from crowdlearning.races.offload import Offload  # noqa: E402
from crowdlearning.races.service import RaceService  # noqa: E402
from crowdlearning.races.teams import Team  # noqa: E402
from crowdlearning.server.game_loop import (  # noqa: E402
    _GC_FULL_EVERY,
    FinishedRun,
    GameLoop,
    Outbox,
    RunSpec,
)
from crowdlearning.sim.families import FAMILIES  # noqa: E402

torch.set_num_threads(1)
MODES = ("thread", "process")
JOBS = ("prepare", "replay", "fork")
CARS = 8


@dataclass
class Window:
    label: str
    mode: str
    intervals: np.ndarray
    ticks: np.ndarray
    jobs: list[float]
    load: float
    full_gc: bool  # the game loop's once-a-minute full collection fell in this window


class Players:
    """``n`` runs on the game loop, each ended run replaced by a new one after the tick."""

    def __init__(self, n: int, net: torch.nn.Module) -> None:
        self.ended: list[RunSpec] = []
        self.game = GameLoop(Policy(net), 0, play_tracks(4), capacity=n, run_ticks=2400,
                             on_finish=self._finished)
        self.count = 0
        for _ in range(n):
            self._join()

    def _finished(self, run: FinishedRun) -> None:
        self.ended.append(run.spec)

    def _join(self) -> None:
        i = self.count
        self.count += 1
        seeds = self.game.seeds
        self.game.join(RunSpec(f"run-{i}", f"p{i % 997}", f"player{i}", seeds[i % len(seeds)]),
                       Outbox(8))

    async def refill(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            while self.ended:
                self.ended.pop()
                with contextlib.suppress(Exception):
                    self._join()


def build_world(root: Path) -> tuple[ModelRegistry, AggregatedDataset, Team, list[str]]:
    """A registry of ``CARS`` versions (v0 the champion), a dataset with the base's data and a
    team's five contributions."""
    registry = ModelRegistry(root / "models")
    net, training = train_initial_model(0)
    meta = registry.register(net, parent_version=None, contributions=[BASE_DATA_ID],
                             training=training)
    registry.set_champion(meta.version)
    gen = torch.Generator().manual_seed(5)
    for v in range(1, CARS):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.002 * torch.randn(p.shape, generator=gen))  # they still finish
        registry.register(net, parent_version=v - 1, contributions=[f"c{v}"])
    dataset = AggregatedDataset(root / "dataset")
    rng = np.random.default_rng(0)

    def rows(n: int, source: str) -> LabelSet:
        return LabelSet.from_actions(rng.normal(size=(n, 18)).astype(np.float32),
                                     rng.uniform(-1, 1, (n, 2)).astype(np.float32), source)

    dataset.append(BASE_DATA_ID, "platform", rows(20_000, BASE_DATA_ID))
    ids = [f"t{i}" for i in range(5)]
    for cid in ids:
        dataset.append(cid, "p1", rows(2_000, cid))
    return registry, dataset, Team(1, "Bench", 0, (1,)), ids


FAMILY_NAMES = [tuple(f.name for f in FAMILIES)]  # what the services race on (all unlocked)


def services(root: Path, registry: ModelRegistry) -> dict[str, RaceService]:
    out = {}
    for mode in MODES:
        settings = Settings(environment="test", data_dir=root / mode, races_offload=mode,
                            races_max_cars=CARS, races_interval_s=300)
        out[mode] = RaceService(settings, registry,
                                make_engine(f"sqlite:///{root / f'races-{mode}.db'}"),
                                families=lambda: FAMILY_NAMES[0])
    return out


def record_a_race(service: RaceService) -> str:
    """The longest of a few races on easy tracks (where the bench's models finish), run to its
    end off the clock and recorded: the replays' subject."""
    FAMILY_NAMES[0], every = ("easy",), FAMILY_NAMES[0]
    runs = []
    for k in range(1, 6):
        live = service.prepare(service.timetable.slot(k))
        live.runner.run()
        runs.append(live)
    FAMILY_NAMES[0] = every
    live = max(runs, key=lambda r: r.runner.tick)
    result = live.runner.result()
    service.records.add(live.plan, result, time.time())
    print(f"recorded race {live.plan.race_id}: {live.runner.tick} ticks, "
          f"{len(live.plan.entrants)} cars, {live.plan.track.name}, "
          f"{sum(c['state'] == 'finished' for c in result['cars'])} finished", flush=True)
    return live.plan.race_id


def _lowest_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


async def main_async(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-race-stalls-"))
    try:
        registry, dataset, team, ids = build_world(root)
        svc = services(root, registry)
        race_id = record_a_race(svc["thread"])
        for other in MODES[1:]:  # every service sees the recorded race
            svc[other].records = svc["thread"].records
        fork_offload = {m: Offload(m, name=f"forks-{m}") for m in MODES}  # type: ignore[arg-type]
        fork_worker = ThreadPoolExecutor(1, initializer=_lowest_priority)
        slots = iter(range(2, 10**6))

        def job(name: str, mode: str) -> Callable[[], object]:
            service = svc[mode]
            if name == "prepare":
                return lambda: service.prepare(service.timetable.slot(next(slots)))
            if name == "replay":
                def again() -> object:
                    service._replays.clear()  # a replay not cached yet
                    return service.replay(race_id)
                return again
            return lambda: build_fork(registry, dataset, team, ids, updates=args.fork_updates,
                                      seed=0, offload=fork_offload[mode])

        def executor(name: str, mode: str) -> ThreadPoolExecutor:
            return fork_worker if name == "fork" else svc[mode].worker

        print("warming up (children started, every job once each way)", flush=True)
        for mode in MODES:
            svc[mode].offload.start()
            fork_offload[mode].start()
            for name in JOBS:
                job(name, mode)()
        print(f"children: races {svc['process'].offload.in_process}, forks "
              f"{fork_offload['process'].in_process}", flush=True)

        players = Players(args.players, registry.load(0)[0])
        game = players.game
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(game.run_forever(20.0)), asyncio.create_task(players.refill())]
        await asyncio.sleep(args.settle_s)

        async def window(label: str, mode: str) -> Window:
            durations: list[float] = []
            first_tick = game.tick_count
            start = time.perf_counter()
            end = start + args.window_s
            if label != "baseline":
                fn, pool = job(label, mode), executor(label, mode)
                while time.perf_counter() < end:
                    t0 = time.perf_counter()
                    await loop.run_in_executor(pool, fn)
                    durations.append(time.perf_counter() - t0)
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            stop = time.perf_counter()
            at = np.array(game.tick_at)
            took = np.array(game.tick_s)
            inside = (at >= start) & (at <= stop)
            ticks_at = at[inside]
            full = any(t % _GC_FULL_EVERY == 0 for t in range(first_tick, game.tick_count))
            return Window(label, mode, np.diff(ticks_at) * 1000, took[inside] * 1000,
                          durations, os.getloadavg()[0], full)

        windows = [await window("baseline", "-")]
        for name in args.jobs:
            for mode in MODES:
                windows.append(await window(name, mode))
                print(f"  {name} / {mode} done", flush=True)
        windows.append(await window("baseline", "-"))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        report(windows, args)
        for mode in MODES:
            svc[mode].close()
            fork_offload[mode].close()
        fork_worker.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(windows: list[Window], args: argparse.Namespace) -> None:
    base = np.concatenate([w.intervals for w in windows if w.label == "baseline"])
    base_p99 = float(np.percentile(base, 99))
    print(f"\n{args.players} players, 20 Hz, windows of {args.window_s:.0f} s, fork "
          f"{args.fork_updates} updates; cores: {os.cpu_count()}; *: the game loop's full "
          f"collection (every {_GC_FULL_EVERY} ticks) fell in the window")
    print("| job | offload | jobs done | job wall s (median) | tick interval p50 / p99 / max ms "
          "| tick duration p50 / p99 ms | load (1 min) | p99 / baseline p99 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for w in windows:
        iv = w.intervals if w.intervals.size else np.zeros(1)
        tk = w.ticks if w.ticks.size else np.zeros(1)
        p99 = float(np.percentile(iv, 99))
        wall = f"{statistics.median(w.jobs):.2f}" if w.jobs else "-"
        print(f"| {w.label} | {w.mode} | {len(w.jobs) if w.label != 'baseline' else '-'} | "
              f"{wall} | {np.percentile(iv, 50):.1f} / {p99:.1f} / {iv.max():.1f}"
              f"{'*' if w.full_gc else ''} | "
              f"{np.percentile(tk, 50):.1f} / {np.percentile(tk, 99):.1f} | {w.load:.2f} | "
              f"{p99 / base_p99:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--fork-updates", type=int, default=500)
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS))
    args = parser.parse_args()
    if not 1 <= args.players <= 1000 or not 1 <= args.window_s <= 60:
        parser.error("players 1..1000, window 1..60 s")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
