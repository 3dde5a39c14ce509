"""The observation vector, field by field.

With the default ``SensorParams`` the vector has 18 float32 fields:

====  =====================  =============================================================  =======
index name                   meaning                                                        range
====  =====================  =============================================================  =======
0-8   ray_<angle>            distance to the nearest track edge along a ray at -90, -60,    [0, 1]
                             -35, -15, 0, 15, 35, 60, 90 deg from the heading (left
                             positive), divided by the ray range (50 m); 1 = nothing seen
9     speed                  forward speed / top speed (30 m/s)                             [0, 1]
10    heading_error          heading minus the centreline's direction, / pi (left +)        [-1, 1]
11    lateral_offset         distance left of the centreline / half the track width;        [-2, 2]
                             beyond +-1 the car has left the track
12    steer_angle            front-wheel angle / max angle (0.6 rad), left positive         [-1, 1]
13-17 curvature_<d>m         centreline curvature 5, 10, 20, 35, 50 m ahead, times 8 m,     [-2, 2]
                             divided by the surface's grip factor (``Track.grip``; 1 on a
                             full-grip track): how sharp the corner is *for that surface*
                             (a radius of 8 m reads 1.0 at full grip; left turns positive)
====  =====================  =============================================================  =======

Every field is computed on the server from the simulated state; clients never supply them.

Why the grip is in the curvature preview: a corner's safe speed is ``sqrt(grip / curvature)``,
so on a slippery surface the same layout needs lower speeds, and without the grip in the
observation the policy could not tell a `low-grip` track from a `technical` one (the same
layouts): the crowd's braking labels on low grip then made the model brake on every track
(docs/verdict.md, "A surface the policy can see"). Dividing by the grip makes the preview the
corner's *severity*, which is what the scripted expert's speed plan depends on; on full-grip
tracks the division is by exactly 1.0, so their observations are unchanged bit for bit.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from crowdlearning.sim.params import CarParams, SensorParams

__all__ = ["assemble", "observation_fields", "observation_space"]


def observation_fields(sensors: SensorParams) -> list[str]:
    """Names of the observation's fields, in order."""
    rays = [f"ray_{angle:+.0f}deg" for angle in sensors.ray_angles_deg]
    preview = [f"curvature_{d:.0f}m" for d in sensors.preview_distances_m]
    return [*rays, "speed", "heading_error", "lateral_offset", "steer_angle", *preview]


def observation_space(sensors: SensorParams) -> spaces.Box:
    """The Box every observation lies in (bounds as in the table above)."""
    n_rays, n_prev = len(sensors.ray_angles_deg), len(sensors.preview_distances_m)
    low = np.concatenate([np.zeros(n_rays), [0.0, -1.0, -2.0, -1.0], np.full(n_prev, -2.0)])
    high = np.concatenate([np.ones(n_rays), [1.0, 1.0, 2.0, 1.0], np.full(n_prev, 2.0)])
    return spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)


def assemble(
    rays_m: np.ndarray,
    pose: np.ndarray,
    frenet: np.ndarray,
    half_width_m: np.ndarray,
    preview_curvature: np.ndarray,
    car: CarParams,
    sensors: SensorParams,
    grip: np.ndarray | None = None,
) -> np.ndarray:
    """Scale raw sensor readings into the documented fields (float32; the caller clips).

    ``grip``: each car's surface grip factor (``Track.grip``), dividing the curvature preview;
    None for full grip everywhere."""
    n = len(pose)
    obs = np.empty((n, rays_m.shape[1] + 4 + preview_curvature.shape[1]), dtype=np.float32)
    k = rays_m.shape[1]
    obs[:, :k] = rays_m / sensors.ray_max_range_m
    obs[:, k] = pose[:, 3] / car.max_speed_mps
    obs[:, k + 1] = frenet[:, 2] / np.pi
    obs[:, k + 2] = np.clip(frenet[:, 1] / half_width_m, -2.0, 2.0)
    obs[:, k + 3] = pose[:, 4] / car.max_steer_rad
    severity = preview_curvature * sensors.curvature_scale_m
    if grip is not None:
        severity = severity / np.asarray(grip, dtype=np.float64).reshape(-1, 1)
    obs[:, k + 4 :] = severity
    return obs
