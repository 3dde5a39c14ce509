"""The server-authoritative game loop: every live run stepped together, 20 times a second.

One ``GameLoop`` owns one ``RaceSim`` with a fixed number of car slots (``server_max_players``)
plus one extra car: the champion, driven by the policy alone for spectators. A run joins by
taking a free slot (``RaceSim.reset_cars`` places its car) and leaves by freeing it. Each tick
(``step``), for all slots at once:

1. observe every car; ONE batched policy inference per model version in use gives each live car
   its proposed action (a run is driven by the version it started with, see ``set_champion``);
2. mix each run's latest player input with the proposal per its mode (``labels.mix_actions``);
3. record the tick (state, observation, proposed, executed, input, the tick the input answers);
4. send each run its frame (``Frame`` below, via the run's ``Outbox``) and step the simulator.

Ticks are run-local: a run's first frame is tick 0. An input answers the newest frame its sender
had seen: it may not name a tick that was never sent, nor go back before the run's previous input.
A run ends when its car leaves the track, its tick budget runs out, or its player stops (or,
for a paid run, disconnects); the recording becomes a ``Contribution`` handed to ``on_finish``.
A run that ends before its first tick, or is abandoned, records nothing: ``on_discard`` is told
(a paid run's hold is then given back).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from crowdlearning.errors import CrowdLearningError
from crowdlearning.learning.contribution import Contribution, Mode
from crowdlearning.learning.device import ANALOG, KeyboardWheel, device_meta
from crowdlearning.learning.disturbance import Disturbance, apply_disturbance
from crowdlearning.learning.labels import mix_actions
from crowdlearning.policy.network import Policy
from crowdlearning.sim.params import SensorParams
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.replay import EpisodeStart
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_bank import TrackBank

__all__ = ["FinishedRun", "GameFullError", "GameLoop", "InputRejectedError", "Outbox", "RunSpec",
           "RunStart", "fixed_text"]

log = logging.getLogger(__name__)
START_SPEED_MPS = 8.0  # runs start at 6-10 m/s (``RunStart``)
STALL_TICKS = 60  # a run whose car has not advanced 1 m for 3 s ends "stalled"
START_LATERAL_M = 0.5  # and up to this far from the centreline
# one frame, formatted from flat numbers (``%`` is ~2x cheaper than the repr of lists)
_N_RAYS = len(SensorParams().ray_angles_deg)
_FRAME = ('{"type":"frame","tick":%d,"pose":[%.3f,%.3f,%.3f,%.3f,%.3f],"policy":[%.3f,%.3f],'
          '"action":[%.3f,%.3f],"player":[%.3f,%.3f],"driver":"%s",'
          '"rays":[' + ",".join(["%.2f"] * _N_RAYS) + '],'
          '"progress_m":%.2f,"laps":%d}')
_RAY_RANGE_M = SensorParams().ray_max_range_m
# the same frame from texts already made (``fixed_text``): 29 floats formatted one at a time
# with ``%.3f`` were about half of building 1,000 frames (5.0 -> 4.4 ms a tick, see
# docs/benchmarks.md, "1,000 players per node")
_FRAME_TEXT = (_FRAME.replace("%.3f", "%s").replace("%.2f", "%s"))
_HEADS = 10_000  # integer parts with a ready-made text, each sign
_POS_HEADS = np.array([f"{k}." for k in range(_HEADS)], dtype=object)
_NEG_HEADS = np.array([f"-{k}." for k in range(_HEADS)], dtype=object)
_FRACTIONS = {d: np.array([f"{k:0{d}d}" for k in range(10**d)], dtype=object) for d in (2, 3)}
# garbage collection between ticks (see ``GameLoop.run_forever``): every tick the youngest
# generation, every 10 ticks the middle one, every minute everything
_GC_MIDDLE_EVERY, _GC_FULL_EVERY = 10, 1200


class GameFullError(CrowdLearningError):
    """Every simulator slot is taken."""


class InputRejectedError(CrowdLearningError):
    """An input names a tick it cannot answer; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Outbox:
    """What is waiting to be sent to one client: frames (the oldest dropped past the bound) and
    events (never dropped; past ``max_events`` the client is too slow and ``overflowed`` is set).

    ``writer`` (optional, set by the socket): writes one text message to the client at once and
    says whether it could (``play_socket.direct_writer``). A frame goes through it when nothing
    is queued or being sent before it, so that the tick writes each player's frame itself
    instead of waking a sending task per player (``docs/benchmarks.md``, "1,000 players per
    node"); otherwise, and for events, it is queued for the sending task as before."""

    def __init__(self, max_frames: int, max_events: int = 64) -> None:
        self._items: deque[tuple[bool, str]] = deque()
        self._frames, self.max_frames, self.max_events = 0, max_frames, max_events
        self._wake = asyncio.Event()
        self.dropped_frames = 0
        self.overflowed = False
        self.writer: Callable[[str], bool] | None = None
        self.sending = False  # the sending task is between ``take`` and its last send

    def frame(self, text: str) -> None:
        if (self.writer is not None and not self._items and not self.sending
                and self.writer(text)):
            return
        if self._frames >= self.max_frames:
            for i, (is_frame, _) in enumerate(self._items):
                if is_frame:
                    del self._items[i]
                    break
            self._frames -= 1
            self.dropped_frames += 1
        self._items.append((True, text))
        self._frames += 1
        self._wake.set()

    def event(self, message: dict | str) -> None:
        """A control message (a dict, or JSON text already encoded)."""
        if len(self._items) - self._frames >= self.max_events:
            self.overflowed = True
        text = message if isinstance(message, str) else json.dumps(message)
        self._items.append((False, text))
        self._wake.set()

    async def take(self) -> list[str]:
        """Everything queued, in order (waits until there is something)."""
        await self._wake.wait()
        self._wake.clear()
        items = [text for _, text in self._items]
        self._items.clear()
        self._frames = 0
        return items


