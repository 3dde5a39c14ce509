"""Closed circuits generated from a seed, and a few hand-named tracks.

Generation: control points around a centre at jittered angles and random radii; some tracks get a
*hairpin* (one control point pulled deep inward or pushed far out) and some a *chicane* (two extra
points offset to alternate sides); a periodic cubic spline (C2, so curvature is continuous) runs
through them and is resampled every ~1 m. A layout whose tightest corner is below the track's
limit is scaled up (shape kept, corners opened) up to a bound; a layout whose parts overlap is
redrawn. Every draw comes from one ``numpy.random.Generator`` seeded with the track seed, so a seed
names one track on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from crowdlearning.errors import TrackError
from crowdlearning.sim.track import Track, wrap_angle

__all__ = [
    "NAMED_TRACKS",
    "TrackGenParams",
    "generate_track",
    "named_track",
    "track_features",
]


@dataclass(frozen=True)
class TrackGenParams:
    """Knobs of the generator; ranges are (low, high)."""

    control_points: tuple[int, int] = (8, 13)
    radius_m: tuple[float, float] = (60.0, 140.0)
    width_m: tuple[float, float] = (10.0, 14.0)
    hairpin_probability: float = 0.5
    chicane_probability: float = 0.6
    chicane_offset_m: tuple[float, float] = (7.0, 12.0)
    spacing_m: float = 1.0  # centreline sample spacing [m]
    corner_margin_m: float = 2.0  # tightest corner radius >= half width + margin [m]
    max_scale: float = 2.5  # how far a layout may be enlarged to open its corners
    max_attempts: int = 40


def generate_track(seed: int, params: TrackGenParams | None = None) -> Track:
    """The track named by ``seed``: same seed, same track, in any process."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise TrackError(f"track seed must be a non-negative integer, got {seed!r}")
    params = params or TrackGenParams()
    rng = np.random.default_rng([int(seed), 0x7EAC])
    last_error: TrackError | None = None
    for _ in range(params.max_attempts):
        width = float(rng.uniform(*params.width_m))
        loop = _control_loop(rng, params, width)
        try:
            return _build(loop, width, params, name=f"gen-{seed}", seed=int(seed))
        except TrackError as exc:
            last_error = exc
    raise TrackError(f"no valid track for seed {seed} in {params.max_attempts} attempts: "
                     f"{last_error}")


def _control_loop(
    rng: np.random.Generator, params: TrackGenParams, width_m: float
) -> np.ndarray:
    k = int(rng.integers(params.control_points[0], params.control_points[1] + 1))
    base = np.arange(k) * (2 * np.pi / k)
    angles = base + rng.uniform(-0.3, 0.3, size=k) * (2 * np.pi / k)
    radii = rng.uniform(*params.radius_m, size=k)
    points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    if rng.random() < params.hairpin_probability:
        points = _insert_hairpin(points, angles, radii, width_m, rng)
    if rng.random() < params.chicane_probability:
        points = _insert_chicane(points, rng, params)
    return points


