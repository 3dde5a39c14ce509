"""Simulator throughput: car-steps per second on one core, against the alternatives, same run.

Measures, each for ``--seconds`` of wall time after a warm-up:
1. ``RaceVectorEnv.step`` (physics, projection, 9 range rays, observation, autoreset) for 1, 100,
   1,000 and 10,000 cars;
2. the numpy alternative for the ray casting alone (every edge segment of the track, exact) at
   1,000 cars: the measured need behind the compiled kernels;
3. highway-env's ``racetrack-v0`` and gymnasium's ``CarRacing-v3`` (one car each), if installed
   (``pip install -e '.[bench]'``).

Run: ``.venv/bin/python bench/bench_sim.py`` (pinned to one core). Prints a table with ratios.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from crowdlearning.sim.raycast_numpy import cast_rays_numpy
from crowdlearning.sim.vector_env import RaceVectorEnv


@dataclass
class Args:
    seconds: float = 3.0  # measuring time per configuration [s]
    car_counts: tuple[int, ...] = (1, 100, 1000, 10000)
    skip_external: bool = False


def _rate(step: Callable[[], int], seconds: float) -> float:
    """Units per second of ``step`` (which returns how many units it did)."""
    step()  # warm-up (compilation, caches)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    return done / (time.perf_counter() - start)


def ours(num_cars: int, seconds: float) -> float:
    env = RaceVectorEnv(num_cars, num_tracks=8, track_seed=0, start_speed_mps=8.0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = np.clip(rng.normal([0.0, 0.4], [0.15, 0.2], size=(64, num_cars, 2)), -1, 1)
    tick = [0]

    def step() -> int:
        env.step(actions[tick[0] % 64])
        tick[0] += 1
        return num_cars

    return _rate(step, seconds)


def numpy_rays(num_cars: int, seconds: float) -> float:
    env = RaceVectorEnv(num_cars, num_tracks=1, track_seed=0)
    env.reset(seed=0)
    track, pose = env.sim.bank.tracks[0], env.sim.pose
    angles, max_range = env.sim.sensors.ray_angles_rad, env.sim.sensors.ray_max_range_m
    chunk = 50  # bounded memory: (50, 9, segments) per call

    def step() -> int:
        for i in range(0, num_cars, chunk):
            cast_rays_numpy(track, pose[i : i + chunk], angles, max_range)
        return num_cars

    return _rate(step, seconds)


def external(env_id: str, seconds: float, **kwargs: object) -> float | None:
    try:
        import gymnasium

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if env_id.startswith("racetrack"):
                import highway_env  # noqa: F401  (registers racetrack-v0)
            env = gymnasium.make(env_id, **kwargs)
            env.reset(seed=0)
    except Exception as exc:  # optional dependency: report, do not fail
        print(f"  {env_id}: not measured ({type(exc).__name__}: {exc})")
        return None

    def step() -> int:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            env.reset()
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _rate(step, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=Args.seconds)
    parser.add_argument("--skip-external", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"config: seconds={args.seconds} cores=1 numba_threads=1 "
          f"(NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')})")
    rows: list[tuple[str, float]] = []
    for n in Args.car_counts:
        rows.append((f"crowdlearning Race-v0 vector, {n} cars", ours(n, args.seconds)))
    rows.append(("numpy exact rays only, 1000 cars", numpy_rays(1000, args.seconds)))
    if not args.skip_external:
        for env_id, kwargs in (("racetrack-v0", {}), ("CarRacing-v3", {"continuous": True})):
            rate = external(env_id, args.seconds, **kwargs)
            if rate is not None:
                rows.append((f"{env_id} (1 car)", rate))
    ref = next(rate for name, rate in rows if name.endswith(" 1000 cars"))
    print(f"\n{'configuration':<42} {'car-steps/s':>14} {'ours@1000 / this':>18}")
    for name, rate in rows:
        print(f"{name:<42} {rate:>14,.0f} {ref / rate:>17.1f}x")
    print(f"\ntarget >= 200,000 car-steps/s at 1,000 cars: {'MET' if ref >= 2e5 else 'NOT MET'}")


if __name__ == "__main__":
    main()
