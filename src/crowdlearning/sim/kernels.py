"""Compiled per-car kernels: physics, track projection and range rays.

Why numba and not numpy: ``bench/bench_sim.py`` measures it. Exact ray casting against track edges
with numpy (even restricted to nearby segments) stays far below the 200k car-steps/s target at
1,000 cars, while a grid walk that stops at the first hit needs loops with early exits. A scalar
loop per car also makes every car's result independent of the batch it is stepped in (numpy's SIMD
transcendental functions may round differently in the vector body and the scalar tail of an
array), which is what lets a single-car replay confirm a trajectory simulated among thousands.
``fastmath`` stays off so results are IEEE-exact and reproducible.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["cast_rays", "project_cars", "step_cars"]

# pose columns
X, Y, YAW, V, DELTA = 0, 1, 2, 3, 4
# CarParams.as_array() order
_WB, _MAX_STEER, _STEER_RATE, _ACC, _BRAKE, _VMAX, _DRAG, _ROLL, _GRIP = range(9)

_JIT = {"cache": True, "nogil": True, "error_model": "numpy", "fastmath": False}


@njit(**_JIT)
def _clip(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else (hi if value > hi else value)


@njit(**_JIT)
def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


@njit(**_JIT)
def step_cars(pose, actions, alive, params, dt, track_of, grip):
    """Advance every alive car by one tick, in place (kinematic bicycle, midpoint rule).

    Car ``i`` has the car model's grip times its track's: ``params[_GRIP] * grip[track_of[i]]``
    (a product with 1.0 is exact, so tracks of full grip drive as before, bit for bit).
    """
    for i in range(pose.shape[0]):
        if not alive[i]:
            continue
        steer_cmd = _clip(actions[i, 0], -1.0, 1.0) * params[_MAX_STEER]
        max_turn = params[_STEER_RATE] * dt
        delta = pose[i, DELTA] + _clip(steer_cmd - pose[i, DELTA], -max_turn, max_turn)
        throttle = _clip(actions[i, 1], -1.0, 1.0)
        v = pose[i, V]
        if throttle >= 0.0:
            acc = throttle * params[_ACC] * max(0.0, 1.0 - v / params[_VMAX])
        else:
            acc = throttle * params[_BRAKE]
        acc -= params[_DRAG] * v * v + (params[_ROLL] if v > 0.0 else 0.0)
        v_new = max(0.0, v + acc * dt)
        v_mid = 0.5 * (v + v_new)
        kappa = math.tan(delta) / params[_WB]
        limit = params[_GRIP] * grip[track_of[i]] / max(v_mid * v_mid, 1e-6)
        kappa = _clip(kappa, -limit, limit)
        yaw_rate = v_mid * kappa
        yaw_mid = pose[i, YAW] + 0.5 * yaw_rate * dt
        pose[i, X] += v_mid * math.cos(yaw_mid) * dt
        pose[i, Y] += v_mid * math.sin(yaw_mid) * dt
        pose[i, YAW] = _wrap(pose[i, YAW] + yaw_rate * dt)
        pose[i, V] = v_new
        pose[i, DELTA] = delta


@njit(**_JIT)
def project_cars(pose, track_of, idx, alive, centre, tangent, normal, s_arr, start, count,
                 length, out):
    """Nearest centreline point near each car's last one; write s, lateral offset, heading error.

    ``out[:, 0]`` arc length [m], ``out[:, 1]`` lateral offset (left positive) [m],
    ``out[:, 2]`` heading error [rad]. ``idx`` (local centreline index) is updated in place. The
    search window is +-8 samples: a car moves at most 1.5 m per tick, so it cannot skip past it.
    """
    for i in range(pose.shape[0]):
        if not alive[i]:
            continue
        t = track_of[i]
        base, n = start[t], count[t]
        px, py = pose[i, X], pose[i, Y]
        best_k, best_d = idx[i], np.inf
        for off in range(-8, 9):
            k = (idx[i] + off) % n
            dx, dy = px - centre[base + k, 0], py - centre[base + k, 1]
            d = dx * dx + dy * dy
            if d < best_d:
                best_d, best_k = d, k
        idx[i] = best_k
        g = base + best_k
        dx, dy = px - centre[g, 0], py - centre[g, 1]
        along = dx * tangent[g, 0] + dy * tangent[g, 1]
        out[i, 0] = (s_arr[g] + along) % length[t]
        out[i, 1] = dx * normal[g, 0] + dy * normal[g, 1]
        out[i, 2] = _wrap(pose[i, YAW] - math.atan2(tangent[g, 1], tangent[g, 0]))


@njit(**_JIT)
def _hit(ox, oy, dx, dy, seg):
    """Distance along the ray to the segment, or inf."""
    ex, ey = seg[2] - seg[0], seg[3] - seg[1]
    den = dx * ey - dy * ex
    if abs(den) < 1e-12:
        return np.inf
    wx, wy = seg[0] - ox, seg[1] - oy
    t = (wx * ey - wy * ex) / den
    u = (wx * dy - wy * dx) / den
    if t >= 0.0 and 0.0 <= u <= 1.0:
        return t
    return np.inf


@njit(**_JIT)
def _cast_one(ox, oy, dx, dy, max_range, segments, origin, nx, ny, base, cell_ptr,
              cell_items, cell):
    """Walk the grid cells along one ray (Amanatides-Woo) and return the first edge hit."""
    gx, gy = (ox - origin[0]) / cell, (oy - origin[1]) / cell
    ix, iy = math.floor(gx), math.floor(gy)
    if ix < 0 or iy < 0 or ix >= nx or iy >= ny:
        return max_range
    step_x = 1 if dx > 0 else -1
    step_y = 1 if dy > 0 else -1
    t_max_x = ((ix + (1 if dx > 0 else 0)) - gx) * cell / dx if dx != 0 else np.inf
    t_max_y = ((iy + (1 if dy > 0 else 0)) - gy) * cell / dy if dy != 0 else np.inf
    t_dx = cell / abs(dx) if dx != 0 else np.inf
    t_dy = cell / abs(dy) if dy != 0 else np.inf
    best = np.inf
    while True:
        c = base + iy * nx + ix
        for p in range(cell_ptr[c], cell_ptr[c + 1]):
            t = _hit(ox, oy, dx, dy, segments[cell_items[p]])
            if t < best:
                best = t
        t_exit = min(t_max_x, t_max_y)
        if best <= t_exit or t_exit > max_range:
            break
        if t_max_x < t_max_y:
            ix += step_x
            t_max_x += t_dx
        else:
            iy += step_y
            t_max_y += t_dy
        if ix < 0 or iy < 0 or ix >= nx or iy >= ny:
            break
    return min(best, max_range)


@njit(**_JIT)
def cast_rays(pose, track_of, ray_angles, max_range, segments, grid_origin, grid_dims,
              cell_base, cell_ptr, cell_items, cell, out):
    """Distance from each car along each ray to the nearest track edge, capped at ``max_range``."""
    for i in range(pose.shape[0]):
        t = track_of[i]
        for r in range(ray_angles.shape[0]):
            a = pose[i, YAW] + ray_angles[r]
            out[i, r] = _cast_one(pose[i, X], pose[i, Y], math.cos(a), math.sin(a), max_range,
                                  segments, grid_origin[t], grid_dims[t, 0], grid_dims[t, 1],
                                  cell_base[t], cell_ptr, cell_items, cell)
