"""Closed-loop evaluation on the hidden suite: one vectorized call against one car at a time.

The default suite (24 hidden tracks x 2 starts, one lap each, up to 150 s) is driven by a trained
policy (the initial model after one DAgger-style fine-tune on expert data) with
``evaluation.suite.evaluate`` (all cars in one ``RaceSim``, one batched inference per tick), and,
in the same run, run by run through the gymnasium ``RaceEnv`` with one inference per car per tick.

Run: ``.venv/bin/python bench/bench_eval.py`` (target: the vectorized call well under 1 s).
"""

from __future__ import annotations

import time

import numpy as np

from crowdlearning.evaluation.suite import EvalSuite, evaluate
from crowdlearning.learning.bootstrap import expert_demonstrations, train_initial_model
from crowdlearning.learning.labels import LabelSet
from crowdlearning.learning.train import TrainConfig, fit
from crowdlearning.policy.network import Policy
from crowdlearning.sim.env import RaceEnv


def _one_at_a_time(policy: Policy, suite: EvalSuite) -> float:
    """Lap completion, evaluating each (track, start) alone through the gymnasium env."""
    done = []
    for track in suite.tracks:
        for k in range(suite.starts_per_track):
            env = RaceEnv(track, max_episode_steps=suite.max_steps)
            obs, _ = env.reset(options={"start_s_m": k / suite.starts_per_track * track.length_m,
                                        "speed_mps": suite.start_speed_mps})
            laps, over = 0, False
            while not over and laps < suite.laps:
                obs, _, term, trunc, info = env.step(policy.act(obs[None, :])[0])
                laps, over = info["laps"], term or trunc
            done.append(laps >= suite.laps)
    return float(np.mean(done))


def main() -> None:
    net, _ = train_initial_model(0)
    extra = expert_demonstrations(range(1000, 1016), 300, source="bench")
    base = expert_demonstrations((100,), 600)
    policy = Policy(fit(net, LabelSet.concat([base, extra]), TrainConfig(updates=1500)))
    suite = EvalSuite.hidden()
    evaluate(policy, suite)  # warm-up: compile, generate and cache tracks
    times = []
    for _ in range(5):
        start = time.perf_counter()
        result = evaluate(policy, suite)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    single = _one_at_a_time(policy, suite)
    single_s = time.perf_counter() - start
    best, median = min(times), float(np.median(times))
    print(f"suite: {len(suite.track_seeds)} hidden tracks x {suite.starts_per_track} starts, "
          f"lap completion {result.lap_completion:.0%} (one-at-a-time: {single:.0%})")
    print(f"vectorized evaluate(): median {median:.3f} s, best {best:.3f} s over 5 calls")
    print(f"one car at a time (gymnasium env): {single_s:.3f} s  -> ratio {single_s / median:.1f}x")
    print(f"target 'well under a second': {'MET' if median < 1.0 else 'NOT MET'}")


if __name__ == "__main__":
    main()
