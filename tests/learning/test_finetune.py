"""Paired fine-tuning: batched models train exactly as one at a time."""

from __future__ import annotations

import numpy as np
import torch

from crowdlearning.learning.bootstrap import expert_demonstrations, train_initial_model
from crowdlearning.learning.finetune import FinetuneConfig, finetune, finetune_many
from crowdlearning.policy.network import Policy


def test_models_trained_together_equal_models_trained_alone() -> None:
    net, _ = train_initial_model(0)
    base = expert_demonstrations((100,), 200)
    a, b = base.select(np.arange(50)), base.select(np.arange(60, 160))
    cfg = FinetuneConfig(updates=40)
    together = finetune_many(net, base, [a, b, a], cfg, [3, 3, 9])
    alone = [finetune(net, base, x, cfg, s) for x, s in ((a, 3), (b, 3), (a, 9))]
    obs = base.observations
    for mine, theirs in zip(together, alone, strict=True):
        assert np.allclose(Policy(mine).act(obs), Policy(theirs).act(obs), atol=1e-5)
    # and the models really differ from one another (different data, different seeds)
    assert not np.allclose(Policy(together[0]).act(obs), Policy(together[1]).act(obs))
    assert not np.allclose(Policy(together[0]).act(obs), Policy(together[2]).act(obs))


def test_numpy_tanh_matches_torch_tanh_and_its_gradient() -> None:
    """The fine-tune's tanh (numpy's kernel, a hand-written backward) is torch's tanh."""
    from crowdlearning.learning.finetune import _Tanh

    x = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_Tanh.apply, (x,))
    y = torch.randn(4, 9, 6, requires_grad=True)
    grad = torch.randn(4, 9, 6)
    (torch.tanh(y) * grad).sum().backward()
    expected = y.grad.clone()
    y.grad = None
    out = _Tanh.apply(y)
    (out * grad).sum().backward()
    assert torch.allclose(out, torch.tanh(y), atol=1e-6)
    assert torch.allclose(y.grad, expected, atol=1e-6)


def test_a_judge_with_more_threads_trains_the_same_weights() -> None:
    """``use_torch_threads`` (``CROWDLEARNING_JUDGE_THREADS``) changes the speed of a fine-tune,
    never its result: a verdict judged on 2 threads is re-checked bit for bit on 1."""
    from crowdlearning.policy.network import use_torch_threads

    net, _ = train_initial_model(0)
    base = expert_demonstrations((100,), 200)
    extra = base.select(np.arange(40))
    cfg = FinetuneConfig(updates=30)
    weights = {}
    try:
        for threads in (1, 2):
            use_torch_threads(threads)
            assert torch.get_num_threads() == threads
            models = finetune_many(net, base, [extra, None], cfg, [5, 5])
            assert torch.get_num_threads() == threads  # kept through the fine-tune
            weights[threads] = torch.cat([p.detach().flatten() for m in models
                                          for p in m.parameters()])
    finally:
        use_torch_threads(1)
    assert torch.equal(weights[1], weights[2])
