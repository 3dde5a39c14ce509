"""A race track as plain data: a closed centreline sampled every ~1 m and a constant width.

A track travels to the browser as JSON and is named by its digest (SHA-256 of the canonical JSON),
so a contribution can prove which exact track it was played on. Coordinates are quantized to
millimetres at construction: the JSON round trip is exact, so a track loaded from JSON simulates
bit-identically to the one that wrote it.

Driving direction is increasing centreline index; curvature is positive for left turns.

Grip. ``grip`` multiplies the car model's grip (``CarParams.grip_mps2``) on this track: a slippery
surface is a property of the track, so one simulator holds tracks of any grip. It goes into the
JSON (and so the digest) only when it is not 1.0: every track of full grip keeps its digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from crowdlearning.errors import TrackError

__all__ = ["TRACK_FORMAT", "Track", "wrap_angle"]

TRACK_FORMAT = "crowdlearning.track/1"
_MIN_POINTS = 32
_MAX_POINTS = 20_000
_MIN_WIDTH_M = 4.0
_MAX_WIDTH_M = 40.0
_SPACING_TOLERANCE = 0.05  # relative spread allowed between segment lengths
_EDGE_CLEARANCE_M = 2.0  # grass between two parts of a track whose edges come close [m]
_MIN_GRIP, _MAX_GRIP = 0.1, 2.0  # allowed multipliers of the car's grip


def wrap_angle(angle_rad: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles to [-pi, pi)."""
    return (np.asarray(angle_rad) + np.pi) % (2.0 * np.pi) - np.pi


