"""The native ``VectorEnv`` of ``crowdlearning/Race-v0``: N cars in one ``RaceSim`` step.

``gymnasium.make_vec("crowdlearning/Race-v0", num_envs=N, vectorization_mode="vector_entry_point")``
returns this class. Cars are spread over a pool of tracks (``tracks``, or ``num_tracks`` generated
from ``track_seed``); ``reset(seed=s)`` decides which car drives which track and where it starts.
Autoreset follows gymnasium's default NEXT_STEP mode: the step after an episode ends resets that
car and returns its first observation with reward 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from crowdlearning.errors import SimulationError
from crowdlearning.sim.env import TrackLike, resolve_track
from crowdlearning.sim.observation import observation_space
from crowdlearning.sim.params import CONTROL_RATE_HZ, CarParams, SensorParams
from crowdlearning.sim.race_sim import RaceSim

__all__ = ["RaceVectorEnv"]


class RaceVectorEnv(VectorEnv):
    """``num_envs`` cars stepped together (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.NEXT_STEP, "render_fps": CONTROL_RATE_HZ}

    def __init__(
        self,
        num_envs: int,
        *,
        tracks: Sequence[TrackLike] | None = None,
        num_tracks: int = 8,
        track_seed: int = 0,
        random_start: bool = True,
        start_speed_mps: float = 0.0,
        max_episode_steps: int = 2400,
        car: CarParams | None = None,
        sensors: SensorParams | None = None,
    ) -> None:
        if num_envs < 1:
            raise SimulationError(f"num_envs must be >= 1, got {num_envs}")
        pool = [resolve_track(t) for t in tracks] if tracks else [
            resolve_track(track_seed + i) for i in range(num_tracks)]
        self.sim = RaceSim(pool, num_envs, car=car, sensors=sensors,
                           max_steps=max_episode_steps)
        self.num_envs = int(num_envs)
        self.random_start = random_start
        self.start_speed_mps = float(start_speed_mps)
        self.single_observation_space = observation_space(self.sim.sensors)
        self.single_action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        first = seed[0] if isinstance(seed, list) else seed
        super().reset(seed=first)
        if options:
            raise SimulationError(f"unknown reset options: {sorted(options)}")
        self._place(np.arange(self.num_envs))
        self._needs_reset[:] = False
        return self.sim.observe(), self._info()

    def _place(self, cars: np.ndarray) -> None:
        rng = self.np_random
        track = rng.integers(self.sim.bank.num_tracks, size=len(cars))
        lengths = self.sim.bank.length[track]
        start = rng.uniform(0.0, 1.0, size=len(cars)) * lengths if self.random_start else 0.0
        self.sim.reset_cars(cars, track_index=track, start_s_m=start,
                            speed_mps=self.start_speed_mps)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, 2):
            raise SimulationError(f"actions must have shape ({self.num_envs}, 2), "
                                  f"got {actions.shape}")
        restarting = np.flatnonzero(self._needs_reset)
        out = self.sim.step(actions)
        if restarting.size:
            self._place(restarting)
        reward = out.reward.astype(np.float32)
        reward[restarting] = 0.0
        self._needs_reset = out.terminated | out.truncated
        return (self.sim.observe(), reward, out.terminated.copy(), out.truncated.copy(),
                self._info())

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "progress_m": self.sim.progress_m.copy(),
            "laps": self.sim.laps.copy(),
            "track_index": self.sim.track_of.copy(),
        }
        mask = np.ones(self.num_envs, dtype=bool)
        for key in list(info):
            info[f"_{key}"] = mask
        return info
