"""Batched inference: both paths (numpy for small batches, torch for big ones) agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crowdlearning.learning.train import new_network
from crowdlearning.policy.network import Policy


def test_small_and_large_batches_give_the_same_actions() -> None:
    policy = Policy(new_network(1))
    obs = np.random.default_rng(0).uniform(-1, 1, size=(Policy.NUMPY_MAX_ROWS * 3, 18))
    big = policy.act(obs)  # torch path
    small = np.concatenate([policy.act(obs[i : i + 64]) for i in range(0, len(obs), 64)])
    np.testing.assert_allclose(big, small, atol=1e-5)
    with torch.no_grad():
        reference = policy.net(torch.from_numpy(obs.astype(np.float32))).numpy()
    np.testing.assert_allclose(small, reference, atol=1e-5)
    assert big.shape == (len(obs), 2) and np.all(np.abs(big) <= 1.0)


def test_inference_is_deterministic_and_checks_shapes() -> None:
    policy = Policy(new_network(2))
    obs = np.random.default_rng(1).uniform(-1, 1, size=(10, 18))
    assert np.array_equal(policy.act(obs), policy.act(obs))
    with pytest.raises(ValueError, match="shape"):
        policy.act(np.zeros((3, 17)))
