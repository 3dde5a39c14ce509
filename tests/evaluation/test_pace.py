"""Pace calibration: a safer but slower candidate's throttle, tuned on a suite of its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crowdlearning.platform.service as service_module
from crowdlearning.evaluation import pace
from crowdlearning.evaluation.pace import (
    CALIBRATION_ROTATION,
    PaceCalibration,
    calibrate_pace,
    calibration_suite,
    throttle_shifted,
)
from crowdlearning.evaluation.promotion import promotion
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.suite import EvalResult, EvalSuite, evaluate
from crowdlearning.learning.bootstrap import expert_demonstrations, new_network
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.platform.service import VerdictService
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


def _fake_rollouts(base: float, *, lap_at_0: float, exits_from: float,
                   champion_exits: int = 0):
    """Candidate runs whose lap time falls 20 s per unit of throttle bias added, and which
    leave the track once the bias reaches ``exits_from``; the champion: 50 s, no exits."""
    def evaluate_many(policies: list[Policy], suite: EvalSuite) -> list[EvalResult]:
        out = []
        for policy in policies:
            added = _bias(policy.net) - base
            lap, exited = 50.0, np.zeros(RUNS, bool)
            exited[RUNS - champion_exits:] = True
            if getattr(policy, "candidate", True):
                exited[:] = False
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


def _laps(lap_s: float) -> EvalResult:
    return EvalResult(np.zeros(RUNS), np.zeros(RUNS), np.ones(RUNS, bool), np.ones(RUNS),
                      np.ones(RUNS), np.zeros(RUNS, bool), np.full(RUNS, lap_s),
                      np.ones(RUNS, np.int64))


def test_a_refused_candidate_is_registered_calibrated_and_judged_again(tmp_path,
                                                                       monkeypatch) -> None:
    # GIVEN a champion v0 and a candidate v1 as safe but 4% slower on the promotion suite
    registry = ModelRegistry(tmp_path / "models")
    trainer = DaggerTrainer(registry, AggregatedDataset(tmp_path / "data"))
    trainer.start(new_network(0), expert_demonstrations((100,), 20), {})
    suite = EvalSuite.hidden(2, max_steps=20)
    service = VerdictService(trainer, Screener({}.__getitem__), champion_suite=suite,
                             pace_calibration=True)
    candidate = registry.register(new_network(1), parent_version=0, contributions=["c1"])
    net, _ = registry.load(candidate.version)
    champion, slow = _laps(50.0), _laps(52.0)
    refused = promotion(slow, champion)
    assert not refused.promoted and "slower" in refused.reason
    # WHEN the calibration finds +0.05 and the calibrated model laps in 49.9 s
    seen: list = []

    def calibrate(n, champ, calibration):
        seen.append(calibration)
        return throttle_shifted(n, 0.05), PaceCalibration(0.05, 50.0, 51.0, 49.9, 2)

    monkeypatch.setattr(service_module, "calibrate_pace", calibrate)
    monkeypatch.setattr(service_module, "evaluate", lambda policy, s: _laps(49.9))
    found, record = service._calibrated(candidate, net, suite, champion)
    # THEN it is promoted as a version of its own whose lineage says what was done
    assert found is not None
    meta, _, result, decision = found
    assert decision.promoted and result.lap_time_s[0] == 49.9
    assert meta.parent_version == candidate.version and list(meta.contributions) == []
    assert meta.training["kind"] == "pace" and meta.training["throttle_bias"] == 0.05
    assert record["calibrated_version"] == meta.version and record["from_version"] == 1
    assert _bias(registry.load(meta.version)[0]) == pytest.approx(_bias(net) + 0.05)
    assert seen[0].track_seeds == calibration_suite(("easy",), 1, like=suite).track_seeds
    # AND a calibrated model still slower on the promotion suite is not used nor registered
    versions = registry.versions()
    monkeypatch.setattr(service_module, "evaluate", lambda policy, s: _laps(50.1))
    found, record = service._calibrated(candidate, net, suite, champion)
    assert found is None and "slower" in record["refused"]
    assert registry.versions() == versions
    # AND a calibration that finds nothing leaves the candidate as it was
    monkeypatch.setattr(service_module, "calibrate_pace",
                        lambda n, c, s: (n, PaceCalibration(0.0, 50.0, 51.0, 51.0, 6)))
    found, record = service._calibrated(candidate, net, suite, champion)
    assert found is None and record["tried"] == 6


def test_which_candidates_are_worth_calibrating() -> None:
    champion = _laps(50.0)
    assert pace.is_slower_but_safe(_laps(50.5), champion)  # within any tolerance: still
    assert not pace.is_slower_but_safe(_laps(50.0), champion)  # not slower
    unsafe = _laps(51.0)
    unsafe.exited[0], unsafe.completed[0] = True, False
    assert not pace.is_slower_but_safe(unsafe, champion)  # less safe: pace cannot buy it back


def test_pace_that_costs_the_candidate_safety_is_not_taken(monkeypatch) -> None:
    """The champion leaves the track once; the candidate never, until its throttle is raised:
    as safe as the champion then, but the safety it gave up is what calibration must not
    spend."""
    net = new_network(0)
    monkeypatch.setattr(pace, "evaluate_many", _fake_rollouts(
        _bias(net), lap_at_0=51.0, exits_from=0.05, champion_exits=1))
    tuned, found = calibrate_pace(net, _champion(), EvalSuite.hidden(4))
    assert tuned is net and found.throttle_bias == 0.0 and found.tried == 2
