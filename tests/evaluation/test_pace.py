"""Pace calibration: a safer but slower candidate's throttle, tuned on a suite of its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crowdlearning.evaluation import pace
from crowdlearning.evaluation.pace import (
    CALIBRATION_ROTATION,
    calibrate_pace,
    calibration_suite,
    throttle_shifted,
)
from crowdlearning.evaluation.suite import EvalResult, EvalSuite, evaluate
from crowdlearning.learning.bootstrap import new_network
from crowdlearning.policy.network import Policy, PolicyNet

RUNS = 8


def _bias(net: PolicyNet) -> float:
    return float([m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1].bias[1].detach())


def test_the_shift_moves_only_the_throttle_and_speeds_the_car_up() -> None:
    net = new_network(0)
    shifted = throttle_shifted(net, 0.3)
    before = dict(net.named_parameters())
    changed = {name for name, p in shifted.named_parameters()
               if not torch.equal(p, before[name])}
    assert len(changed) == 1 and changed.pop().endswith("bias")
    assert _bias(shifted) == pytest.approx(_bias(net) + 0.3)
    obs = np.random.default_rng(0).normal(size=(64, net.arch.obs_dim)).astype(np.float32)
    plain, faster = Policy(net).act(obs), Policy(shifted).act(obs)
    assert np.array_equal(plain[:, 0], faster[:, 0])  # steering untouched
    assert (faster[:, 1] > plain[:, 1]).all()


def test_the_calibration_suite_is_hidden_and_none_of_the_gates(monkeypatch) -> None:
    suite = calibration_suite(("easy", "tight"), 7, tracks=4,
                              like=EvalSuite.hidden(4, max_steps=123))
    assert suite.family_names == ("easy", "tight") and suite.max_steps == 123
    promotion_suite = EvalSuite.hidden(24, families=("easy", "tight"))
    assert not set(suite.track_seeds) & set(promotion_suite.track_seeds)
    assert suite == EvalSuite.hidden(4, rotation=CALIBRATION_ROTATION + 7,
                                     families=("easy", "tight"), max_steps=123)


def _fake_rollouts(base: float, *, lap_at_0: float, exits_from: float):
    """Candidate runs whose lap time falls 20 s per unit of throttle bias added, and which
    leave the track once the bias reaches ``exits_from``; the champion: 50 s, no exits."""
    def evaluate_many(policies: list[Policy], suite: EvalSuite) -> list[EvalResult]:
        out = []
        for policy in policies:
            added = _bias(policy.net) - base
            lap, exited = 50.0, np.zeros(RUNS, bool)
            if getattr(policy, "candidate", True):
                lap = round(lap_at_0 - 20.0 * added, 4)  # float32 weights
                exited[0] = added >= exits_from - 1e-6
            out.append(EvalResult(np.zeros(RUNS), np.zeros(RUNS), ~exited, np.ones(RUNS),
                                  np.ones(RUNS), exited, np.full(RUNS, lap),
                                  np.ones(RUNS, np.int64)))
        return out
    return evaluate_many


def _champion() -> Policy:
    champion = Policy(new_network(1))
    champion.candidate = False  # type: ignore[attr-defined]
    return champion


def test_a_slower_candidate_gets_the_smallest_bias_that_matches_the_pace(monkeypatch) -> None:
    net = new_network(0)
    monkeypatch.setattr(pace, "evaluate_many",
                        _fake_rollouts(_bias(net), lap_at_0=51.0, exits_from=1.0))
    tuned, found = calibrate_pace(net, _champion(), EvalSuite.hidden(4))
    assert found.throttle_bias == 0.05  # 51 - 20 x 0.05 = 50 s: as fast, as safe
    assert found.champion_lap_s == 50.0 and found.candidate_lap_s == 51.0
    assert found.calibrated_lap_s == pytest.approx(50.0) and found.tried == 2
    assert _bias(tuned) == pytest.approx(_bias(net) + 0.05) and tuned is not net


def test_no_bias_when_pace_costs_safety_or_the_candidate_is_not_slower(monkeypatch) -> None:
    net = new_network(0)
    monkeypatch.setattr(pace, "evaluate_many",
                        _fake_rollouts(_bias(net), lap_at_0=53.0, exits_from=0.05))
    tuned, found = calibrate_pace(net, _champion(), EvalSuite.hidden(4))
    assert tuned is net and found.throttle_bias == 0.0
    assert found.tried == 2  # 0.025 too slow, 0.05 left the track: no further step
    monkeypatch.setattr(pace, "evaluate_many",
                        _fake_rollouts(_bias(net), lap_at_0=49.0, exits_from=1.0))
    tuned, found = calibrate_pace(net, _champion(), EvalSuite.hidden(4))
    assert tuned is net and found.throttle_bias == 0.0 and found.tried == 0


def test_on_real_rollouts_more_throttle_is_faster() -> None:
    """The dial the calibration turns does what it says on the simulator (one easy track)."""
    net = new_network(0)
    suite = EvalSuite.hidden(1, starts_per_track=2, max_steps=200)
    plain = evaluate(Policy(net), suite)
    faster = evaluate(Policy(throttle_shifted(net, 1.0)), suite)
    assert faster.progress_m.sum() > plain.progress_m.sum()
