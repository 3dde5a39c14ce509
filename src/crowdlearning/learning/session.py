"""Play sessions: the server's game loop for many players at once, recording contributions.

Each tick, for all live sessions together: observe, one batched policy inference (the proposed
action), take each player's latest input (tagged with the tick it answers), mix per the session's
mode (``labels.mix_actions``), record the tick, and step the simulator once. A session ends when
its car leaves the track or its tick budget runs out; its recording becomes a ``Contribution``.
Players, human or scripted, see only what a client is sent: the ``Frame``.

A player may send held keys instead of values (``PlayerInputs.keys``): they move the session's
``learning.device.KeyboardWheel``, the same wheel the game server steps, whose value is then the
player's input (and the run records its keys in ``meta["device"]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crowdlearning.errors import SimulationError
from crowdlearning.learning.contribution import Contribution, Mode
from crowdlearning.learning.device import ANALOG, KeyboardWheel, WheelParams, device_meta
from crowdlearning.learning.disturbance import Disturbance, apply_disturbance
from crowdlearning.learning.labels import mix_actions
from crowdlearning.policy.network import Policy
from crowdlearning.sim.params import CarParams
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.replay import EpisodeStart
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_bank import TrackBank

__all__ = ["Frame", "PlayerInputs", "SessionBatch", "SessionSpec"]


@dataclass(frozen=True)
class SessionSpec:
    """Who plays, where, how."""

    contributor_id: str
    session_id: str
    track: Track
    start_s_m: float = 0.0
    start_speed_mps: float = 8.0
    # a start on the champion's approach to a failure (``learning.routing.meet_failures``)
    start_lateral_m: float = 0.0
    start_heading_rad: float = 0.0
    mode: Mode = "label"
    beta: float = 1.0
    disturbance: Disturbance | None = None  # noise on the executed steering (server's choice)


@dataclass(frozen=True, eq=False)
class Frame:
    """What every client is sent at a tick (one row per session), plus the public track data."""

    tick: int
    alive: np.ndarray  # (n,) bool
    pose: np.ndarray  # (n, 5)
    observation: np.ndarray  # (n, obs_dim) the policy's input
    proposed: np.ndarray  # (n, 2) the policy's intended action
    lateral_m: np.ndarray  # (n,) offset from the centreline, left positive
    # public geometry a client has (the track JSON) and derives (its nearest centreline point):
    bank: TrackBank
    car: CarParams
    track_of: np.ndarray
    centre_index: np.ndarray
    # the player's input applied on the previous tick, NaN where none (for a keyboard: the
    # wheel's value), as the last frame sent to a client shows it
    player: np.ndarray | None = None


@dataclass
class PlayerInputs:
    """The latest input of each session's player (NaN / -1 / False where none).

    ``keys``: per session, the held keys' code (``learning.device.key_code``) for a player on a
    keyboard, ``ANALOG`` (-1) for one sending values in ``player``; None = all analog. For a
    keyboard session ``player`` is ignored (the wheel makes it) and ``intervention`` is the
    client's wish to hold control (takeover mode).
    """

    player: np.ndarray  # (n, 2)
    input_tick: np.ndarray  # (n,) int64
    intervention: np.ndarray  # (n,) bool
    keys: np.ndarray | None = None  # (n,) int64

    @classmethod
    def none(cls, n: int) -> PlayerInputs:
        return cls(np.full((n, 2), np.nan), np.full(n, -1, np.int64), np.zeros(n, bool),
                   np.full(n, ANALOG, np.int64))

    def set_rows(self, rows: np.ndarray, answer: tuple) -> None:
        """Write a persona's answer for ``rows``: (player, input_tick, intervention) or, from a
        keyboard persona, (player, input_tick, intervention, keys)."""
        self.player[rows], self.input_tick[rows], self.intervention[rows] = answer[:3]
        if len(answer) > 3 or self.keys is not None:
            if self.keys is None:
                self.keys = np.full(len(self.input_tick), ANALOG, np.int64)
            self.keys[rows] = answer[3] if len(answer) > 3 else ANALOG


class SessionBatch:
    """``len(specs)`` sessions played in lockstep with one policy."""

    def __init__(self, policy: Policy, specs: Sequence[SessionSpec], *, model_version: int,
                 max_ticks: int = 1200, wheel: WheelParams | None = None,
                 stall_ticks: int = 60) -> None:
        if not specs:
            raise SimulationError("a session batch needs at least one session")
        self.policy, self.specs, self.model_version = policy, list(specs), model_version
        tracks = list({s.track.digest: s.track for s in specs}.values())
        index = {t.digest: i for i, t in enumerate(tracks)}
        n = len(specs)
        # a stalled car ends its session, as the game server ends such a run
        self.sim = RaceSim(tracks, n, max_steps=max_ticks, stall_ticks=stall_ticks)
        self.sim.reset_cars(np.arange(n), track_index=[index[s.track.digest] for s in specs],
                            start_s_m=[s.start_s_m for s in specs],
                            speed_mps=[s.start_speed_mps for s in specs],
                            lateral_m=[s.start_lateral_m for s in specs],
                            heading_offset_rad=[s.start_heading_rad for s in specs])
        self._takeover = np.array([s.mode == "takeover" for s in specs])
        self._beta = np.array([s.beta for s in specs])
        self._noise = np.stack([s.disturbance.steering(max_ticks) if s.disturbance is not None
                                else np.zeros(max_ticks) for s in specs])
        self.tick = 0
        obs_dim = self.sim.observe().shape[1]
        self._rec = {
            "states": np.zeros((n, max_ticks, 5)), "observations": np.zeros(
                (n, max_ticks, obs_dim), np.float32),
            "proposed": np.zeros((n, max_ticks, 2)), "executed": np.zeros((n, max_ticks, 2)),
            "player": np.full((n, max_ticks, 2), np.nan),
            "input_tick": np.full((n, max_ticks), -1, np.int64),
            "intervention": np.zeros((n, max_ticks), bool),
        }
        self._keys = np.full((n, max_ticks), ANALOG, np.int64)  # key code per tick
        self._wheel = KeyboardWheel(n, wheel)
        self._applied = np.full((n, 2), np.nan)  # the player input applied last tick
        self._length = np.zeros(n, np.int64)
        self._frame: Frame | None = None

    @property
    def done(self) -> bool:
        return not self.sim.alive.any()

    def frame(self) -> Frame:
        """This tick's frame (observation and the policy's proposal for every session)."""
        if self._frame is None or self._frame.tick != self.tick:
            obs = self.sim.observe()
            self._frame = Frame(
                tick=self.tick, alive=self.sim.alive.copy(), pose=self.sim.pose.copy(),
                observation=obs, proposed=self.policy.act(obs),
                lateral_m=self.sim.frenet[:, 1].copy(), bank=self.sim.bank, car=self.sim.car,
                track_of=self.sim.track_of, centre_index=self.sim.idx.copy(),
                player=self._applied.copy())
        return self._frame

    def advance(self, inputs: PlayerInputs) -> None:
        """Apply the players' inputs, record the tick for live sessions, step the simulator."""
        frame = self.frame()
        player = np.clip(inputs.player, -1.0, 1.0)
        input_tick, intervention = inputs.input_tick, inputs.intervention & self._takeover
        live = np.flatnonzero(frame.alive)
        keys = (np.full(len(player), ANALOG, np.int64) if inputs.keys is None
                else np.where(input_tick >= 0, np.asarray(inputs.keys, np.int64), ANALOG))
        on = keys[live] >= 0
        if on.any():  # keyboard sessions: the wheel makes their input (any value is ignored)
            wheel = self._wheel.step(live, keys[live], frame.proposed[live], intervention[live])
            kb = live[on]
            player, input_tick, intervention = player.copy(), input_tick.copy(), intervention.copy()
            player[kb] = wheel.player[on]
            input_tick[kb] = np.where(wheel.active[on].any(axis=1), input_tick[kb], -1)
            intervention[kb] = wheel.intervention[on] & self._takeover[kb]
            self._keys[kb, self._length[kb]] = keys[kb]
        else:
            self._wheel.reset(live)
        executed = mix_actions(self._takeover, frame.proposed, player, intervention, self._beta)
        row = self._length[live]
        executed[live] = apply_disturbance(executed[live], self._noise[live, row])
        rec = self._rec
        rec["states"][live, row] = frame.pose[live]
        rec["observations"][live, row] = frame.observation[live]
        rec["proposed"][live, row] = frame.proposed[live]
        rec["executed"][live, row] = executed[live]
        rec["player"][live, row] = player[live]
        given = np.isfinite(player[live]).any(axis=1)
        rec["input_tick"][live, row] = np.where(given, input_tick[live], -1)
        rec["intervention"][live, row] = intervention[live] & np.isfinite(player[live, 0])
        self._applied[live] = player[live]
        self._length[live] += 1
        self.sim.step(executed)
        self.tick += 1

    def contributions(self, id_prefix: str = "") -> list[Contribution]:
        """One contribution per session that played at least one tick."""
        out = []
        for i, spec in enumerate(self.specs):
            n = int(self._length[i])
            if n == 0:
                continue
            start = EpisodeStart(spec.track.digest, float(spec.start_s_m),
                                 float(spec.start_speed_mps), float(spec.start_lateral_m),
                                 float(spec.start_heading_rad))
            arrays = {k: v[i, :n] for k, v in self._rec.items()}
            keys = self._keys[i, :n]
            device = ({"device": device_meta(keys, ["keyboard"], self._wheel.params)}
                      if (keys >= 0).any() else {})
            out.append(Contribution(
                contribution_id=f"{id_prefix}{spec.session_id}", contributor_id=spec.contributor_id,
                session_id=spec.session_id, mode=spec.mode, model_version=self.model_version,
                beta=float(spec.beta), start=start, ticks=np.arange(n), **arrays,
                meta={"laps": int(self.sim.laps[i]), "progress_m": float(self.sim.progress_m[i]),
                      "left_track": bool(self.sim.steps[i] < self.sim.max_steps
                                         and not self.sim.stalled[i]),
                      "stalled": bool(self.sim.stalled[i]), **device},
            ))
        return out
