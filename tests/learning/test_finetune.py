"""Paired fine-tuning: batched models train exactly as one at a time."""

from __future__ import annotations

import copy

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


def _autograd_finetune(net: torch.nn.Module, batches: list[np.ndarray], lr: float
                       ) -> list[list[torch.Tensor]]:
    """The fine-tune as autograd and ``torch.optim.Adam`` compute it, one model at a time: the
    reference the hand-written backward and Adam of ``finetune_many`` must equal."""
    obs, tgt, mask, w = (torch.from_numpy(b).double() for b in batches)
    out = []
    for m in range(obs.shape[1]):
        model = copy.deepcopy(net).double()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for u in range(obs.shape[0]):
            y = model(obs[u, m])
            err = ((y - tgt[u, m]) ** 2 * mask[u, m]).sum(dim=1)
            loss = (err * w[u, m]).sum() / w[u, m].sum().clamp_min(1e-8)
            opt.zero_grad()
            loss.backward()
            opt.step()
        out.append([p.detach().float() for p in model.parameters()])
    return out


def test_hand_written_backward_and_adam_equal_autograd_and_torch_adam() -> None:
    """``finetune_many`` backpropagates by hand and runs Adam on one flat buffer; the weights it
    trains are those autograd and ``torch.optim.Adam`` train on the same minibatches (float64
    reference), for models with and without extra rows, weights and masks that are not all 1."""
    from crowdlearning.learning.finetune import _minibatches

    net, _ = train_initial_model(0)
    base = expert_demonstrations((100,), 200)
    rng = np.random.default_rng(3)
    base.weights[:] = rng.uniform(0.2, 3.0, len(base)).astype(base.weights.dtype)
    base.mask[:, 1] = rng.random(len(base)) < 0.7
    extra = base.select(np.arange(30))
    cfg = FinetuneConfig(updates=60)
    extras, seeds = [extra, None, extra], [4, 4, 11]
    mine = finetune_many(net, base, extras, cfg, seeds)
    reference = _autograd_finetune(net, _minibatches(base, extras, cfg, seeds), cfg.lr)
    start = [p.detach() for p in net.parameters()]
    for model, ref in zip(mine, reference, strict=True):
        params = [p.detach() for p in model.parameters()]
        for got, want in zip(params, ref, strict=True):
            assert torch.allclose(got, want, atol=2e-5), (got - want).abs().max()
        moved = max((p - b).abs().max().item() for p, b in zip(params, start, strict=True))
        assert moved > 1e-2  # and it did train


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
