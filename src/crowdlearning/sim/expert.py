"""The scripted expert: pure pursuit on the centreline with curvature-aware speed control.

It reads ground truth (pose and position on the track, which a client can derive from the frames
and the track JSON it is sent), never the observation, and is batched over all cars. It is the
reference driver for tests, the source of gold labels, and the skill the simulated crowd imitates.

Steering: aim at the centreline point ``lookahead = clip(k * v + base)`` metres ahead and turn the
wheels by the pure-pursuit angle ``atan(2 L sin(alpha) / lookahead)``.
Speed: for points up to ``horizon_m`` ahead, the fastest speed that can still brake to that point's
corner speed ``sqrt(lateral_grip / |curvature|)`` (the car's grip times the track's,
``Track.grip``); the target is the minimum, tracked with a
proportional throttle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crowdlearning.sim.params import CarParams
from crowdlearning.sim.race_sim import RaceSim, curvature_ahead
from crowdlearning.sim.track_bank import TrackBank

__all__ = ["ExpertDriver"]


@dataclass(frozen=True)
class ExpertDriver:
    """Batched pure-pursuit driver; ``act(sim)`` returns (num_cars, 2) actions."""

    lookahead_gain_s: float = 0.35  # lookahead grows with speed [s]
    lookahead_base_m: float = 4.0
    lookahead_max_m: float = 16.0
    grip_fraction: float = 0.8  # share of the car's grip used in corners
    brake_fraction: float = 0.6  # share of the car's braking planned for
    horizon_m: float = 80.0  # how far ahead corners are anticipated [m]
    horizon_step_m: float = 2.0
    speed_gain: float = 0.6  # throttle per m/s of speed error

    def act(self, sim: RaceSim) -> np.ndarray:
        """Actions (steer, throttle) for every car of ``sim``."""
        return self.act_on(sim.bank, sim.car, sim.pose, sim.idx, sim.track_of)

    def act_on(self, bank: TrackBank, car: CarParams, pose: np.ndarray, idx: np.ndarray,
               track_of: np.ndarray) -> np.ndarray:
        """Actions for cars at ``pose`` (n, 5) nearest centreline points ``idx`` of ``track_of``."""
        steer = self._steer(bank, car, pose, idx, track_of)
        target = self._target_speed_mps(bank, car, idx, track_of)
        throttle = np.clip(self.speed_gain * (target - pose[:, 3]), -1.0, 1.0)
        return np.stack([steer, throttle], axis=1)

    def _steer(self, bank: TrackBank, car: CarParams, pose: np.ndarray, idx: np.ndarray,
               track_of: np.ndarray) -> np.ndarray:
        speed = pose[:, 3]
        lookahead = np.clip(self.lookahead_gain_s * speed + self.lookahead_base_m,
                            self.lookahead_base_m, self.lookahead_max_m)
        ahead = np.round(lookahead / bank.spacing[track_of]).astype(np.int64)
        target = bank.centre[bank.start[track_of] + (idx + ahead) % bank.count[track_of]]
        dx, dy = target[:, 0] - pose[:, 0], target[:, 1] - pose[:, 1]
        alpha = np.arctan2(dy, dx) - pose[:, 2]
        dist = np.maximum(np.hypot(dx, dy), 1.0)
        wheel = np.arctan(2.0 * car.wheelbase_m * np.sin(alpha) / dist)
        return np.clip(wheel / car.max_steer_rad, -1.0, 1.0)

    def _target_speed_mps(self, bank: TrackBank, car: CarParams, idx: np.ndarray,
                          track_of: np.ndarray) -> np.ndarray:
        distances = np.arange(0.0, self.horizon_m + 1e-9, self.horizon_step_m)
        curvature = np.abs(curvature_ahead(bank, track_of, idx, distances))
        grip = car.grip_mps2 * bank.grip[track_of][:, None]  # the track's surface too
        corner = np.sqrt(self.grip_fraction * grip / np.maximum(curvature, 1e-4))
        brake = self.brake_fraction * car.max_brake_mps2
        reachable = np.sqrt(corner**2 + 2.0 * brake * distances[None, :])
        return np.minimum(reachable.min(axis=1), 0.97 * car.max_speed_mps)
