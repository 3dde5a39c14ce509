"""Verdict throughput: one process against a Ray pool of judge actors, same batch, same run.

A crowd of scripted players (every persona) plays 60-second sessions against the initial model;
the whole batch is then judged (a) inline, one verdict after another in this process, and (b) on
a Ray pool of ``--workers`` actors (a private local cluster, or ``--address`` to join one). Both
produce the same verdicts (checked: judging is deterministic); the figures are the batch's wall
time, verdicts per second, and the ratio. The pool's one-off start (cluster, actors importing
torch, each building the champion's judge) is printed apart: it is paid once per server start
and once per champion version, not per verdict.

On one 2-core machine the ceiling is about 2x; across machines a pool scales with its actors.

Run: ``.venv/bin/python bench/bench_judge_pool.py [--players 2] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from crowdlearning.crowd.personas import PERSONAS
from crowdlearning.crowd.simulation import make_crowd, play_round
from crowdlearning.evaluation.judge_pool import InlineJudgePool, JudgeSpec, RayJudgePool
from crowdlearning.evaluation.verdict import PriceSchedule, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.policy.network import Policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=2, help="players per persona")
    parser.add_argument("--workers", type=int, default=2, help="Ray judge actors")
    parser.add_argument("--address", default="", help="Ray cluster ('' = private local one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    net, _ = train_initial_model(args.seed)
    spec = JudgeSpec.of(net, 0, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS),
                        config=VerdictConfig(), prices=PriceSchedule(), labels=LabelConfig())
    rng = np.random.default_rng(args.seed)
    crowd = make_crowd({p: args.players for p in PERSONAS}, rng)
    batch = play_round(Policy(net), 0, crowd, rng, round_id="bench", max_ticks=1200,
                       catalog={})
    print(f"{len(batch)} contributions of {np.mean([c.num_ticks for c in batch]):.0f} ticks "
          f"on average")

    inline = InlineJudgePool()
    start = time.perf_counter()
    inline.judge_for(spec)
    inline_setup = time.perf_counter() - start
    start = time.perf_counter()
    here = inline.judge(spec, batch)
    inline_s = time.perf_counter() - start

    start = time.perf_counter()
    pool = RayJudgePool(args.workers, args.address)
    pool.judge(spec, [])  # start the cluster and the actors; each builds the champion's judge
    ray_setup = time.perf_counter() - start
    try:
        start = time.perf_counter()
        there = pool.judge(spec, batch)
        ray_s = time.perf_counter() - start
    finally:
        pool.close()

    same = there == here
    print(f"\n{'pool':<22} {'setup s':>8} {'batch s':>8} {'verdicts/s':>11}")
    print(f"{'inline (1 process)':<22} {inline_setup:>8.2f} {inline_s:>8.2f} "
          f"{len(batch) / inline_s:>11.2f}")
    print(f"{f'ray ({args.workers} actors)':<22} {ray_setup:>8.2f} {ray_s:>8.2f} "
          f"{len(batch) / ray_s:>11.2f}")
    print(f"\nspeed-up ray / inline: {inline_s / ray_s:.2f}x; verdicts identical: {same}")
    decisions: dict[str, int] = {}
    for v in here:
        decisions[v.decision.value] = decisions.get(v.decision.value, 0) + 1
    print(f"decisions: {decisions}")
    if not same:
        raise SystemExit("verdicts differ between the pools")


if __name__ == "__main__":
    main()
