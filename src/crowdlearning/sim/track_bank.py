"""Many tracks packed into flat arrays for the simulation kernels.

Each track contributes its centreline samples (position, tangent, left normal, curvature, arc
length) at ``start[t] : start[t] + count[t]``, and its two edges as line segments indexed by a
uniform grid (cell size ``cell_size_m``) so a range ray tests only the segments in the cells it
crosses, in order, and stops at the first hit. Grid cells of track ``t`` live at
``cell_base[t] + iy * nx + ix`` in the CSR arrays ``cell_ptr`` / ``cell_items``. ``grip[t]`` is
track ``t``'s grip multiplier (``Track.grip``), read by the physics kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crowdlearning.errors import SimulationError
from crowdlearning.sim.track import Track

__all__ = ["TrackBank"]

_CELL_SIZE_M = 4.0


@dataclass(frozen=True, eq=False)
class TrackBank:
    """Immutable packed geometry of ``tracks``; build with ``TrackBank.build``."""

    tracks: tuple[Track, ...]
    centre: np.ndarray  # (P, 2) [m]
    tangent: np.ndarray  # (P, 2)
    normal: np.ndarray  # (P, 2) left normal
    curvature: np.ndarray  # (P,) [1/m]
    s: np.ndarray  # (P,) arc length [m]
    start: np.ndarray  # (T,) int64
    count: np.ndarray  # (T,) int64
    length: np.ndarray  # (T,) [m]
    half_width: np.ndarray  # (T,) [m]
    spacing: np.ndarray  # (T,) [m]
    grip: np.ndarray  # (T,) multiplier of the car's grip (``Track.grip``)
    segments: np.ndarray  # (S, 4) x0, y0, x1, y1 [m]
    grid_origin: np.ndarray  # (T, 2) [m]
    grid_dims: np.ndarray  # (T, 2) int64 nx, ny
    cell_base: np.ndarray  # (T,) int64
    cell_ptr: np.ndarray  # (C + 1,) int64
    cell_items: np.ndarray  # (K,) int64 segment indices
    cell_size_m: float

    @property
    def num_tracks(self) -> int:
        return len(self.tracks)

    @classmethod
    def build(cls, tracks: Sequence[Track], cell_size_m: float = _CELL_SIZE_M) -> TrackBank:
        if not tracks:
            raise SimulationError("a TrackBank needs at least one track")
        tracks = tuple(tracks)
        count = np.array([t.num_points for t in tracks], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
        grids = [_edge_grid(t, cell_size_m) for t in tracks]
        seg_offsets = np.concatenate([[0], np.cumsum([len(g[0]) for g in grids])[:-1]])
        cell_counts = [int(g[2][0] * g[2][1]) for g in grids]
        cell_base = np.concatenate([[0], np.cumsum(cell_counts)[:-1]]).astype(np.int64)
        ptr_parts, item_parts, total = [np.zeros(1, dtype=np.int64)], [], 0
        for (_, _, _, ptr, items), offset in zip(grids, seg_offsets, strict=True):
            ptr_parts.append(ptr[1:] + total)
            item_parts.append(items + offset)
            total += len(items)
        return cls(
            tracks=tracks,
            centre=_cat([t.centreline_m for t in tracks]),
            tangent=_cat([t.tangent for t in tracks]),
            normal=_cat([t.normal_left for t in tracks]),
            curvature=_cat([t.curvature_1pm for t in tracks]),
            s=_cat([t.s_m for t in tracks]),
            start=start,
            count=count,
            length=np.array([t.length_m for t in tracks]),
            half_width=np.array([t.half_width_m for t in tracks]),
            spacing=np.array([t.spacing_m for t in tracks]),
            grip=np.array([t.grip for t in tracks], dtype=np.float64),
            segments=_cat([g[0] for g in grids]),
            grid_origin=np.array([g[1] for g in grids], dtype=np.float64),
            grid_dims=np.array([g[2] for g in grids], dtype=np.int64),
            cell_base=cell_base,
            cell_ptr=np.concatenate(ptr_parts).astype(np.int64),
            cell_items=np.concatenate(item_parts).astype(np.int64),
            cell_size_m=float(cell_size_m),
        )


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float64)


def _edge_segments(track: Track) -> np.ndarray:
    out = []
    for edge in (track.left_edge_m, track.right_edge_m):
        out.append(np.hstack([edge, np.roll(edge, -1, axis=0)]))
    return np.vstack(out)


def _edge_grid(track: Track, cell: float):
    """Segments of both edges, and a CSR map from grid cell to the segments touching it."""
    segs = _edge_segments(track)
    lo = np.minimum(segs[:, :2], segs[:, 2:])
    hi = np.maximum(segs[:, :2], segs[:, 2:])
    origin = lo.min(axis=0) - cell
    dims = (np.floor((hi.max(axis=0) - origin) / cell).astype(np.int64) + 2)
    c_lo = np.floor((lo - origin) / cell).astype(np.int64)
    c_hi = np.floor((hi - origin) / cell).astype(np.int64)
    span = int((c_hi - c_lo).max()) + 1
    cells, items = [], []
    for dx in range(span):
        for dy in range(span):
            cx, cy = c_lo[:, 0] + dx, c_lo[:, 1] + dy
            keep = (cx <= c_hi[:, 0]) & (cy <= c_hi[:, 1])
            cells.append(cy[keep] * dims[0] + cx[keep])
            items.append(np.flatnonzero(keep))
    cells_arr, items_arr = np.concatenate(cells), np.concatenate(items)
    order = np.lexsort((items_arr, cells_arr))
    cells_arr, items_arr = cells_arr[order], items_arr[order]
    ptr = np.searchsorted(cells_arr, np.arange(int(dims[0] * dims[1]) + 1)).astype(np.int64)
    return segs, origin, dims, ptr, items_arr.astype(np.int64)
