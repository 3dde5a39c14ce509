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

The crowd car (``Entrant.role == "crowd"``, ``races/crowd.py``): live, ``crowd_input`` gives the
crowd's aggregate (steer, throttle) each tick (NaN per control nobody gave); it is rounded to
``CROWD_QUANTUM`` and executed in place of the policy's value for that control. Every such tick
goes into ``crowd_log`` (``[tick, steer_milli | None, throttle_milli | None]``), which the
service puts into the recorded plan (``RacePlan.crowd``): the replay executes the same values.

Recording (``record=True``, for the crowd's labellers): every car's state, observation,
proposal and executed action per tick, and its *segments*: the stretches a car drives from a
start a single-car replay can reproduce (``sim.replay.EpisodeStart``: the grid, or the
centreline point of a reset) to a reset, its DNF or the end of the race. A labeller's
contribution is a segment of the car they steer (``crowd.labeller_contribution``). Memory:
144 bytes per car per tick (about 7 MB for 8 cars and 5 minutes).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
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
from crowdlearning.sim.replay import EpisodeStart
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_bank import TrackBank

__all__ = ["CROWD_QUANTUM", "POINTS", "RacePlan", "RaceRules", "RaceRunner", "Segment",
           "load_policies", "points_for", "replay"]

POINTS = (25, 18, 15, 12, 10, 8, 6, 4)  # per finishing position; out (DNF): none
STATES = {RACING: "racing", FINISHED: "finished", DNF: "out"}
CROWD_QUANTUM = 1000  # the crowd car's executed input is a multiple of 1/1000 (exact in JSON)
CrowdInput = Callable[[int, np.ndarray, np.ndarray], np.ndarray | None]


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
    # the crowd car's executed input, recorded when the race is over: (tick, steer, throttle)
    # in 1/CROWD_QUANTUM, None where the policy's value was executed
    crowd: tuple[tuple[int, int | None, int | None], ...] = ()

    @property
    def crowd_car(self) -> int | None:
        return next((e.car for e in self.entrants if e.role == "crowd"), None)

    def to_json(self) -> str:
        d = {"race_id": self.race_id, "seed": self.seed, "starts_at": self.starts_at,
             "track": asdict(self.track), "entrants": [asdict(e) for e in self.entrants],
             "rules": asdict(self.rules)}
        if self.crowd:
            d["crowd"] = [list(row) for row in self.crowd]
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RacePlan:
        d = json.loads(text)
        return cls(d["race_id"], int(d["seed"]), float(d["starts_at"]),
                   TrackChoice(**d["track"]), tuple(Entrant(**e) for e in d["entrants"]),
                   RaceRules(**d["rules"]),
                   tuple((int(t), s, th) for t, s, th in d.get("crowd", ())))


def load_policies(registry: ModelRegistry, versions: set[int] | list[int]) -> dict[int, Policy]:
    """The policy of each version (from disk: call off the event loop)."""
    return {v: Policy(registry.load(v)[0]) for v in sorted(set(versions))}


@dataclass(frozen=True)
class Segment:
    """Ticks ``[first, end)`` a car drove from ``start`` (see the module docstring); ``reason``
    why it ended: ``reset``, ``out`` or ``race_over``."""

    car: int
    first: int
    end: int
    start: EpisodeStart
    reason: str


class RaceRunner:
    """See the module docstring. ``policies`` maps every entrant's version to its policy."""

    def __init__(self, plan: RacePlan, policies: Mapping[int, Policy],
                 track: Track | None = None, *, record: bool = False,
                 bank: TrackBank | None = None) -> None:
        """``track`` (else drawn from the plan) and ``bank`` (``TrackBank`` of ``[track]``,
        else packed here): given when prepared elsewhere (``races/offload.py``)."""
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
        if bank is not None and (bank.num_tracks != 1 or bank.tracks[0] is not self.track):
            raise ValueError("bank must be the TrackBank of [track]")
        self.sim = RaceSim(bank if bank is not None else [self.track], n, max_steps=10**9,
                           stall_ticks=self.rules.stall_ticks)
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
        # the crowd car: live input (``crowd_input``) or, replaying, the recorded plan's
        self.crowd_car = plan.crowd_car
        self.crowd_input: CrowdInput | None = None
        self.crowd_log: list[tuple[int, int | None, int | None]] = []
        self._crowd_plan = {t: (s, th) for t, s, th in plan.crowd}
        self.crowd_driving = False  # the crowd drove the crowd car on the last tick
        # recording (module docstring)
        self.record = record
        self.proposed = np.zeros((n, 2))  # the policies' proposals of the last tick
        self._rec: dict[str, np.ndarray] = {}
        self._starts = [EpisodeStart(self.track.digest, float(s), float(v), float(lat), 0.0)
                        for s, v, lat in zip((-self.behind) % self.length_m,
                                             np.broadcast_to(self.sim.pose[:, 3], n),
                                             [g.lateral_m for g in slots], strict=True)]
        self._first = np.zeros(n, np.int64)
        self._rows_to = np.zeros(n, np.int64)  # the car's recorded rows end here
        self.closed: list[Segment] = []  # segments ended, for the service to take

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
        self.proposed = actions.copy()
        self._crowd(actions, sim.alive)
        if self.record:
            self._record(drive, obs, actions)
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
        s_m, speed = float(self.sim.frenet[car, 0]), self.rules.start_speed_mps / 2
        self.sim.reset_cars(np.array([car]), start_s_m=s_m, speed_mps=speed)
        self._close(car, "reset")
        self._starts[car] = EpisodeStart(self.track.digest, s_m, float(self.sim.pose[car, 3]))
        self._first[car] = self._rows_to[car] = self.tick

    def _out(self, car: int, reason: str) -> None:
        self.state[car], self.reason[car] = DNF, reason
        self.sim.alive[car] = False
        self._close(car, "out")

    # --- the crowd car and the labellers' recording ---------------------------------------
    def _crowd(self, actions: np.ndarray, alive: np.ndarray) -> None:
        """The crowd car executes the crowd's input where there is one (live or recorded)."""
        car, self.crowd_driving = self.crowd_car, False
        given = None if self.crowd_input is None else self.crowd_input(
            self.tick, self.proposed, alive)
        if car is None or not alive[car]:
            return
        if self.crowd_input is not None:
            if given is None or not np.isfinite(given).any():
                return
            milli = [None if not np.isfinite(x) else int(np.round(np.clip(x, -1, 1)
                                                                  * CROWD_QUANTUM))
                     for x in given[:2]]
            self.crowd_log.append((self.tick, milli[0], milli[1]))
        else:
            found = self._crowd_plan.get(self.tick)
            if found is None:
                return
            milli = list(found)
        for d, m in enumerate(milli):
            if m is not None:
                actions[car, d] = m / CROWD_QUANTUM
        self.crowd_driving = True

    def _record(self, drive: np.ndarray, obs: np.ndarray, actions: np.ndarray) -> None:
        t = self.tick
        if not self._rec or t >= self._rec["states"].shape[1]:
            cap = max(64, 2 * t)
            old, self._rec = self._rec, {
                "states": np.zeros((self.n, cap, 5)),
                "observations": np.zeros((self.n, cap, obs.shape[1]), np.float32),
                "proposed": np.zeros((self.n, cap, 2)), "executed": np.zeros((self.n, cap, 2))}
            for k, v in old.items():
                self._rec[k][:, :t] = v[:, :t]
        rec = self._rec
        rec["states"][drive, t] = self.sim.pose[drive]
        rec["observations"][drive, t] = obs[drive]
        rec["proposed"][drive, t] = self.proposed[drive]
        rec["executed"][drive, t] = actions[drive]
        self._rows_to[drive] = t + 1

    def _close(self, car: int, reason: str) -> None:
        if self.record and self._rows_to[car] > self._first[car]:
            self.closed.append(Segment(car, int(self._first[car]), int(self._rows_to[car]),
                                       self._starts[car], reason))
        self._first[car] = self._rows_to[car]

    def close_all(self) -> None:
        """The race is over: every car's current segment ends (``race_over``)."""
        for car in range(self.n):
            self._close(car, "race_over")

    def open_segment(self, car: int) -> Segment:
        """The car's segment so far (it goes on)."""
        return Segment(car, int(self._first[car]), int(self._rows_to[car]), self._starts[car],
                       "open")

    def recorded(self, segment: Segment) -> dict[str, np.ndarray]:
        """The car's recorded rows of ``segment`` (copies): states, observations, proposed,
        executed."""
        return {k: v[segment.car, segment.first:segment.end].copy()
                for k, v in self._rec.items()}

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
            if self.plan.entrants[car].team is not None:  # a team fork: its team's name
                cars[-1]["team"] = self.plan.entrants[car].team
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
                         "role": entrant.role, "name": entrant.name, "team": entrant.team,
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