@dataclass(frozen=True, eq=False)
class Track:
    """A closed circuit: centreline points (N, 2) [m], evenly spaced, and a width [m].

    Raises ``TrackError`` naming the offending value when the geometry is unusable: too few
    points, uneven spacing, a corner tighter than half the width, or two parts of the track
    overlapping.
    """

    name: str
    centreline_m: np.ndarray
    width_m: float
    seed: int | None = None
    grip: float = 1.0  # multiplies the car's grip on this track (a slippery surface < 1)

    def __post_init__(self) -> None:
        points = np.asarray(self.centreline_m, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2:
            raise TrackError(f"centreline must have shape (N, 2), got {points.shape}")
        if not _MIN_POINTS <= len(points) <= _MAX_POINTS:
            raise TrackError(
                f"centreline needs {_MIN_POINTS}..{_MAX_POINTS} points, got {len(points)}"
            )
        if not np.all(np.isfinite(points)):
            raise TrackError("centreline contains NaN or infinite coordinates")
        width = float(self.width_m)
        if not (np.isfinite(width) and _MIN_WIDTH_M <= width <= _MAX_WIDTH_M):
            raise TrackError(f"width_m must be in [{_MIN_WIDTH_M}, {_MAX_WIDTH_M}], got {width}")
        grip = float(self.grip)
        if not (np.isfinite(grip) and _MIN_GRIP <= grip <= _MAX_GRIP):
            raise TrackError(f"grip must be in [{_MIN_GRIP}, {_MAX_GRIP}], got {grip}")
        object.__setattr__(self, "grip", round(grip, 6))
        points = np.round(points * 1000.0) / 1000.0
        points.setflags(write=False)
        object.__setattr__(self, "centreline_m", points)
        object.__setattr__(self, "width_m", round(width, 3))
        self._check_spacing()

    # ------------------------------------------------------------------ derived geometry
    @property
    def num_points(self) -> int:
        return len(self.centreline_m)

    @property
    def half_width_m(self) -> float:
        return self.width_m / 2.0

    @cached_property
    def segment_lengths_m(self) -> np.ndarray:
        from crowdlearning.sim import portable_math  # numba, loaded on first use

        delta = np.roll(self.centreline_m, -1, axis=0) - self.centreline_m
        return portable_math.hypot(delta[:, 0], delta[:, 1])

    @cached_property
    def length_m(self) -> float:
        return float(self.segment_lengths_m.sum())

    @cached_property
    def spacing_m(self) -> float:
        """Mean distance between consecutive centreline points [m]."""
        return self.length_m / self.num_points

    @cached_property
    def s_m(self) -> np.ndarray:
        """Arc length at each centreline point [m], starting at 0."""
        return np.concatenate([[0.0], np.cumsum(self.segment_lengths_m)[:-1]])

    @cached_property
    def heading_rad(self) -> np.ndarray:
        """Direction of travel at each point (central difference) [rad]."""
        from crowdlearning.sim import portable_math  # numba, loaded on first use

        ahead = np.roll(self.centreline_m, -1, axis=0) - np.roll(self.centreline_m, 1, axis=0)
        return portable_math.arctan2(ahead[:, 1], ahead[:, 0])

    @cached_property
    def tangent(self) -> np.ndarray:
        from crowdlearning.sim import portable_math  # numba, loaded on first use

        return portable_math.cos_sin(self.heading_rad)

    @cached_property
    def normal_left(self) -> np.ndarray:
        """Unit normal pointing to the left of the direction of travel."""
        t = self.tangent
        return np.stack([-t[:, 1], t[:, 0]], axis=1)

    @cached_property
    def curvature_1pm(self) -> np.ndarray:
        """Signed curvature at each point [1/m], positive turning left."""
        from crowdlearning.sim import portable_math  # numba, loaded on first use

        delta = np.roll(self.centreline_m, -1, axis=0) - self.centreline_m
        seg_heading = portable_math.arctan2(delta[:, 1], delta[:, 0])
        turn = wrap_angle(seg_heading - np.roll(seg_heading, 1))
        mean_len = 0.5 * (self.segment_lengths_m + np.roll(self.segment_lengths_m, 1))
        return np.asarray(turn / mean_len, dtype=np.float64)

    @cached_property
    def left_edge_m(self) -> np.ndarray:
        return self.centreline_m + self.half_width_m * self.normal_left

    @cached_property
    def right_edge_m(self) -> np.ndarray:
        return self.centreline_m - self.half_width_m * self.normal_left

    # ------------------------------------------------------------------ validation
    def _check_spacing(self) -> None:
        lengths = self.segment_lengths_m
        mean = lengths.mean()
        if mean <= 0 or np.any(np.abs(lengths - mean) > _SPACING_TOLERANCE * mean):
            raise TrackError(
                "centreline points must be evenly spaced (within 5%): segment lengths range "
                f"{lengths.min():.3f}..{lengths.max():.3f} m; resample with Track.from_loop"
            )

    def check_geometry(self) -> None:
        """Raise ``TrackError`` if a corner is tighter than the track allows or parts overlap."""
        max_curv = float(np.abs(self.curvature_1pm).max())
        limit = 1.0 / (self.half_width_m + 1.0)
        if max_curv > limit:
            raise TrackError(
                f"track {self.name!r}: tightest corner radius {1 / max_curv:.1f} m is below "
                f"{1 / limit:.1f} m (half width + 1 m); the inner edge would fold"
            )
        gap = self.min_gap_between_parts_m()
        needed = self.width_m + _EDGE_CLEARANCE_M
        if gap < needed:
            raise TrackError(
                f"track {self.name!r}: two parts of the track come {gap:.1f} m close "
                f"(centre to centre); at least {needed:.1f} m needed so they do not overlap"
            )

    def min_gap_between_parts_m(self) -> float:
        """Smallest centre-to-centre distance between points far apart along the track [m]."""
        pts = self.centreline_m
        n = len(pts)
        # points closer than this along the track belong to the same part of it
        window = int(np.ceil((np.pi * (self.width_m + _EDGE_CLEARANCE_M)) / self.spacing_m))
        idx = np.arange(n)
        best = np.inf
        for start in range(0, n, 512):  # chunked O(N^2): 1k points take a few ms
            block = pts[start : start + 512]
            d = np.hypot(block[:, None, 0] - pts[None, :, 0], block[:, None, 1] - pts[None, :, 1])
            sep = np.abs(idx[start : start + 512, None] - idx[None, :])
            sep = np.minimum(sep, n - sep)
            d[sep <= window] = np.inf
            best = min(best, float(d.min()))
        return best

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_loop(
        cls, points_m: np.ndarray, *, width_m: float, name: str, seed: int | None = None,
        spacing_m: float = 1.0, grip: float = 1.0,
    ) -> Track:
        """Build a track from any closed polyline, resampled to even spacing (~``spacing_m``)."""
        pts = np.asarray(points_m, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
            raise TrackError(f"a loop needs at least 3 points of shape (N, 2), got {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise TrackError("loop contains NaN or infinite coordinates")
        # at sharp corners chords are shorter than the arc: a few passes even them out
        for _ in range(4):
            pts = _resample_loop(pts, spacing_m)
        return cls(name=name, centreline_m=pts, width_m=width_m, seed=seed, grip=grip)

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-able form: coordinates as integer millimetres; ``grip`` only when it is
        not 1.0 (so tracks of full grip keep the digest they had before grip existed)."""
        mm = np.round(self.centreline_m * 1000.0).astype(np.int64)
        out: dict[str, Any] = {
            "format": TRACK_FORMAT,
            "name": self.name,
            "seed": self.seed,
            "width_m": self.width_m,
            "centreline_mm": mm.tolist(),
        }
        if self.grip != 1.0:
            out["grip"] = self.grip
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Track:
        if not isinstance(data, dict) or data.get("format") != TRACK_FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise TrackError(f"not a track: expected format {TRACK_FORMAT!r}, got {got!r}")
        try:
            mm = np.asarray(data["centreline_mm"], dtype=np.int64)
            track = cls(
                name=str(data["name"]),
                centreline_m=mm / 1000.0,
                width_m=float(data["width_m"]),
                seed=None if data.get("seed") is None else int(data["seed"]),
                grip=float(data.get("grip", 1.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, TrackError):
                raise
            raise TrackError(f"malformed track JSON: {exc}") from exc
        track.check_geometry()
        return track

    @classmethod
    def from_json(cls, text: str | bytes) -> Track:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrackError(f"track JSON does not parse: {exc}") from exc
        return cls.from_dict(data)

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON: the track's identity."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Track) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)


def _resample_loop(pts: np.ndarray, spacing_m: float) -> np.ndarray:
    """Points at equal distances along the closed polyline through ``pts``."""
    closed = np.vstack([pts, pts[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = s[-1]
    if not np.isfinite(total) or total <= 0:
        raise TrackError("loop has zero or non-finite length")
    n = max(_MIN_POINTS, round(total / spacing_m))
    s_new = np.arange(n) * (total / n)
    return np.stack([np.interp(s_new, s, closed[:, 0]), np.interp(s_new, s, closed[:, 1])], axis=1)
