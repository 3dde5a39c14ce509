"""Hidden evaluation suites: disjoint from play, deterministic, scoring what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.errors import SimulationError
from crowdlearning.evaluation.suite import EvalSuite, evaluate, is_play_seed
from crowdlearning.learning.train import new_network
from crowdlearning.policy.network import Policy
from crowdlearning.sim.expert import ExpertDriver


class _ExpertPolicy:
    """The expert dressed as a policy: it cheats (reads the sim), to calibrate the metrics."""

    def __init__(self) -> None:
        self.sim = None

    def act(self, observations: np.ndarray) -> np.ndarray:
        return ExpertDriver().act(self.sim)


def test_hidden_seeds_never_overlap_play_seeds_and_rotate() -> None:
    a, b = EvalSuite.hidden(24, rotation=0), EvalSuite.hidden(24, rotation=1)
    assert not any(is_play_seed(s) for s in a.track_seeds + b.track_seeds)
    assert set(a.track_seeds) != set(b.track_seeds)
    assert EvalSuite.hidden(24, rotation=0) == a
    with pytest.raises(SimulationError, match="play seeds"):
        EvalSuite((5, 6))


def test_evaluation_is_deterministic() -> None:
    suite = EvalSuite.hidden(6)
    policy = Policy(new_network(3))
    r1, r2 = evaluate(policy, suite), evaluate(policy, suite)
    assert r1.summary() == r2.summary()
    np.testing.assert_array_equal(r1.progress_frac, r2.progress_frac)


def test_untrained_policy_scores_low_and_the_expert_scores_full(monkeypatch) -> None:
    suite = EvalSuite.hidden(6)
    bad = evaluate(Policy(new_network(0)), suite)
    assert bad.lap_completion == 0.0 and bad.completed.sum() == 0
    # the expert, wired in through the simulator the suite builds
    import crowdlearning.evaluation.suite as suite_module

    expert = _ExpertPolicy()
    real_sim = suite_module.RaceSim

    def capture(*args, **kwargs):
        expert.sim = real_sim(*args, **kwargs)
        return expert.sim

    monkeypatch.setattr(suite_module, "RaceSim", capture)
    good = evaluate(expert, suite)  # type: ignore[arg-type]
    assert good.lap_completion == 1.0
    assert not good.exited.any()
    assert np.all(np.isfinite(good.lap_time_s)) and np.all(good.lap_time_s > 10)
    assert good.summary()["runs"] == suite.num_runs == 12
