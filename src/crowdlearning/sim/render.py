"""Pictures: a track with one or more car paths, written to PNG (matplotlib, no screen needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from crowdlearning.sim.track import Track

__all__ = ["draw_track", "render_rgb", "render_track_png"]


def draw_track(ax: plt.Axes, track: Track, *, title: str | None = None) -> None:
    """Draw asphalt, edges, start line and direction of travel on ``ax``."""
    left, right = track.left_edge_m, track.right_edge_m
    outer, inner = (left, right) if _area(left) > _area(right) else (right, left)
    ax.fill(outer[:, 0], outer[:, 1], color="#d9d9d9", zorder=0, linewidth=0)
    ax.fill(inner[:, 0], inner[:, 1], color="white", zorder=0, linewidth=0)
    for edge in (left, right):
        closed = np.vstack([edge, edge[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color="#444444", linewidth=0.8, zorder=1)
    start = np.stack([left[0], right[0]])
    ax.plot(start[:, 0], start[:, 1], color="black", linewidth=2.5, zorder=2)
    i = min(15, track.num_points - 1)
    tip, base = track.centreline_m[i], track.centreline_m[0]
    ax.annotate("", xy=tip, xytext=base, arrowprops={"arrowstyle": "->", "color": "black"})
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.set_title(title or f"{track.name}  ({track.length_m:.0f} m, {track.width_m:.1f} m wide)")


def render_track_png(
    track: Track,
    path: str | Path,
    *,
    paths_m: Mapping[str, np.ndarray] | Sequence[np.ndarray] = (),
    title: str | None = None,
    size_in: float = 8.0,
) -> Path:
    """Write ``track`` with labelled car paths (each (T, 2) [m]) to a PNG; return its path."""
    items = paths_m.items() if isinstance(paths_m, Mapping) else enumerate(paths_m)
    fig, ax = plt.subplots(figsize=(size_in, size_in))
    try:
        draw_track(ax, track, title=title)
        for label, xy in items:
            xy = np.asarray(xy)
            ax.plot(xy[:, 0], xy[:, 1], linewidth=1.2, label=str(label), zorder=3)
            ax.plot(xy[-1, 0], xy[-1, 1], marker="o", markersize=4, zorder=4, color="black")
        if len(items):
            ax.legend(loc="upper right", fontsize=8)
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out


def _area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0


def render_rgb(track: Track, path_m: np.ndarray, *, size_px: int = 480) -> np.ndarray:
    """The track and one car's path as an (H, W, 3) uint8 image (gymnasium ``rgb_array``)."""
    dpi = 80
    fig, ax = plt.subplots(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    try:
        draw_track(ax, track)
        if len(path_m):
            ax.plot(path_m[:, 0], path_m[:, 1], color="tab:red", linewidth=1.2)
            ax.plot(path_m[-1, 0], path_m[-1, 1], marker="o", color="black", markersize=4)
        fig.canvas.draw()
        return np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
    finally:
        plt.close(fig)
