"""Do missions meet the failures they aim at? Standing starts against the champion's approaches.

The simulated market's mission plan (``crowd.simulation.mission_starts``, as the game's board
plans it) for ``--players`` players, made twice from the same generator: once with every mission
started 3 s before its segment at 8 m/s on the centreline (``approach=False``, the default), once
with the missions aimed at failed segments started on the champion's own approach to them
(``learning.routing.meet_failures``) and, with ``--passing``, every other mission on its own
driving. The champion then drives each mission's start by itself for ``--ticks`` ticks; printed
per plan: how many missions moved, and how many met a failure (left the track or stalled), with
their mean start speed. Issue 11, tenth session: ``docs/verdict.md``, "Missions that meet the
failure".

    .venv/bin/python bench/mission_starts.py                      # the initial model, easy
    .venv/bin/python bench/mission_starts.py --registry RUN/models --version 8 \\
        --families easy tight fast-hairpin technical low-grip     # a market run's champion
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from crowdlearning.crowd.simulation import mission_starts  # noqa: E402
from crowdlearning.learning.bootstrap import train_initial_model  # noqa: E402
from crowdlearning.learning.registry import ModelRegistry  # noqa: E402
from crowdlearning.learning.uncertainty import fails_from  # noqa: E402
from crowdlearning.policy.network import Policy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, help="a model registry (a demo run's models/)")
    parser.add_argument("--version", type=int, default=0, help="the champion version to load")
    parser.add_argument("--families", nargs="+", default=["easy"],
                        help="the unlocked families, the frontier last")
    parser.add_argument("--players", type=int, default=40)
    parser.add_argument("--ticks", type=int, default=600, help="each drive [ticks, 20 a second]")
    parser.add_argument("--passing", action="store_true",
                        help="also start every other mission on the champion's own driving")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = (ModelRegistry(args.registry).load(args.version)[0] if args.registry
           else train_initial_model(0)[0])
    policy = Policy(net)
    print(f"champion v{args.version if args.registry else 0} ({args.registry or 'initial'}), "
          f"families {', '.join(args.families)}; load average {os.getloadavg()[0]:.2f}")
    rows = []
    for approach in (False, True):
        began = time.perf_counter()
        plan = mission_starts(policy, args.players, np.random.default_rng(args.seed),
                              families=args.families, approach=approach,
                              passing=approach and args.passing)
        starts = [s for s in plan if s is not None]
        failed = fails_from(policy, [s.track for s in starts], range(len(starts)),
                            [s.start_s_m for s in starts], [s.speed_mps for s in starts],
                            [s.lateral_m for s in starts], [s.heading_rad for s in starts],
                            max_ticks=args.ticks)
        moved = sum(s.speed_mps != 8.0 or s.lateral_m != 0.0 for s in starts)
        rows.append(failed.mean())
        print(f"{'on approaches' if approach else 'standing starts':>16}: {moved:3d} of "
              f"{len(starts)} moved, {failed.mean():4.0%} met a failure within "
              f"{args.ticks / 20:.0f} s, mean start speed "
              f"{np.mean([s.speed_mps for s in starts]):.1f} m/s "
              f"({time.perf_counter() - began:.1f} s; load {os.getloadavg()[0]:.2f})")
    ratio = f"{rows[1] / rows[0]:.1f}x" if rows[0] > 0 else "- (none met one from a standing start)"
    print(f"missions meeting a failure, approaches / standing starts: {ratio}")


if __name__ == "__main__":
    main()
