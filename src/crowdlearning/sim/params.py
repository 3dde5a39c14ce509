"""Physical constants of the car and its sensors, with units at the end of every name."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from crowdlearning.errors import SimulationError

__all__ = ["CONTROL_RATE_HZ", "DT_S", "CarParams", "SensorParams"]

CONTROL_RATE_HZ = 20  # the game's tick rate: one action per tick [Hz]
DT_S = 1.0 / CONTROL_RATE_HZ  # [s]


@dataclass(frozen=True)
class CarParams:
    """Kinematic bicycle with a steering actuator and a grip limit.

    Steering command in [-1, 1] maps to a front-wheel angle target; the wheel turns toward it at a
    bounded rate. Throttle in [0, 1] accelerates (falling to zero at top speed), in [-1, 0) brakes.
    Lateral grip caps the path curvature at ``grip_mps2 / v^2``: too fast into a corner and the car
    understeers off the track, so the driver must brake.
    """

    wheelbase_m: float = 2.6
    max_steer_rad: float = 0.6
    steer_rate_radps: float = 3.0
    max_accel_mps2: float = 6.0
    max_brake_mps2: float = 10.0
    max_speed_mps: float = 30.0
    drag_per_m: float = 0.0015  # deceleration = drag * v^2 [1/m]
    rolling_mps2: float = 0.15  # rolling resistance [m/s^2]
    grip_mps2: float = 9.0  # lateral acceleration limit (mu * g) [m/s^2]

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (np.isfinite(value) and value >= 0):
                raise SimulationError(f"CarParams.{f.name} must be finite and >= 0, got {value}")

    def as_array(self) -> np.ndarray:
        """The parameters in the order the kernels read them."""
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float64)


@dataclass(frozen=True)
class SensorParams:
    """Range rays (angles relative to the car's heading) and the curvature preview."""

    ray_angles_deg: tuple[float, ...] = (-90.0, -60.0, -35.0, -15.0, 0.0, 15.0, 35.0, 60.0, 90.0)
    ray_max_range_m: float = 50.0
    preview_distances_m: tuple[float, ...] = (5.0, 10.0, 20.0, 35.0, 50.0)
    curvature_scale_m: float = 8.0  # preview reports curvature * scale (radius 8 m -> 1.0)

    def __post_init__(self) -> None:
        if not self.ray_angles_deg or self.ray_max_range_m <= 0:
            raise SimulationError("SensorParams needs at least one ray and a positive range")
        if any(d < 0 for d in self.preview_distances_m):
            raise SimulationError("preview distances must be >= 0 m")

    @property
    def ray_angles_rad(self) -> np.ndarray:
        return np.deg2rad(np.asarray(self.ray_angles_deg, dtype=np.float64))
