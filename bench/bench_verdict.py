# ruff: noqa: E402  (thread counts are set before numpy and torch load)
"""Time from submission to verdict for 60-second contributions, on this machine.

A crowd of scripted players (experts, noisy, late, lazy, random, adversary) each plays a
60-second session (1,200 ticks) against the initial model; every contribution is then submitted
to the verdict path: screening (rate limit, duplicates, bit-exact replay of the action log) and
the judge (paired with/twin fine-tunes, both models of each pair driven in one simulator batch,
sequential test on the hidden suite). Measured per contribution, after the champion's judge is
built (that one-off cost, the placebo null shared by every contribution judged against the
champion, is printed separately).

Same run, the alternative: one fine-tune seed instead of two (half the work, twice the training
variance). Prints median, 95th percentile, the decisions, the ratios and the load average.

Run: ``.venv/bin/python bench/bench_verdict.py [--players 3]`` (targets: median <= 1 s,
p95 <= 3 s on the 2-core machine).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread each: the judge runs on one core

import argparse
import time
from dataclasses import replace

import numpy as np

from crowdlearning.crowd.personas import PERSONAS
from crowdlearning.crowd.simulation import make_crowd, play_round
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.verdict import Judge, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.policy.network import Policy


def _timed(judge: Judge, screener: Screener, contributions: list) -> tuple[list[float], list]:
    times, decisions = [], []
    for c in contributions:
        start = time.perf_counter()
        reason = screener.check(c)
        verdict = judge.rejected(c, reason) if reason else judge.judge(c)
        times.append(time.perf_counter() - start)
        decisions.append(verdict.decision.value)
    return times, decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=3, help="players per persona")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    net, _ = train_initial_model(args.seed)
    demo = expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)
    rng = np.random.default_rng(args.seed)
    catalog: dict = {}
    crowd = make_crowd({p: args.players for p in PERSONAS}, rng)
    contributions = play_round(Policy(net), 0, crowd, rng, round_id="bench", max_ticks=1200,
                               catalog=catalog)
    ticks = [c.num_ticks for c in contributions]
    print(f"{len(contributions)} contributions, {np.mean(ticks):.0f} ticks on average "
          f"(1200 = 60 s; adversaries and random players crash sooner)")
    setups = {}
    results = {}
    for name, config in (("2 seeds (ours)", VerdictConfig()),
                         ("1 seed", replace(VerdictConfig(), finetune_seeds=1))):
        start = time.perf_counter()
        judge = Judge(net, 0, demo, config=config)
        setups[name] = time.perf_counter() - start
        results[name] = _timed(judge, Screener(catalog.__getitem__), contributions)
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'judge':<20} {'setup s':>8} {'median s':>9} {'p95 s':>7} {'max s':>7}")
    for name, (times, _) in results.items():
        print(f"{name:<20} {setups[name]:>8.2f} {np.median(times):>9.2f} "
              f"{np.percentile(times, 95):>7.2f} {max(times):>7.2f}")
    ours, alt = (np.asarray(results[k][0]) for k in results)
    print(f"\nratio 1-seed / ours: median {np.median(alt) / np.median(ours):.2f}x, "
          f"p95 {np.percentile(alt, 95) / np.percentile(ours, 95):.2f}x")
    decisions = results["2 seeds (ours)"][1]
    for persona in PERSONAS:
        mine = [d for c, d in zip(contributions, decisions, strict=True)
                if c.contributor_id.rsplit("-", 1)[0] == persona]
        print(f"  {persona:<10} {', '.join(mine)}")
    med, p95 = np.median(ours), np.percentile(ours, 95)
    print(f"\ntargets: median <= 1 s {'MET' if med <= 1 else 'NOT MET'}, "
          f"p95 <= 3 s {'MET' if p95 <= 3 else 'NOT MET'}")


if __name__ == "__main__":
    main()
