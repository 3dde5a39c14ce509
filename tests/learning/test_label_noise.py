"""A run's steering jitter, estimated from its labels alone, and the precision factor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from crowdlearning.crowd.personas import make_persona
from crowdlearning.learning.label_noise import (
    PRIOR_TRIPLES,
    estimate_label_noise,
    precision_factor,
)
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.policy.network import Policy, PolicyNet
from tests.learning.factories import play


@pytest.fixture(scope="module")
def runs() -> dict:
    torch.manual_seed(0)
    policy = Policy(PolicyNet())
    out = {}
    for name in ("expert", "late-6", "noisy-0.1", "human-150-0.2", "gamepad-200"):
        out[name] = play(policy, make_persona(name, np.random.default_rng(4)), ticks=400,
                         session_id=name)
    return out


def test_noise_on_the_labels_is_measured_at_its_size(runs) -> None:
    sigma = {k: estimate_label_noise(c, prior=0.1).sigma for k, c in runs.items()}
    assert sigma["expert"] < 0.04, sigma  # a smooth hand: its own curvature only
    assert 0.08 < sigma["noisy-0.1"] < 0.13, sigma  # independent noise of 0.1
    assert 0.15 < sigma["human-150-0.2"] < 0.25, sigma
    # lateness is not jitter: the late reactor's labels are as steady as the expert's
    assert sigma["late-6"] < 0.04, sigma
    assert sigma["expert"] < sigma["gamepad-200"] < sigma["noisy-0.1"], sigma


def test_the_estimate_has_the_evidence_of_every_neighbouring_label(runs) -> None:
    c = runs["expert"]
    noise = estimate_label_noise(c, prior=0.1, config=LabelConfig())
    assert noise.triples > 0.9 * c.num_ticks - 10  # label mode: nearly every tick


def _keep_only(c, keep: np.ndarray, name: str):
    """``c`` with the player's input dropped on the ticks ``keep`` does not hold."""
    player, input_tick = c.player.copy(), c.input_tick.copy()
    player[~keep], input_tick[~keep] = np.nan, -1
    return dataclasses.replace(c, player=player, input_tick=input_tick, contribution_id=name)


def test_a_run_without_neighbouring_labels_gets_the_prior_not_zero(runs) -> None:
    c = runs["noisy-0.1"]
    # input on every sixth tick only: no triple is close enough to judge jitter by
    sparse = _keep_only(c, np.arange(c.num_ticks) % 6 == 0, "sparse")
    noise = estimate_label_noise(sparse, prior=0.1)
    assert noise.triples == 0 and noise.sigma == pytest.approx(0.1)
    # a few neighbouring exact labels: pulled towards the prior by PRIOR_TRIPLES triples' weight
    exact = runs["expert"]
    few = estimate_label_noise(_keep_only(exact, np.arange(exact.num_ticks) < 12, "few"),
                               prior=0.1)
    assert 0 < few.triples <= 10
    floor = 0.1 * np.sqrt(PRIOR_TRIPLES / (PRIOR_TRIPLES + few.triples))
    assert floor - 1e-6 <= few.sigma < 0.1


def test_smoothing_a_noisy_hand_lowers_its_jitter(runs) -> None:
    c = runs["noisy-0.1"]
    kernel = np.ones(5) / 5
    smooth = c.player.copy()
    smooth[:, 0] = np.convolve(c.player[:, 0], kernel, mode="same")
    before = estimate_label_noise(c, prior=0.1).sigma
    after = estimate_label_noise(dataclasses.replace(c, player=smooth), prior=0.1).sigma
    assert after < 0.5 * before


def test_precision_factor() -> None:
    assert precision_factor(0.3, 0.0) == 1.0  # off
    assert precision_factor(0.1, 0.1) == pytest.approx(0.5)
    assert precision_factor(0.0, 0.1) == 1.0
    values = [precision_factor(s, 0.1) for s in (0.01, 0.05, 0.1, 0.2)]
    assert values == sorted(values, reverse=True) and all(0 < v <= 1 for v in values)



def test_a_negative_prior_is_refused(runs) -> None:
    with pytest.raises(ValueError, match="prior"):
        estimate_label_noise(runs["expert"], prior=-0.1)


def test_the_aggregate_weighs_merged_rows_by_their_precision(runs, tmp_path) -> None:
    from crowdlearning.learning.dagger import DaggerTrainer
    from crowdlearning.learning.dataset import AggregatedDataset
    from crowdlearning.learning.labels import LabelSet, extract_labels
    from crowdlearning.learning.registry import ModelRegistry
    from crowdlearning.learning.train import TrainConfig

    torch.manual_seed(1)
    trainer = DaggerTrainer(ModelRegistry(tmp_path / "m"), AggregatedDataset(tmp_path / "d"),
                            train=TrainConfig(updates=5), precision_ref=0.1)
    obs = runs["expert"].observations[:50]
    trainer.start(PolicyNet(), LabelSet.from_actions(obs, np.zeros((50, 2)), "base"), {})
    exact, noisy = runs["expert"], runs["noisy-0.1"]
    meta = trainer.merge([exact, noisy])
    for c in (exact, noisy):
        stored = trainer.dataset.load([c.contribution_id])
        plain = extract_labels(c, trainer.label_config)
        factor = precision_factor(estimate_label_noise(c, prior=0.1).sigma, 0.1)
        assert len(stored) == len(plain)
        assert np.allclose(stored.weights, plain.weights * factor)
    assert trainer.dataset.load([exact.contribution_id]).weights[0] > 0.9
    assert trainer.dataset.load([noisy.contribution_id]).weights[0] < 0.6
    assert meta.training["label_precision_ref"] == 0.1
    with pytest.raises(ValueError, match="precision_ref"):
        DaggerTrainer(trainer.registry, trainer.dataset, precision_ref=-1.0)