@dataclass(frozen=True)
class RunSpec:
    """Who plays which track how."""

    run_id: str
    player_id: str
    username: str
    track_seed: int
    mode: Mode = "label"
    paid: bool = False
    beta: float = 1.0


@dataclass(frozen=True)
class RunStart:
    """Where a run starts, drawn by the server from a secret seed when the run begins.

    Every run starts somewhere else (place on the track, speed, a small offset from the
    centreline), so nobody can re-create a run before playing it; the seed is kept in the run's
    record (``meta["start_seed"]``) and so in its verdict, where anyone can check the start.
    """

    seed: int
    start_s_m: float
    speed_mps: float
    lateral_m: float
    heading_rad: float = 0.0  # heading error against the track (a mission's approach)

    @classmethod
    def draw(cls, seed: int, track: Track) -> RunStart:
        rng = np.random.default_rng([seed, 0x57A27])
        return cls(seed, float(rng.uniform(0.0, track.length_m)),
                   float(rng.uniform(START_SPEED_MPS - 2.0, START_SPEED_MPS + 2.0)),
                   float(rng.uniform(-START_LATERAL_M, START_LATERAL_M)))


@dataclass
class _Run:
    spec: RunSpec
    outbox: Outbox
    model_version: int
    start: RunStart
    last_input_tick: int = -1
    devices: set[str] = field(default_factory=set)  # the input devices the player used
    stop_reason: str = ""
    mission: str | None = None  # the mission it was started on (``join``)
    started_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class FinishedRun:
    spec: RunSpec
    reason: str  # "left_track", "stalled", "time_up", "stopped", "disconnected"
    contribution: Contribution
    outbox: Outbox


