"""How hard a track family is: a driver on N of its tracks, one lap each, summarized.

``drive_family(family, seeds, driver)`` puts one car on each (family, seed) track at the start line,
on the family's car model (its grip), and lets ``driver`` drive until the car completes ``laps``
laps, leaves the track or runs out of time. The summary (lap completion, exits, lap time, mean
lap speed) is the difficulty measure ``bench/track_families.py`` prints per family.

Drivers: anything with ``act(sim) -> (num_cars, 2)``. The scripted expert (``ExpertDriver``) is the
reference; it knows the grip and never errs, so on it difficulty shows as pace (lower lap speed).
``LateDriver`` is that expert at the limit (all the grip, all the brakes) acting on what it saw
``delay_ticks`` ago (250 ms by default): a skilled driver with a human's reaction time, on whom
difficulty shows as exits, i.e. how little room for error a family leaves. (At 150 ms it still
completes every family's laps; at 300 ms it fails most easy tracks: 250 ms separates them.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.families import TrackFamily, family_track, get_family
from crowdlearning.sim.params import CONTROL_RATE_HZ
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track import Track

__all__ = ["DriveScore", "Driver", "LateDriver", "drive_family"]

Driver = Callable[[RaceSim], np.ndarray]


@dataclass
class LateDriver:
    """``expert`` acting on the state of ``delay_ticks`` ago (20 Hz ticks): a human's reaction."""

    delay_ticks: int = 5
    expert: ExpertDriver = field(
        default_factory=lambda: ExpertDriver(grip_fraction=1.0, brake_fraction=1.0))
    _past: deque = field(default_factory=deque, repr=False)
    _sim: RaceSim | None = field(default=None, repr=False)

    def act(self, sim: RaceSim) -> np.ndarray:
        if sim is not self._sim:  # a new race: forget what was seen in another
            self._past.clear()
            self._sim = sim
        self._past.append(self.expert.act(sim))
        while len(self._past) > self.delay_ticks + 1:
            self._past.popleft()
        return self._past[0]

    def __call__(self, sim: RaceSim) -> np.ndarray:
        return self.act(sim)


@dataclass(frozen=True)
class DriveScore:
    """One driver on one family's tracks: per-run outcomes and their means."""

    family: str
    seeds: tuple[int, ...]
    completed: np.ndarray  # bool per track
    exited: np.ndarray  # bool per track: left the track
    lap_time_s: np.ndarray  # first lap [s], NaN if none
    length_m: np.ndarray  # track lengths [m]
    progress_m: np.ndarray  # distance driven along the centreline before stopping [m]
    laps: int = 1  # laps each run was asked to drive

    @property
    def lap_completion(self) -> float:
        return float(self.completed.mean())

    @property
    def exit_rate(self) -> float:
        return float(self.exited.mean())

    @property
    def mean_progress(self) -> float:
        """Share of the laps driven before stopping, averaged over tracks (1.0 = all laps)."""
        return float(np.clip(self.progress_m / (self.laps * self.length_m), 0.0, 1.0).mean())

    @property
    def mean_lap_time_s(self) -> float:
        """Over completed laps; NaN if none."""
        done = np.isfinite(self.lap_time_s)
        return float(self.lap_time_s[done].mean()) if done.any() else float("nan")

    @property
    def mean_speed_mps(self) -> float:
        """Lap length / lap time over completed laps (tracks differ in length); NaN if none."""
        done = np.isfinite(self.lap_time_s)
        if not done.any():
            return float("nan")
        return float((self.length_m[done] / self.lap_time_s[done]).mean())


def drive_family(
    family: TrackFamily | str,
    seeds: Sequence[int],
    driver: Driver | ExpertDriver | None = None,
    *,
    laps: int = 1,
    start_speed_mps: float = 0.0,
    max_time_s: float = 300.0,
) -> DriveScore:
    """``driver`` (default: the expert) for ``laps`` laps on each (``family``, seed) track."""
    fam = get_family(family)
    act = _as_callable(driver or ExpertDriver())
    tracks = [_track(fam, int(s)) for s in seeds]
    n = len(tracks)
    sim = RaceSim(tracks, n, car=fam.car(), max_steps=int(max_time_s * CONTROL_RATE_HZ))
    sim.reset_cars(np.arange(n), track_index=np.arange(n), speed_mps=start_speed_mps)
    exited = np.zeros(n, dtype=bool)
    first_lap = np.full(n, np.nan)
    while sim.alive.any():
        out = sim.step(act(sim))
        exited |= out.terminated
        first_lap = np.where(out.lap_completed & np.isnan(first_lap), sim.last_lap_time_s,
                             first_lap)
        sim.alive &= sim.laps < laps
    return DriveScore(fam.name, tuple(int(s) for s in seeds), sim.laps >= laps, exited,
                      first_lap, np.array([t.length_m for t in tracks]), sim.progress_m.copy(),
                      laps)


@lru_cache(maxsize=512)
def _track(family: TrackFamily, seed: int) -> Track:
    return family_track(family, seed)


def _as_callable(driver: Driver | ExpertDriver) -> Driver:
    return driver.act if isinstance(driver, ExpertDriver) else driver