def _insert_hairpin(
    points: np.ndarray, angles: np.ndarray, radii: np.ndarray, width_m: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Replace one control point by a tongue: out along a spoke, a U-turn, and back.

    The two legs run ``gap`` apart, so the U-turn's radius is about ``gap / 2``; the tongue points
    outward or (shorter, so it cannot reach the far side) inward.
    """
    j = int(rng.integers(len(points)))
    spoke = np.array([np.cos(angles[j]), np.sin(angles[j])])
    side = np.array([-spoke[1], spoke[0]])  # direction of travel around the loop
    gap = width_m + rng.uniform(8.0, 14.0)
    outward = rng.random() < 0.5
    length = rng.uniform(40.0, 80.0) if outward else rng.uniform(0.3, 0.5) * radii[j]
    direction = spoke if outward else -spoke
    base = points[j]
    half = gap / 2
    reach = max(length - half, half)
    tongue = [
        base - side * half,
        base - side * half + direction * reach * 0.5,
        base - side * half + direction * reach,
        base + direction * (reach + half),
        base + side * half + direction * reach,
        base + side * half + direction * reach * 0.5,
        base + side * half,
    ]
    return np.concatenate([points[:j], tongue, points[j + 1 :]])


def _insert_chicane(
    points: np.ndarray, rng: np.random.Generator, params: TrackGenParams
) -> np.ndarray:
    """Replace the straight between two control points by an S: two points offset left, right."""
    j = int(rng.integers(len(points)))
    a, b = points[j], points[(j + 1) % len(points)]
    along = b - a
    normal = np.array([-along[1], along[0]]) / max(np.hypot(*along), 1e-9)
    offset = rng.uniform(*params.chicane_offset_m)
    p1 = a + along / 3 + normal * offset
    p2 = a + 2 * along / 3 - normal * offset
    return np.insert(points, j + 1, [p1, p2], axis=0)


def _build(loop: np.ndarray, width_m: float, params: TrackGenParams, *, name: str,
           seed: int | None) -> Track:
    dense = _spline(loop)
    track = Track.from_loop(dense, width_m=width_m, name=name, seed=seed,
                            spacing_m=params.spacing_m)
    limit = 1.0 / (track.half_width_m + params.corner_margin_m)
    tightest = float(np.abs(track.curvature_1pm).max())
    if tightest > limit:
        scale = tightest / limit * 1.02
        if scale > params.max_scale:
            raise TrackError(f"corner radius {1 / tightest:.1f} m needs scale {scale:.2f}")
        track = Track.from_loop(_spline(loop * scale), width_m=width_m, name=name, seed=seed,
                                spacing_m=params.spacing_m)
    track.check_geometry()
    return track


def _spline(loop: np.ndarray, samples_per_span: int = 64) -> np.ndarray:
    """Periodic cubic spline through the control points, parameterized by chord length."""
    closed = np.vstack([loop, loop[:1]])
    chord = np.hypot(*np.diff(closed, axis=0).T)
    if np.any(chord < 1e-6):
        raise TrackError("two consecutive control points coincide")
    t = np.concatenate([[0.0], np.cumsum(chord)])
    spline = CubicSpline(t, closed, bc_type="periodic")
    fine = np.linspace(0.0, t[-1], samples_per_span * len(loop), endpoint=False)
    return spline(fine)


# ---------------------------------------------------------------------------- named tracks
# Hand-placed control points [m] and widths [m]; each goes through the same spline as the
# generated ones, so they obey the same rules.
NAMED_TRACKS: dict[str, tuple[float, list[tuple[float, float]]]] = {
    "oval": (12.0, [(-120, -45), (0, -50), (120, -45), (160, 0), (120, 45), (0, 50),
                    (-120, 45), (-160, 0)]),
    "kidney": (12.0, [(-110, -60), (0, -80), (110, -60), (150, 10), (90, 70), (30, 30),
                      (-30, 30), (-90, 70), (-150, 10)]),
    "hairpin-valley": (11.0, [(-140, -60), (0, -70), (140, -60), (170, 20), (110, 80),
                              (40, 70), (20, -10), (-5, -12), (-25, 70), (-110, 80),
                              (-170, 20)]),
    "chicane-park": (12.0, [(-150, -50), (-60, -60), (-30, -45), (0, -65), (30, -50),
                            (150, -55), (170, 30), (60, 70), (-60, 65), (-170, 25)]),
    "sprint-ring": (10.0, [(-90, -90), (40, -110), (130, -40), (100, 40), (140, 110),
                           (30, 130), (-40, 60), (-120, 90), (-150, 0)]),
}


def named_track(name: str) -> Track:
    """One of ``NAMED_TRACKS`` by name."""
    if name not in NAMED_TRACKS:
        raise TrackError(f"unknown track {name!r}; named tracks: {sorted(NAMED_TRACKS)}")
    width, points = NAMED_TRACKS[name]
    return _build(np.asarray(points, dtype=np.float64), width, TrackGenParams(), name=name,
                  seed=None)


# ---------------------------------------------------------------------------- features
def track_features(track: Track) -> dict[str, float | bool]:
    """What kind of corners a track has: tightest radius, a hairpin, a chicane."""
    curv = track.curvature_1pm
    ds = track.spacing_m
    n = track.num_points
    heading_change = _windowed_sum(curv * ds, int(60.0 / ds))  # turn within 60 m [rad]
    hairpin = bool(np.any(np.abs(heading_change) >= np.deg2rad(150.0)))
    strong = np.where(np.abs(curv) > 1.0 / 60.0, np.sign(curv), 0.0)
    chicane = False
    window = int(40.0 / ds)
    left = np.flatnonzero(strong > 0)
    right = np.flatnonzero(strong < 0)
    if len(left) and len(right):
        gaps = np.abs(left[:, None] - right[None, :])
        gaps = np.minimum(gaps, n - gaps)
        chicane = bool(gaps.min() <= window)
    return {
        "length_m": track.length_m,
        "tightest_radius_m": float(1.0 / max(np.abs(curv).max(), 1e-9)),
        "total_turn_rad": float(np.abs(wrap_angle(np.sum(curv * ds)))),
        "hairpin": hairpin,
        "chicane": chicane,
    }


def _windowed_sum(values: np.ndarray, window: int) -> np.ndarray:
    padded = np.concatenate([values, values[:window]])
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    return csum[window : window + len(values)] - csum[: len(values)]
