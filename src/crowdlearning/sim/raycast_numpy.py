"""Range rays in plain numpy, testing every edge segment of the car's track.

The exact, obviously-correct reference the compiled grid walk in ``kernels.cast_rays`` is checked
against, and the numpy alternative ``bench/bench_sim.py`` measures it against.
"""

from __future__ import annotations

import numpy as np

from crowdlearning.sim.track import Track

__all__ = ["cast_rays_numpy"]


def cast_rays_numpy(
    track: Track, pose: np.ndarray, ray_angles_rad: np.ndarray, max_range_m: float
) -> np.ndarray:
    """Distances (n, R) from each pose (n, >=3: x, y, yaw) along each ray to the nearest edge."""
    segs = []
    for edge in (track.left_edge_m, track.right_edge_m):
        segs.append(np.hstack([edge, np.roll(edge, -1, axis=0)]))
    seg = np.vstack(segs)  # (S, 4)
    a = seg[None, None, :, :2]
    e = (seg[:, 2:] - seg[:, :2])[None, None, :, :]
    angles = pose[:, 2:3] + ray_angles_rad[None, :]  # (n, R)
    d = np.stack([np.cos(angles), np.sin(angles)], axis=-1)[:, :, None, :]  # (n, R, 1, 2)
    o = pose[:, None, None, :2]
    w = a - o
    den = d[..., 0] * e[..., 1] - d[..., 1] * e[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (w[..., 0] * e[..., 1] - w[..., 1] * e[..., 0]) / den
        u = (w[..., 0] * d[..., 1] - w[..., 1] * d[..., 0]) / den
    valid = (np.abs(den) >= 1e-12) & (t >= 0) & (u >= 0) & (u <= 1)
    t = np.where(valid, t, np.inf)
    return np.minimum(t.min(axis=2), max_range_m)
