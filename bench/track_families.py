"""Do the track families really rise in difficulty? Three drivers on N tracks of each family.

Per family (``crowdlearning.sim.families.FAMILIES``, easiest first), one lap from a standing start
on each of N seeded tracks, on the family's car model (its grip):

- the scripted expert (``sim/expert.py``): it never errs, so difficulty shows as pace (mean lap
  speed = track length / lap time) and lap time;
- the late expert (``sim/difficulty.py`` ``LateDriver``): the expert at the limit of grip and
  brakes, reacting 250 ms late; difficulty shows as exits and the share of the lap driven;
- the initial model (``learning/bootstrap.py``, stall-proof), unless ``--no-model``.

Also writes one example track per family to ``docs/img/track-families.png``.

Run: ``.venv/bin/python bench/track_families.py [--seeds 40] [--no-model]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tqdm import tqdm

from crowdlearning.sim.difficulty import Driver, DriveScore, LateDriver, drive_family
from crowdlearning.sim.families import FAMILIES, TrackFamily, family_track
from crowdlearning.sim.render import draw_track
from crowdlearning.sim.track_gen import track_features

SEED_BASE = 300_000  # play seeds no player is sent to by default (the server serves 0..n-1)
PLOT_SEED = 3
PLOT_PATH = Path(__file__).resolve().parents[1] / "docs" / "img" / "track-families.png"


def _model_driver() -> Driver:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the machine is shared
        os.environ.setdefault(var, "1")
    import torch

    from crowdlearning.learning.bootstrap import train_initial_model
    from crowdlearning.policy.network import Policy

    torch.set_num_threads(1)
    policy = Policy(train_initial_model(0)[0])
    return lambda sim: policy.act(sim.observe())


def _row(driver: str, score: DriveScore) -> str:
    return (f"{score.family:13s} {driver:13s} {score.lap_completion:6.0%} {score.exit_rate:6.0%} "
            f"{score.mean_progress:6.0%} {score.mean_lap_time_s:8.1f} {score.mean_speed_mps:7.1f}")


def plot_families(path: Path, seed: int = PLOT_SEED) -> Path:
    """One example track per family, side by side, on one scale."""
    fig, axes = plt.subplots(1, len(FAMILIES), figsize=(4.2 * len(FAMILIES), 4.6))
    tracks = [family_track(f, seed) for f in FAMILIES]
    span = max(float((t.centreline_m.max(0) - t.centreline_m.min(0)).max()) for t in tracks)
    for ax, fam, track in zip(axes, FAMILIES, tracks, strict=True):
        feats = track_features(track)
        draw_track(ax, track, title=(
            f"{fam.rank}. {fam.name}  (seed {seed})\n{track.length_m:.0f} m, "
            f"{track.width_m:.1f} m wide, tightest r {feats['tightest_radius_m']:.1f} m"
            f"\ngrip x{fam.grip_factor:g}"))
        mid = (track.centreline_m.max(0) + track.centreline_m.min(0)) / 2
        ax.set_xlim(mid[0] - span / 2 - 15, mid[0] + span / 2 + 15)
        ax.set_ylim(mid[1] - span / 2 - 15, mid[1] + span / 2 + 15)
    fig.suptitle("Track families, easiest to hardest (same scale)")
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.94))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="tracks per family")
    parser.add_argument("--no-model", action="store_true", help="skip the initial model")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} CPUs")
    start = time.perf_counter()
    drivers: list[tuple[str, Driver | None]] = [("expert", None), ("late-expert", LateDriver())]
    if not args.no_model:
        print("training the initial model (about 20 s)...")
        drivers.append(("initial-model", _model_driver()))
    seeds = range(SEED_BASE, SEED_BASE + args.seeds)
    results: dict[tuple[str, str], DriveScore] = {}
    jobs: list[tuple[TrackFamily, str, Driver | None]] = [
        (fam, name, drv) for fam in FAMILIES for name, drv in drivers]
    for fam, name, drv in tqdm(jobs, desc="family x driver"):
        results[fam.name, name] = drive_family(fam, seeds, drv)
    print(f"\n{args.seeds} tracks per family (seeds {seeds.start}..{seeds.stop - 1}), one lap "
          "from a standing start; lap time and speed over completed laps")
    print(f"{'family':13s} {'driver':13s} {'laps':>6s} {'exits':>6s} {'driven':>6s} "
          f"{'lap [s]':>8s} {'v [m/s]':>7s}")
    for name, _ in drivers:
        for fam in FAMILIES:
            print(_row(name, results[fam.name, name]))
        print()
    if not args.no_plot:
        print(f"wrote {plot_families(PLOT_PATH)}")
    print(f"took {time.perf_counter() - start:.0f} s; load average at end: "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
