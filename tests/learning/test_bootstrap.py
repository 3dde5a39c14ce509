"""The initial model drives badly, never not at all."""

from __future__ import annotations

from functools import cache

import numpy as np

from crowdlearning.evaluation.suite import EvalSuite, evaluate
from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.policy.network import Policy
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track_gen import generate_track


@cache
def _v0() -> tuple[Policy, dict]:
    net, meta = train_initial_model(0)
    return Policy(net), meta


def _longest_standstill_s(policy: Policy, seed: int, cars: int = 64) -> float:
    """Runs as the server starts them (a play track 0-7, a place, 6-10 m/s), 60 s each, no stall
    rule: the longest time any car stood still (< 0.5 m/s)."""
    tracks = [generate_track(s) for s in range(8)]
    rng = np.random.default_rng(seed)
    on = rng.integers(0, len(tracks), cars)
    sim = RaceSim(tracks, cars, max_steps=1200)
    sim.reset_cars(np.arange(cars), track_index=on,
                   start_s_m=rng.uniform(0, 1, cars) * np.array([t.length_m for t in tracks])[on],
                   speed_mps=rng.uniform(6.0, 10.0, cars))
    still = np.zeros(cars)
    longest = 0.0
    while sim.alive.any():
        alive = sim.alive.copy()
        sim.step(policy.act(sim.observe()))
        still = np.where(alive & (sim.pose[:, 3] < 0.5), still + 1, 0)
        longest = max(longest, float(still.max()))
    return longest / 20.0


def test_the_initial_model_never_parks_on_the_play_tracks() -> None:
    policy, meta = _v0()
    assert meta["stall_proofing"]["slow_states"][-1] == 0  # the last round found none
    for seed in (0, 1, 2):
        assert _longest_standstill_s(policy, seed) <= 3.0


def test_the_initial_model_still_leaves_work_for_the_crowd() -> None:
    policy, _ = _v0()
    result = evaluate(policy, EvalSuite.hidden(12))
    # it finishes some laps of unseen tracks and fails others (leaving the track)
    assert 0.1 <= result.lap_completion <= 0.8
    assert result.exited.any()
