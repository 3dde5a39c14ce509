"""Simulator commands: ``crowdlearning drive`` and ``crowdlearning track``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crowdlearning.sim.env import resolve_track
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.render import render_track_png
from crowdlearning.sim.track import Track

__all__ = ["drive_main", "run_main", "track_main"]


def _parse_track(text: str) -> Track:
    return resolve_track(int(text) if text.lstrip("-").isdigit() else text)


def drive_expert(
    track: Track, laps: int = 1, max_steps: int = 20 * 60 * 10
) -> tuple[RaceSim, np.ndarray]:
    """Let the scripted expert drive ``laps`` laps (or until it leaves the track): sim, path."""
    sim = RaceSim([track], 1, max_steps=max_steps)
    sim.reset_cars(np.array([0]))
    expert = ExpertDriver()
    path = [sim.pose[0, :2].copy()]
    while sim.alive[0] and sim.laps[0] < laps:
        sim.step(expert.act(sim))
        path.append(sim.pose[0, :2].copy())
    return sim, np.asarray(path)


def drive_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="crowdlearning drive",
                                     description="Drive the scripted expert and write a PNG.")
    parser.add_argument("--track", default="7", help="generator seed or named track")
    parser.add_argument("--laps", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("var/drive.png"))
    args = parser.parse_args(argv)
    track = _parse_track(args.track)
    sim, path = drive_expert(track, laps=args.laps)
    best = sim.best_lap_time_s[0]
    label = f"expert: {sim.laps[0]} lap(s), best {best:.1f} s"
    out = render_track_png(track, args.out, paths_m={label: path})
    print(f"track {track.name} ({track.length_m:.0f} m, digest {track.digest[:12]}): {label}")
    print(f"wrote {out}")
    return 0 if sim.laps[0] >= args.laps else 1


def track_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="crowdlearning track",
                                     description="Print a track as canonical JSON.")
    parser.add_argument("track", help="generator seed or named track")
    args = parser.parse_args(argv)
    sys.stdout.write(_parse_track(args.track).to_json() + "\n")
    return 0


def run_main(argv: Sequence[str]) -> int:
    """The main job until the web platform exists: the expert drives a generated track."""
    return drive_main(list(argv) or ["--track", "7", "--laps", "1", "--out", "var/drive.png"])
