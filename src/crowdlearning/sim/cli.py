"""Simulator commands: ``crowdlearning drive``, ``run`` and ``track``.

The simulator (numba, scipy, matplotlib) loads only once a command runs, so ``--help`` is quick;
an unknown track, a negative seed or zero laps is a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crowdlearning.cli_args import at_least, usage_error

if TYPE_CHECKING:
    import numpy as np

    from crowdlearning.sim.race_sim import RaceSim
    from crowdlearning.sim.track import Track

__all__ = ["drive_expert", "drive_main", "run_main", "track_main"]

TRACK_HELP = ("a generator seed (a whole number >= 0: every seed is a different track) or a "
              "named track: chicane-park, hairpin-valley, kidney, oval, sprint-ring")


def _parse_track(text: str) -> Track:
    """The track a seed or name denotes; ``TrackError`` (a sentence) when there is none."""
    from crowdlearning.sim.env import resolve_track

    return resolve_track(int(text) if text.lstrip("-").isdigit() else text)


def drive_expert(
    track: Track, laps: int = 1, max_steps: int = 20 * 60 * 10
) -> tuple[RaceSim, np.ndarray]:
    """Let the scripted expert drive ``laps`` laps (or until it leaves the track): sim, path."""
    import numpy as np

    from crowdlearning.sim.expert import ExpertDriver
    from crowdlearning.sim.race_sim import RaceSim

    sim = RaceSim([track], 1, max_steps=max_steps)
    sim.reset_cars(np.array([0]))
    expert = ExpertDriver()
    path = [sim.pose[0, :2].copy()]
    while sim.alive[0] and sim.laps[0] < laps:
        sim.step(expert.act(sim))
        path.append(sim.pose[0, :2].copy())
    return sim, np.asarray(path)


def _drive_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="The scripted expert drives a track; writes a PNG of its path.")
    parser.add_argument("--track", default="7", help=f"{TRACK_HELP} (default %(default)s)")
    parser.add_argument("--laps", type=at_least(1), default=1,
                        help="laps to drive, at least 1 (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("var/drive.png"),
                        help="where to write the PNG (default %(default)s)")
    return parser


def drive_main(argv: Sequence[str], prog: str = "crowdlearning drive") -> int:
    """``crowdlearning drive``: 0 when the expert drove every lap asked, 1 when it left the
    track first, 2 for a mistake in the arguments."""
    from crowdlearning.errors import TrackError

    args = _drive_parser(prog).parse_args(list(argv))
    try:
        track = _parse_track(args.track)
    except TrackError as exc:
        return usage_error(prog, str(exc))
    sim, path = drive_expert(track, laps=args.laps)
    best = float(sim.best_lap_time_s[0])
    laps = int(sim.laps[0])
    label = (f"expert: {laps} lap(s), best {best:.1f} s" if laps and math.isfinite(best)
             else "expert: left the track before finishing a lap")
    from crowdlearning.sim.render import render_track_png

    try:
        out = render_track_png(track, args.out, paths_m={label: path})
    except OSError as exc:
        return usage_error(prog, f"cannot write {args.out}: {exc.strerror or exc}")
    print(f"track {track.name} ({track.length_m:.0f} m, digest {track.digest[:12]}): {label}")
    print(f"wrote {out}")
    return 0 if laps >= args.laps else 1


def track_main(argv: Sequence[str]) -> int:
    """``crowdlearning track``: a track's canonical JSON on stdout."""
    from crowdlearning.errors import TrackError

    prog = "crowdlearning track"
    parser = argparse.ArgumentParser(prog=prog, description="Print a track as canonical JSON.")
    parser.add_argument("track", help=TRACK_HELP)
    args = parser.parse_args(list(argv))
    try:
        track = _parse_track(args.track)
    except TrackError as exc:
        return usage_error(prog, str(exc))
    sys.stdout.write(track.to_json() + "\n")
    return 0


def run_main(argv: Sequence[str]) -> int:
    """``crowdlearning run``: ``drive`` with its defaults (track 7, one lap, var/drive.png)."""
    return drive_main(list(argv), prog="crowdlearning run")