class GameLoop:
    """See the module docstring. ``tracks`` maps play seed -> track."""

    def __init__(self, policy: Policy, model_version: int, tracks: dict[int, Track], *,
                 capacity: int, run_ticks: int,
                 on_finish: Callable[[FinishedRun], None] = lambda run: None,
                 on_discard: Callable[[RunSpec, str], None] = lambda spec, why: None,
                 random_starts: bool = True, stall_ticks: int = STALL_TICKS,
                 disturbance: tuple[float, float] = (0.0, 0.0)) -> None:
        self.on_discard = on_discard  # a run ended with nothing recorded: (spec, why)
        self.random_starts = random_starts  # else every run starts on the start line
        # each run's steering noise strength is drawn in this range from its secret seed
        # (``learning.disturbance``; only with random starts: scripted runs stay exact)
        self.disturbance = disturbance
        self._model_version = model_version
        self._policies: dict[int, Policy] = {model_version: policy}  # versions in use
        self.seeds = list(tracks)
        self._tracks = dict(tracks)
        self._track_index = {seed: i for i, seed in enumerate(self.seeds)}
        self.capacity, self.run_ticks, self.on_finish = capacity, run_ticks, on_finish
        n = capacity + 1  # the last car is the champion's
        self.champion_slot = capacity
        self.sim = RaceSim([tracks[s] for s in self.seeds], n, max_steps=run_ticks,
                           stall_ticks=stall_ticks)
        self._runs: list[_Run | None] = [None] * capacity
        self._stopping: set[int] = set()  # slots whose player asked to stop (``stop``)
        self._free = list(range(capacity - 1, -1, -1))
        self._player = np.full((n, 2), np.nan)
        self._input_tick = np.full(n, -1, np.int64)
        self._intervene = np.zeros(n, bool)
        # keyboard players: the held keys (``ANALOG`` for analog input) and their wheels, which
        # make the player's input every tick (``learning.device``)
        self._keys = np.full(n, ANALOG, np.int64)
        self._wheel = KeyboardWheel(n)
        self._takeover = np.zeros(n, bool)
        self._beta = np.ones(n)
        self._length = np.zeros(n, np.int64)
        self._noise = np.zeros((n, run_ticks))  # each run's steering disturbance per tick
        self._version = np.full(n, model_version, np.int64)  # the version driving each car
        self._rec = _Recording(n, run_ticks, self.sim.observe().shape[1],
                               {seed: t.digest for seed, t in tracks.items()})
        self.tick_count = 0
        self.tick_s: deque[float] = deque(maxlen=2000)
        self.tick_at: deque[float] = deque(maxlen=2000)  # when each tick started [perf_counter s]
        self.last_proposed = np.zeros((n, 2))
        self.last_driver = np.zeros(n, bool)
        self._reset_champion()

    # --- the tracks ------------------------------------------------------------------------
    def add_tracks(self, tracks: dict[int, Track], bank: TrackBank | None = None) -> list[int]:
        """Offer more play tracks (play seed -> track) from now on; runs in progress go on bit
        for bit. ``bank``: the simulator's bank already grown with them (``RaceSim.add_tracks``),
        built off the loop. Returns the seeds added (those not offered yet)."""
        new = {seed: t for seed, t in tracks.items() if seed not in self._tracks}
        if not new:
            return []
        indices = self.sim.add_tracks(bank if bank is not None else list(new.values()))
        for seed, index in zip(new, indices, strict=True):
            self.seeds.append(seed)
            self._tracks[seed] = new[seed]
            self._track_index[seed] = index
            self._rec.digests[seed] = new[seed].digest
        return list(new)

    # --- the champion ----------------------------------------------------------------------
    @property
    def model_version(self) -> int:
        """The champion's version: new runs and the champion car are driven by it."""
        return self._model_version

    @property
    def policy(self) -> Policy:
        """The champion's policy."""
        return self._policies[self._model_version]

    @property
    def policy_versions(self) -> list[int]:
        """The versions whose policies are kept: the champion's and those of running runs."""
        return sorted(self._policies)

    def set_champion(self, policy: Policy, version: int) -> None:
        """A new champion drives new runs and the champion car from the next tick on; a run
        already in progress keeps the policy of the version it started with until it ends (its
        recording names that version)."""
        self._policies[version] = policy
        self._model_version = version
        self._version[self.champion_slot] = version
        self._drop_unused_policies()

    def _drop_unused_policies(self) -> None:
        if len(self._policies) > 1:
            used = {run.model_version for run in self._runs if run is not None}
            for version in [v for v in self._policies if v != self._model_version
                            and v not in used]:
                del self._policies[version]

    # --- joining and leaving ----------------------------------------------------------------
    @property
    def players(self) -> int:
        return self.capacity - len(self._free)

    def join(self, spec: RunSpec, outbox: Outbox, *, start_s_m: float | None = None,
             mission: str | None = None,
             motion: tuple[float, float, float] | None = None) -> int:
        """Place a new run on a free slot; returns the slot. ``start_s_m`` overrides where on the
        track it starts (a mission's place, ``server/missions.py``); ``motion`` (speed [m/s],
        offset from the centreline [m], heading error [rad]) how the car moves there (a
        mission on the champion's approach to a failure); else its speed and offset come from
        the run's secret seed, as its disturbance always does. ``mission`` (the mission's id) is
        kept in the run's meta."""
        if not self._free:
            raise GameFullError(f"all {self.capacity} places are taken; try again shortly")
        slot = self._free.pop()
        seed = secrets.randbits(62)
        start = (RunStart.draw(seed, self._tracks[spec.track_seed]) if self.random_starts
                 else RunStart(seed, 0.0, START_SPEED_MPS, 0.0))
        if start_s_m is not None:
            length = self._tracks[spec.track_seed].length_m
            start = dataclasses.replace(start, start_s_m=float(start_s_m) % length)
        if motion is not None:
            speed, lateral, heading = (float(x) for x in motion)
            start = dataclasses.replace(start, speed_mps=speed, lateral_m=lateral,
                                        heading_rad=heading)
        self._runs[slot] = _Run(spec, outbox, self._model_version, start, mission=mission)
        self._noise[slot] = (Disturbance.draw(seed, *self.disturbance).steering(self.run_ticks)
                             if self.random_starts else 0.0)
        self._version[slot] = self._model_version
        self.sim.reset_cars(np.array([slot]), track_index=self._track_index[spec.track_seed],
                            start_s_m=start.start_s_m, speed_mps=start.speed_mps,
                            lateral_m=start.lateral_m, heading_offset_rad=start.heading_rad)
        self._player[slot], self._input_tick[slot], self._intervene[slot] = np.nan, -1, False
        self._keys[slot] = ANALOG
        self._wheel.reset([slot])
        self._takeover[slot], self._beta[slot] = spec.mode == "takeover", spec.beta
        self._length[slot] = 0
        return slot

    def stop(self, slot: int, reason: str = "stopped") -> None:
        """The player ends the run (``reason``: "stopped", "disconnected"); it finishes (and is
        judged) before the next tick."""
        run = self._runs[slot]
        if run is not None:
            run.stop_reason = reason
            self._stopping.add(slot)

    def abandon(self, slot: int) -> None:
        """Free the slot without recording anything (the client went away)."""
        run = self._runs[slot]
        if run is not None:
            self._release(slot)
            self.on_discard(run.spec, "abandoned: nothing was recorded")

    def _release(self, slot: int) -> None:
        run = self._runs[slot]
        self._runs[slot] = None
        self.sim.alive[slot] = False
        self._free.append(slot)
        if run is not None and run.model_version != self._model_version:
            self._drop_unused_policies()

    def run_at(self, slot: int) -> RunSpec | None:
        run = self._runs[slot]
        return None if run is None else run.spec

    def live_run_ids(self) -> set[str]:
        """The ids of the runs in progress."""
        return {run.spec.run_id for run in self._runs if run is not None}

    # --- inputs -----------------------------------------------------------------------------
    def set_input(self, slot: int, tick: int, steer: float | None, throttle: float | None,
                  intervene: bool, *, keys: int | None = None, device: str = "analog") -> None:
        """The player's latest input, answering frame ``tick`` (raises ``InputRejectedError``):
        analog values, or a keyboard's held keys (``keys``: ``learning.device.key_code``; the
        run's ``KeyboardWheel`` then makes the input every tick, ``steer`` / ``throttle`` are
        not used)."""
        problem = self.input_problem(slot, tick)
        if problem is not None:
            raise problem
        run = self._runs[slot]
        assert run is not None  # checked by ``input_problem``
        run.last_input_tick = tick
        run.devices.add(device)
        if keys is not None:  # the wheel decides, each tick (``_inputs``)
            self._keys[slot], self._player[slot] = keys, np.nan
            self._intervene[slot], self._input_tick[slot] = intervene, tick
            return
        self._keys[slot] = ANALOG
        self._player[slot] = [np.nan if steer is None else steer,
                              np.nan if throttle is None else throttle]
        self._intervene[slot] = intervene and steer is not None
        self._input_tick[slot] = tick if steer is not None or throttle is not None else -1

    def input_problem(self, slot: int, tick: int) -> InputRejectedError | None:
        """Why ``set_input`` would refuse an input answering ``tick`` now (None: it would not)."""
        run = self._runs[slot]
        if run is None:
            return InputRejectedError("no_run", "no run is in progress; send a start message first")
        sent = int(self._length[slot]) - 1
        if tick > sent:
            return InputRejectedError(
                "future_tick", f"tick {tick} was never sent (newest is {sent}); input ignored")
        if tick < max(run.last_input_tick, 0):
            return InputRejectedError(
                "out_of_order", f"tick {tick} is older than the previous input's tick "
                f"{run.last_input_tick}; input ignored")
        return None

    def _inputs(self, rows: np.ndarray, proposed: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This tick's (player input, the tick it answers, intervening) of every slot: the latest
        analog input, or for keyboard players the wheel stepped with their held keys (a
        keyboard's input is the wheel while it is active; control, in takeover mode, is held
        while the steering wheel is active and the player asked for it)."""
        codes = self._keys[rows]
        on = codes >= 0
        self._wheel.reset(rows[~on])  # a tick without keys: the wheel rests (as a step would)
        if not on.any():
            return self._player, self._input_tick, self._intervene
        kb = rows[on]
        wheel = self._wheel.step(kb, codes[on], proposed[kb],
                                 self._intervene[kb] & self._takeover[kb])
        player, input_tick = self._player.copy(), self._input_tick.copy()
        intervene = self._intervene.copy()
        player[kb] = wheel.player
        input_tick[kb] = np.where(wheel.active.any(axis=1), self._input_tick[kb], -1)
        intervene[kb] = wheel.intervention
        return player, input_tick, intervene

    # --- the tick ---------------------------------------------------------------------------
    def step(self) -> None:
        """One tick for every live car (see the module docstring)."""
        started = time.perf_counter()
        self._finish_stopped()
        sim = self.sim
        obs = sim.observe()
        live = np.flatnonzero(sim.alive)
        proposed = self._propose(live, obs)
        players = live[live != self.champion_slot]
        player, input_tick, intervene = self._inputs(players, proposed)
        given = np.isfinite(player)
        executed = mix_actions(self._takeover, proposed, player, intervene & self._takeover,
                               self._beta)
        at = np.minimum(self._length[players], self.run_ticks - 1)
        executed[players] = apply_disturbance(executed[players], self._noise[players, at])
        self._record(players, obs, proposed, executed, player, input_tick, intervene, given)
        self.last_proposed = proposed
        self.last_driver = np.where(self._takeover, intervene, given[:, 0] & (self._beta > 0))
        self._send_frames(players, obs, proposed, executed, player)
        sim.step(executed)
        self._finish_ended()
        if not sim.alive[self.champion_slot]:
            self._reset_champion()
        self.tick_count += 1
        self.tick_s.append(time.perf_counter() - started)
        self.tick_at.append(started)

    def _propose(self, live: np.ndarray, obs: np.ndarray) -> np.ndarray:
        """Each live car's proposed action: one batched inference per version in use."""
        proposed = np.zeros((self.sim.num_cars, 2))
        if not live.size:
            return proposed
        if len(self._policies) == 1:
            proposed[live] = self.policy.act(obs[live])
            return proposed
        versions = self._version[live]
        for version in np.unique(versions).tolist():
            rows = live[versions == version]
            proposed[rows] = self._policies[version].act(obs[rows])
        return proposed

    def _record(self, rows: np.ndarray, obs: np.ndarray, proposed: np.ndarray,
                executed: np.ndarray, player: np.ndarray, input_tick: np.ndarray,
                intervene: np.ndarray, given: np.ndarray) -> None:
        at = self._length[rows]
        has = given[rows].any(axis=1)
        self._rec.write(rows, at, self.sim.pose[rows], obs[rows], proposed[rows], executed[rows],
                        player[rows], np.where(has, input_tick[rows], -1),
                        (intervene & self._takeover)[rows] & given[rows, 0])
        self._rec.keys[rows, at] = self._keys[rows]
        self._length[rows] += 1

    def _send_frames(self, rows: np.ndarray, obs: np.ndarray, proposed: np.ndarray,
                     executed: np.ndarray, player: np.ndarray) -> None:
        if not rows.size:
            return
        nums = np.empty((rows.size, 9 + _N_RAYS + 1))  # pose, policy, action | rays, progress
        nums[:, :5] = self.sim.pose[rows]
        nums[:, 5:7] = proposed[rows]
        nums[:, 7:9] = executed[rows]
        nums[:, 9:-1] = obs[rows, :_N_RAYS] * _RAY_RANGE_M
        nums[:, -1] = self.sim.progress_m[rows]
        # every frame's fields in frame order, as texts (``fixed_text``: exactly ``_FRAME``'s)
        fields = np.empty((rows.size, 3 + 9 + 2 + _N_RAYS + 1), dtype=object)
        fields[:, 0] = self._length[rows] - 1
        fields[:, 1:10] = fixed_text(nums[:, :9], 3)
        fields[:, 10:12] = fixed_text(player[rows], 3)
        fields[:, 12] = np.where(self.last_driver[rows], "player", "policy")
        fields[:, 13:-1] = fixed_text(nums[:, 9:], 2)
        fields[:, -1] = self.sim.laps[rows]
        values = fields.tolist()
        none = np.isnan(player[rows]).any(axis=1).tolist()  # "nan" -> null (nothing else is NaN)
        runs = self._runs
        for i, slot in enumerate(rows.tolist()):
            run = runs[slot]
            if run is not None:
                text = _FRAME_TEXT % tuple(values[i])
                run.outbox.frame(text.replace("nan", "null") if none[i] else text)

    def _finish_stopped(self) -> None:
        if not self._stopping:
            return
        stopping, self._stopping = sorted(self._stopping), set()
        for slot in stopping:
            run = self._runs[slot]
            if run is not None and run.stop_reason:
                self._finish(slot, run, run.stop_reason)

    def _finish_ended(self) -> None:
        for slot in np.flatnonzero(~self.sim.alive[: self.capacity]).tolist():
            run = self._runs[slot]
            if run is not None:
                done = self.sim.steps[slot] >= self.run_ticks
                reason = ("time_up" if done else "stalled" if self.sim.stalled[slot]
                          else "left_track")
                self._finish(slot, run, reason)

    def _finish(self, slot: int, run: _Run, reason: str) -> None:
        n = int(self._length[slot])
        contribution = None
        if n > 0:
            contribution = self._rec.contribution(slot, n, run, self._meta(slot))
        self._release(slot)
        if contribution is None:
            run.outbox.event({"type": "end", "reason": reason, "ticks": 0, "submitted": False})
            self.on_discard(run.spec, f"{reason} before its first tick: nothing to judge")
            return
        run.outbox.event({"type": "end", "reason": reason, "ticks": n, "submitted": True,
                          **contribution.meta})
        self.on_finish(FinishedRun(run.spec, reason, contribution, run.outbox))

    def _meta(self, slot: int) -> dict:
        best = float(self.sim.best_lap_time_s[slot])
        run, n = self._runs[slot], int(self._length[slot])
        return {"laps": int(self.sim.laps[slot]), "progress_m": float(self.sim.progress_m[slot]),
                "left_track": bool(self.sim.steps[slot] < self.sim.max_steps
                                   and not self.sim.stalled[slot]),
                "stalled": bool(self.sim.stalled[slot]),
                "best_lap_s": None if np.isnan(best) else round(best, 3),
                "start_seed": run.start.seed if run is not None else None,
                "disturbance_std": (round(Disturbance.draw(run.start.seed, *self.disturbance).std,
                                          6) if run is not None and self.random_starts else 0.0),
                "device": device_meta(self._rec.keys[slot, :n],
                                      run.devices if run is not None else set(),
                                      self._wheel.params),
                **({"mission": run.mission} if run is not None and run.mission else {})}

    def _reset_champion(self) -> None:
        c = self.champion_slot
        self.sim.reset_cars(np.array([c]), track_index=(self.tick_count // 1200) % len(self.seeds),
                            speed_mps=START_SPEED_MPS)

    # --- spectators -------------------------------------------------------------------------
    def snapshot(self, max_runs: int) -> dict:
        """Live runs and the champion, for spectators (at most ``max_runs`` runs)."""
        cars = []
        for slot, run in enumerate(self._runs):
            if run is not None and len(cars) < max_runs:
                cars.append(self._car(slot, run.spec.run_id, run.spec.username,
                                      run.spec.track_seed))
        champ = self._car(self.champion_slot, "champion", f"champion v{self.model_version}",
                          self.seeds[int(self.sim.track_of[self.champion_slot])])
        return {"type": "watch", "tick": self.tick_count, "players": self.players,
                "runs": cars, "champion": champ}

    def _car(self, slot: int, run_id: str, name: str, seed: int) -> dict:
        return {"run_id": run_id, "name": name, "track_seed": seed,
                "pose": np.round(self.sim.pose[slot], 2).tolist(),
                "policy": np.round(self.last_proposed[slot], 3).tolist(),
                "driver": "player" if self.last_driver[slot] else "policy",
                "progress_m": round(float(self.sim.progress_m[slot]), 1),
                "laps": int(self.sim.laps[slot])}

    # --- the task ---------------------------------------------------------------------------
    async def run_forever(self, tick_hz: float) -> None:
        """Tick at ``tick_hz`` until cancelled; a late tick is not made up for."""
        period = 1.0 / tick_hz
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        # The collector runs between ticks, after the tick's frames are sent (the senders were
        # woken first), not whenever allocations cross a threshold, which was mostly in the
        # middle of a tick, promoting that tick's temporaries to the old generations: at 500
        # players about 1 s of collection per 16 s, tick p99 ~30 ms.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            while True:
                try:
                    self.step()
                except Exception:  # a bug in one tick must not stop the game for everyone
                    log.exception("game tick %d failed", self.tick_count)
                loop.call_soon(_collect_garbage, self.tick_count)
                next_at += period
                now = loop.time()
                if next_at < now - period:
                    next_at = now
                await asyncio.sleep(max(0.0, next_at - now))
        finally:
            if was_enabled:
                gc.enable()

    def tick_ms(self, recent: int = 200) -> dict:
        """Tick durations p50 / p99 over the last 2,000 ticks, and over the last ``recent``
        ticks (10 s at 20 Hz) the durations and the intervals between tick starts [ms]."""
        values = np.array(self.tick_s or [0.0]) * 1000
        steps = values[-recent:]
        gaps = np.diff(np.array(list(self.tick_at)[-recent - 1:])) * 1000
        if not gaps.size:
            gaps = np.zeros(1)
        return {"p50": round(float(np.percentile(values, 50)), 3),
                "p99": round(float(np.percentile(values, 99)), 3),
                "recent": {"ticks": int(steps.size),
                           "step_p50": round(float(np.percentile(steps, 50)), 3),
                           "step_p99": round(float(np.percentile(steps, 99)), 3),
                           "interval_p50": round(float(np.percentile(gaps, 50)), 3),
                           "interval_p99": round(float(np.percentile(gaps, 99)), 3),
                           "interval_max": round(float(gaps.max()), 3)}}


def fixed_text(x: np.ndarray, decimals: int) -> np.ndarray:
    """``"%.<decimals>f" % v`` for every element of ``x`` (2 or 3 decimals), as an object array
    of str: the same text, made from integers in bulk instead of one float at a time.

    Each value is scaled and rounded to an integer (``rint``), split into integer part and
    fraction, and both are looked up in tables of ready-made texts. That is exact wherever the
    scaled product is not within 1e-6 of a half (its rounding error is ~1e-16 relative, so it
    rounds as the exact binary value does, as ``%`` does); those values, non-finite ones (NaN
    gives "nan", as ``%`` does) and integer parts of 10,000 or more are formatted with ``%``.
    The sign is the sign bit (``%`` writes -0.0004 as "-0.000").
    """
    scale = 10**decimals
    scaled = np.asarray(x, np.float64) * scale
    with np.errstate(invalid="ignore"):
        rounded = np.rint(scaled)
        bad = ~(np.abs(rounded) < _HEADS * scale)  # NaN and inf too
        bad |= np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    whole = np.where(bad, 0, np.abs(rounded)).astype(np.int64)
    heads = np.where(np.signbit(scaled), _NEG_HEADS[whole // scale], _POS_HEADS[whole // scale])
    text = heads + _FRACTIONS[decimals][whole % scale]
    if bad.any():
        form = f"%.{decimals}f"
        text[bad] = [form % v for v in np.asarray(x, np.float64)[bad].tolist()]
    return text


def _collect_garbage(tick: int) -> None:
    gc.collect(2 if tick % _GC_FULL_EVERY == 0 else 1 if tick % _GC_MIDDLE_EVERY == 0 else 0)


class _Recording:
    """Per-slot preallocated arrays, written for all live slots at once.

    Every array is written through once at construction (``np.full``, not ``np.zeros``): lazily
    mapped zero pages were faulted in during ticks instead, hundreds at once when many runs
    crossed a page boundary together (ticks of 16-19 ms at 500 players, against 4-5 ms).
    """

    def __init__(self, n: int, ticks: int, obs_dim: int, digests: dict[int, str]) -> None:
        self.digests = digests  # play seed -> track digest
        self.states = np.full((n, ticks, 5), 0.0)
        self.observations = np.full((n, ticks, obs_dim), 0.0, np.float32)
        self.proposed = np.full((n, ticks, 2), 0.0)
        self.executed = np.full((n, ticks, 2), 0.0)
        self.player = np.full((n, ticks, 2), np.nan)
        self.input_tick = np.full((n, ticks), -1, np.int64)
        self.intervention = np.full((n, ticks), False)
        self.keys = np.full((n, ticks), ANALOG, np.int8)  # held keys' code (``learning.device``)

    _FIELDS = ("states", "observations", "proposed", "executed", "player", "input_tick",
               "intervention")

    def write(self, rows: np.ndarray, at: np.ndarray, *values: np.ndarray) -> None:
        for name, value in zip(self._FIELDS, values, strict=True):
            getattr(self, name)[rows, at] = value

    def contribution(self, slot: int, n: int, run: _Run, meta: dict) -> Contribution:
        spec = run.spec
        return Contribution(
            contribution_id=spec.run_id, contributor_id=spec.player_id, session_id=spec.run_id,
            mode=spec.mode, model_version=run.model_version, beta=float(spec.beta),
            start=EpisodeStart(self.digests[spec.track_seed], run.start.start_s_m,
                               run.start.speed_mps, run.start.lateral_m,
                               run.start.heading_rad),
            ticks=np.arange(n), meta=meta,
            **{k: getattr(self, k)[slot, :n].copy() for k in self._FIELDS})
