"""Standings: the order of the cars, their gaps to the leader, and lap-line crossings.

A car's race distance is how far it has come since the start line (negative on the grid behind
it). Lap ``j`` is done when the race distance passes ``j x track length``; the crossing time is
interpolated within the tick, as ``RaceSim`` times its own laps. The order: finished cars by
finishing time, then cars still racing by distance, then cars out (DNF) by distance. The gap of
a car still racing is the time since the leader was where the car is now (``GapClock``); of a
finished car, its finishing time minus the winner's.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DNF", "FINISHED", "RACING", "GapClock", "line_crossings", "race_order"]

RACING, FINISHED, DNF = 0, 1, 2


def line_crossings(before: np.ndarray, after: np.ndarray, length_m: float, laps: int,
                   t_before: float, dt: float) -> list[tuple[int, int, float]]:
    """``(car, lap, time)`` for each lap line (1..``laps``) a car's race distance crossed from
    ``before`` to ``after`` during a tick that started at ``t_before`` and lasted ``dt``."""
    first = np.floor(before / length_m).astype(np.int64) + 1
    last = np.minimum(np.floor(after / length_m).astype(np.int64), laps)
    out = []
    for car in np.flatnonzero((last >= first) & (last >= 1)).tolist():
        for lap in range(max(1, int(first[car])), int(last[car]) + 1):
            span = max(float(after[car] - before[car]), 1e-12)
            frac = min(max((lap * length_m - float(before[car])) / span, 0.0), 1.0)
            out.append((car, lap, t_before + frac * dt))
    return out


def race_order(state: np.ndarray, distance_m: np.ndarray, finish_s: np.ndarray) -> list[int]:
    """The cars in race order (see the module docstring); ties keep the lower car number."""
    cars = np.arange(state.size)
    finished = cars[state == FINISHED]
    finished = finished[np.argsort(finish_s[finished], kind="stable")]
    rest = []
    for code in (RACING, DNF):
        group = cars[state == code]
        rest.extend(group[np.argsort(-distance_m[group], kind="stable")].tolist())
    return finished.tolist() + rest


class GapClock:
    """The leading distance over time (its running maximum, so it never goes back), to tell
    how many seconds behind the leader a car is."""

    def __init__(self, capacity: int = 1024) -> None:
        self._t = np.zeros(capacity)
        self._front = np.zeros(capacity)
        self._n = 0

    def record(self, t: float, leader_m: float) -> None:
        if self._n == self._t.size:
            self._t = np.concatenate([self._t, np.zeros(self._t.size)])
            self._front = np.concatenate([self._front, np.zeros(self._front.size)])
        front = max(leader_m, self._front[self._n - 1]) if self._n else leader_m
        self._t[self._n], self._front[self._n] = t, front
        self._n += 1

    def gaps(self, distance_m: np.ndarray, now: float) -> np.ndarray:
        """Seconds since the leader first reached each distance (0 for the leader; NaN behind
        where the leader started: not known yet)."""
        distance_m = np.asarray(distance_m, dtype=np.float64)
        if not self._n:
            return np.full(distance_m.shape, np.nan)
        at = np.searchsorted(self._front[: self._n], distance_m, side="left")
        at = np.minimum(at, self._n - 1)
        gaps = np.maximum(now - self._t[at], 0.0)
        return np.where(distance_m < self._front[0], np.nan, gaps)
