"""One race, simulated: every car a row of one ``RaceSim`` batch, deterministic from its plan.

``RacePlan`` says everything a race depends on: its seed and track, the laps, the rules, and
which model version drives each grid slot. ``RaceRunner`` steps all cars at once (one batched
inference per version in the race, ``Policy.act`` on the rows it drives), keeps the standings
(``standings.py``) and makes the spectators' frames. Cars are ghosts: no car collides with
another (they share the road, not the physics).

Rules (``RaceRules``): a rolling start from a staggered grid (``field.grid_slots``); the race is
``laps`` laps from the start line; a car that leaves the track is put back on the centreline
where it left, at half the start speed (``resets`` times; the next time it is out: DNF
``left_track``); a car that has not advanced 1 m for ``stall_ticks`` is out (``stalled``); a car
still racing after ``laps x max_lap_s`` is out (``time_up``). A finished car drives on (a
cool-down lap) until the race ends, when every car has finished or is out.

Determinism: the track, the grid and the policies' weights come from the plan and the model
registry (a version never changes); the batch each policy sees is decided by the same rules, so
``replay(plan, ...)`` gives the same poses bit for bit (``RaceResult.digest``: SHA-256 of every
tick's poses) as the race watched live.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.policy.network import Policy
from crowdlearning.races.field import Entrant, grid_slots
from crowdlearning.races.schedule import TrackChoice
from crowdlearning.races.standings import (
    DNF,
    FINISHED,
    RACING,
    GapClock,
    line_crossings,
    race_order,
)
from crowdlearning.sim.params import CONTROL_RATE_HZ
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track import Track

__all__ = ["POINTS", "RacePlan", "RaceRules", "RaceRunner", "load_policies", "points_for",
           "replay"]

POINTS = (25, 18, 15, 12, 10, 8, 6, 4)  # per finishing position; out (DNF): none
STATES = {RACING: "racing", FINISHED: "finished", DNF: "out"}


def points_for(position: int, finished: bool) -> int:
    """Season points of a car classified ``position`` (1 = winner)."""
    return POINTS[position - 1] if finished and 1 <= position <= len(POINTS) else 0


@dataclass(frozen=True)
class RaceRules:
    laps: int = 2
    grid_gap_m: float = 10.0
    start_speed_mps: float = 8.0
    resets: int = 2
    max_lap_s: float = 150.0
    stall_ticks: int = 60
    tick_hz: float = float(CONTROL_RATE_HZ)


@dataclass(frozen=True)
class RacePlan:
    """Everything a race depends on (kept with its result: the replay re-simulates it)."""

    race_id: str
    seed: int
    starts_at: float
    track: TrackChoice
    entrants: tuple[Entrant, ...]
    rules: RaceRules = field(default_factory=RaceRules)

    def to_json(self) -> str:
        return json.dumps({"race_id": self.race_id, "seed": self.seed,
                           "starts_at": self.starts_at, "track": asdict(self.track),
                           "entrants": [asdict(e) for e in self.entrants],
                           "rules": asdict(self.rules)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RacePlan:
        d = json.loads(text)
        return cls(d["race_id"], int(d["seed"]), float(d["starts_at"]),
                   TrackChoice(**d["track"]), tuple(Entrant(**e) for e in d["entrants"]),
                   RaceRules(**d["rules"]))


def load_policies(registry: ModelRegistry, versions: set[int] | list[int]) -> dict[int, Policy]:
    """The policy of each version (from disk: call off the event loop)."""
    return {v: Policy(registry.load(v)[0]) for v in sorted(set(versions))}


class RaceRunner:
    """See the module docstring. ``policies`` maps every entrant's version to its policy."""

    def __init__(self, plan: RacePlan, policies: Mapping[int, Policy],
                 track: Track | None = None) -> None:
        self.plan, self.rules = plan, plan.rules
        self.track = track or plan.track.track()
        n = len(plan.entrants)
        if n < 1:
            raise ValueError("a race needs at least one car")
        missing = {e.version for e in plan.entrants} - set(policies)
        if missing:
            raise ValueError(f"no policy for versions {sorted(missing)}")
        self.policies = policies
        self.n = n
        self.length_m = float(self.track.length_m)
        self.dt = 1.0 / self.rules.tick_hz
        self.sim = RaceSim([self.track], n, max_steps=10**9, stall_ticks=self.rules.stall_ticks)
        slots = grid_slots(n, self.rules.grid_gap_m, self.track.width_m)
        self.behind = np.array([s.behind_m for s in slots])
        self.sim.reset_cars(np.arange(n), start_s_m=(-self.behind) % self.length_m,
                            speed_mps=self.rules.start_speed_mps,
                            lateral_m=np.array([s.lateral_m for s in slots]))
        self.versions = np.array([e.version for e in plan.entrants], np.int64)
        self.base = np.zeros(n)  # race distance carried over resets
        self.distance = -self.behind.copy()
        self.state = np.full(n, RACING, np.int64)
        self.reason: list[str | None] = [None] * n
        self.resets = np.zeros(n, np.int64)
        self.finish_s = np.full(n, np.nan)
        self.lap_times: list[list[float]] = [[] for _ in range(n)]
        self._last_line_s = np.zeros(n)
        self.tick = 0
        self.max_ticks = math.ceil(self.rules.laps * self.rules.max_lap_s * self.rules.tick_hz)
        self._digest = hashlib.sha256()
        self.clock = GapClock(max(16, min(self.max_ticks + 1, 1 << 16)))
        self.clock.record(0.0, float(self.distance.max()))

    # --- the race ----------------------------------------------------------------------------
    @property
    def t(self) -> float:
        """Race time [s] since the start."""
        return self.tick * self.dt

    @property
    def finished(self) -> bool:
        return not (self.state == RACING).any()

    @property
    def digest(self) -> str:
        """SHA-256 of every tick's poses so far (the replay must give the same)."""
        return self._digest.hexdigest()

    def step(self) -> None:
        """One tick for every car still driving (nothing once the race is over)."""
        if self.finished:
            return
        sim = self.sim
        obs = sim.observe()
        drive = np.flatnonzero(sim.alive)
        actions = np.zeros((self.n, 2))
        versions = self.versions[drive]
        for version in np.unique(versions).tolist():
            rows = drive[versions == version]
            actions[rows] = self.policies[version].act(obs[rows])
        was_alive = sim.alive.copy()
        before = self.distance.copy()
        t_before = self.t
        sim.step(actions)
        self.tick += 1
        self._digest.update(sim.pose.tobytes())
        racing = self.state == RACING
        self.distance = np.where(racing, self.base + sim.progress_m - self.behind, self.distance)
        moved = np.where(racing, self.distance, before)
        target = self.rules.laps * self.length_m
        for car, lap, when in line_crossings(before, moved, self.length_m, self.rules.laps,
                                             t_before, self.dt):
            self.lap_times[car].append(float(when - self._last_line_s[car]))
            self._last_line_s[car] = when
            if lap == self.rules.laps:
                self.state[car], self.finish_s[car] = FINISHED, when
        stopped = np.flatnonzero(was_alive & ~sim.alive & racing & (self.distance < target))
        for car in stopped.tolist():
            if sim.stalled[car]:
                self._out(car, "stalled")
            elif self.resets[car] < self.rules.resets:
                self._reset(car)
            else:
                self._out(car, "left_track")
        if self.tick >= self.max_ticks:
            for car in np.flatnonzero(self.state == RACING).tolist():
                self._out(car, "time_up")
        self.clock.record(self.t, float(self.distance.max()))

    def _reset(self, car: int) -> None:
        """Back on the centreline where it left, at half the start speed."""
        self.resets[car] += 1
        self.base[car] += self.sim.progress_m[car]
        self.sim.reset_cars(np.array([car]), start_s_m=float(self.sim.frenet[car, 0]),
                            speed_mps=self.rules.start_speed_mps / 2)

    def _out(self, car: int, reason: str) -> None:
        self.state[car], self.reason[car] = DNF, reason
        self.sim.alive[car] = False

    def run(self) -> None:
        """Step until the race is over."""
        while not self.finished:
            self.step()

    # --- what spectators see ------------------------------------------------------------------
    def order(self) -> list[int]:
        return race_order(self.state, self.distance, self.finish_s)

    def frame(self) -> dict:
        """The race now: every car's pose, position, lap, gap to the leader, lap times."""
        order = self.order()
        position = {car: i + 1 for i, car in enumerate(order)}
        gaps = self.clock.gaps(self.distance, self.t)
        winner = np.nanmin(self.finish_s) if (self.state == FINISHED).any() else None
        pose = np.round(self.sim.pose[:, :4], 2).tolist()
        cars = []
        for car in range(self.n):
            laps_done = len(self.lap_times[car])
            state = int(self.state[car])
            if state == FINISHED:
                gap = round(float(self.finish_s[car] - winner), 2)
            elif state == RACING:
                gap = (0.0 if position[car] == 1 and winner is None
                       else None if np.isnan(gaps[car]) else round(float(gaps[car]), 2))
            else:
                gap = None
            times = self.lap_times[car]
            cars.append({"car": car, "pos": position[car], "pose": pose[car],
                         "lap": min(laps_done + 1, self.rules.laps), "laps_done": laps_done,
                         "dist_m": round(float(self.distance[car]), 1), "gap_s": gap,
                         "last_lap_s": round(float(times[-1]), 3) if times else None,
                         "best_lap_s": round(float(min(times)), 3) if times else None,
                         "state": STATES[state], "reason": self.reason[car],
                         "resets": int(self.resets[car])})
        return {"type": "frame", "race_id": self.plan.race_id, "tick": self.tick,
                "t": round(self.t, 2), "status": "finished" if self.finished else "racing",
                "order": order, "cars": cars}

    def result(self) -> dict:
        """The classification (race order) with each car's times, and the poses' digest."""
        rows = []
        for i, car in enumerate(self.order()):
            entrant = self.plan.entrants[car]
            finished = int(self.state[car]) == FINISHED
            times = self.lap_times[car]
            rows.append({"position": i + 1, "car": car, "version": entrant.version,
                         "role": entrant.role, "name": entrant.name,
                         "state": STATES[int(self.state[car])], "reason": self.reason[car],
                         "race_time_s": round(float(self.finish_s[car]), 3) if finished else None,
                         "best_lap_s": round(float(min(times)), 3) if times else None,
                         "lap_times_s": [round(float(x), 3) for x in times],
                         "laps_done": len(times),
                         "distance_m": round(float(self.distance[car]), 1),
                         "resets": int(self.resets[car]),
                         "points": points_for(i + 1, finished)})
        return {"race_id": self.plan.race_id, "ticks": self.tick, "race_time_s": round(self.t, 2),
                "digest": self.digest, "cars": rows}


def replay(plan: RacePlan, policies: Mapping[int, Policy], frame_every: int = 2,
           track: Track | None = None) -> tuple[list[dict], dict]:
    """The race re-simulated from its plan: a frame every ``frame_every`` ticks (and the last
    one), and its result (whose ``digest`` equals the live race's)."""
    runner = RaceRunner(plan, policies, track)
    frames = [runner.frame()]
    while not runner.finished:
        runner.step()
        if runner.tick % frame_every == 0 or runner.finished:
            frames.append(runner.frame())
    return frames, runner.result()
