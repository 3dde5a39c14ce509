"""``crowdlearning/Race-v0``: one car on one track, the standard gymnasium ``Env``.

Action: ``Box(-1, 1, (2,))`` = (steer, throttle/brake). Observation: see
``crowdlearning.sim.observation``. Reward: metres of progress along the centreline per tick, minus
10 on leaving the track (which terminates the episode). ``max_episode_steps`` ticks (20 Hz)
truncate it.

Track choice: a fixed ``Track``, a named track (``str``), a seed (``int``), or ``None`` to draw a
new generated track at every reset from the env's RNG, so ``reset(seed=s)`` names the track and
the start. ``reset(options={"track": ..., "start_s_m": ..., "speed_mps": ...})`` overrides per
episode.
"""

from __future__ import annotations

from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from crowdlearning.errors import SimulationError
from crowdlearning.sim.observation import observation_space
from crowdlearning.sim.params import CONTROL_RATE_HZ, CarParams, SensorParams
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_gen import generate_track, named_track

__all__ = ["RaceEnv", "TrackLike", "resolve_track"]

TrackLike = Track | str | int
_TRACK_SEED_LIMIT = 2**31 - 1


def resolve_track(track: TrackLike) -> Track:
    """A ``Track`` from a track, a named-track name, or a generator seed."""
    if isinstance(track, Track):
        return track
    if isinstance(track, str):
        return named_track(track)
    if isinstance(track, int | np.integer) and not isinstance(track, bool):
        return generate_track(int(track))
    raise SimulationError(f"track must be a Track, a name or a seed, got {type(track).__name__}")


class RaceEnv(gym.Env[np.ndarray, np.ndarray]):
    """A single car on a race track (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["rgb_array"], "render_fps": CONTROL_RATE_HZ}

    def __init__(
        self,
        track: TrackLike | None = None,
        *,
        random_start: bool = True,
        start_speed_mps: float = 0.0,
        max_episode_steps: int = 2400,
        car: CarParams | None = None,
        sensors: SensorParams | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise SimulationError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self._fixed_track = None if track is None else resolve_track(track)
        self.random_start = random_start
        self.start_speed_mps = float(start_speed_mps)
        self.max_episode_steps = int(max_episode_steps)
        self.car = car or CarParams()
        self.sensors = sensors or SensorParams()
        self.observation_space = observation_space(self.sensors)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.sim: RaceSim | None = None
        self._path: list[np.ndarray] = []

    @property
    def track(self) -> Track:
        if self.sim is None:
            raise SimulationError("call reset() before using the env")
        return self.sim.bank.tracks[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        track = self._choose_track(options.pop("track", None))
        if self.sim is None or self.sim.bank.tracks[0] != track:
            self.sim = RaceSim([track], 1, car=self.car, sensors=self.sensors,
                               max_steps=self.max_episode_steps)
        default_s = self.np_random.uniform(0.0, track.length_m) if self.random_start else 0.0
        start_s = float(options.pop("start_s_m", default_s))
        speed = float(options.pop("speed_mps", self.start_speed_mps))
        if options:
            raise SimulationError(f"unknown reset options: {sorted(options)}")
        self.sim.reset_cars(np.array([0]), start_s_m=start_s, speed_mps=speed)
        self._path = [self.sim.pose[0, :2].copy()]
        info = {"track_name": track.name, "track_digest": track.digest, "start_s_m": start_s,
                "start_speed_mps": speed}
        return self.sim.observe()[0], info

    def _choose_track(self, override: TrackLike | None) -> Track:
        if override is not None:
            return resolve_track(override)
        if self._fixed_track is not None:
            return self._fixed_track
        return generate_track(int(self.np_random.integers(_TRACK_SEED_LIMIT)))

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.sim is None:
            raise SimulationError("call reset() before step()")
        if not self.sim.alive[0]:
            raise SimulationError("episode is over: call reset()")
        act = np.asarray(action, dtype=np.float64).reshape(1, 2)
        out = self.sim.step(act)
        self._path.append(self.sim.pose[0, :2].copy())
        info = {
            "progress_m": float(self.sim.progress_m[0]),
            "laps": int(self.sim.laps[0]),
            "last_lap_time_s": _none_if_nan(self.sim.last_lap_time_s[0]),
            "left_track": bool(out.terminated[0]),
        }
        return (self.sim.observe()[0], float(out.reward[0]), bool(out.terminated[0]),
                bool(out.truncated[0]), info)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self.sim is None:
            return None
        from crowdlearning.sim.render import render_rgb  # matplotlib only when rendering

        return render_rgb(self.track, np.asarray(self._path))


def _none_if_nan(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
