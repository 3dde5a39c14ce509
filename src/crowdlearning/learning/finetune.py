"""Paired fine-tuning: the champion trained with and without a contribution, same randomness.

Both runs draw the *same* minibatches from the champion's data (one generator seeded with
``seed``); the run "with" a contribution adds ``extra_batch`` rows of it to every minibatch
(drawn from a second generator). So the two models differ by the contribution's data alone, not
by training noise, and the run "without" is shared by every contribution judged against the same
champion and seed. Deterministic on a CPU (single thread).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from crowdlearning.learning.labels import LabelSet
from crowdlearning.policy.network import PolicyNet, single_threaded_torch

__all__ = ["FinetuneConfig", "finetune", "finetune_many"]


@dataclass(frozen=True)
class FinetuneConfig:
    updates: int = 300
    # A contribution is one player on one track: measured with a large share of every minibatch
    # it overfits the model to that track and even expert data looks harmful; at 1/16 of the
    # batch its effect is that of one contribution among many, as it will be when merged.
    base_batch: int = 240  # rows of the champion's data per step
    extra_batch: int = 16  # rows of the contribution per step (run "with" only)
    lr: float = 1e-3

    def to_dict(self) -> dict:
        return asdict(self)


class _Tanh(torch.autograd.Function):
    """tanh through numpy's vectorized kernel, with the usual gradient ``g * (1 - y**2)``.

    Why not ``torch.tanh``: on this project's CPUs (AVX-512, one thread) torch's tanh takes
    372 us for a (4, 256, 128) activation and numpy's 50 us; with its backward it was 30% of a
    fine-tune (profile in ``docs/benchmarks.md``, "Verdict latency"). Deterministic, like torch's.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        y = torch.from_numpy(np.tanh(x.detach().contiguous().numpy()))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad - grad * y * y


def _tensors(data: LabelSet) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(np.ascontiguousarray(data.observations, np.float32)),
            torch.from_numpy(np.ascontiguousarray(data.targets, np.float32)),
            torch.from_numpy(data.mask.astype(np.float32)),
            torch.from_numpy(np.ascontiguousarray(data.weights, np.float32)))


def finetune(net: PolicyNet, base: LabelSet, extra: LabelSet | None, config: FinetuneConfig,
             seed: int) -> PolicyNet:
    """A fine-tuned copy of ``net`` on ``base`` (+ ``extra`` in every minibatch if given)."""
    [model] = finetune_many(net, base, [extra], config, [seed])
    return model


def finetune_many(net: PolicyNet, base: LabelSet, extras: Sequence[LabelSet | None],
                  config: FinetuneConfig, seeds: Sequence[int]) -> list[PolicyNet]:
    """``finetune(net, base, extras[m], config, seeds[m])`` for every m, trained together.

    The models are stacked and stepped as one batched network (``torch.bmm``): at our sizes
    (an 18-128-128-2 MLP, 256-row minibatches) per-operator overhead is about half of a step,
    so four models cost about twice one (measured in ``bench/bench_verdict.py``). Each model
    draws its own minibatches (a generator seeded ``seed`` for the base rows, ``seed + 1`` for
    the extra rows), and Adam is elementwise, so the models do not interact: a model trained
    with others equals it trained alone (``finetune``) up to float rounding.
    """
    if len(extras) != len(seeds) or not seeds:
        raise ValueError("finetune_many needs one seed per extra (and at least one model)")
    single_threaded_torch()
    layers = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    m_count = len(seeds)
    params = []
    for layer in layers:
        w = layer.weight.detach().T.unsqueeze(0).repeat(m_count, 1, 1).clone()  # (M, in, out)
        b = layer.bias.detach().view(1, 1, -1).repeat(m_count, 1, 1).clone()  # (M, 1, out)
        params += [w.requires_grad_(), b.requires_grad_()]
    opt = torch.optim.Adam(params, lr=config.lr)
    b_t = _tensors(base)
    e_t = [_tensors(e) if e is not None and len(e) else None for e in extras]
    # a model without extra rows gets weightless ones, so every model's minibatch has one size
    # (a zero weight and mask add nothing to its loss or its gradient)
    empty = tuple(torch.zeros((config.extra_batch, *t.shape[1:])) for t in b_t)
    with_extra = any(e is not None for e in e_t)
    # Every minibatch of every update, gathered up front: (updates, models, rows, ...). The
    # generators draw exactly what one draw per update would (a (U, B) randint equals U draws
    # of B), so the rows are the same; gathering once instead of per update and model saves
    # about 30 small tensor operations per step.
    u_count = config.updates
    per_model = []
    for m in range(m_count):
        rows = torch.randint(len(b_t[0]), (u_count, config.base_batch),
                             generator=torch.Generator().manual_seed(seeds[m]))
        part = [t[rows] for t in b_t]
        extra = e_t[m]
        if extra is not None:
            extra_rows = torch.randint(len(extra[0]), (u_count, config.extra_batch),
                                       generator=torch.Generator().manual_seed(seeds[m] + 1))
            part = [torch.cat([x, t[extra_rows]], dim=1) for x, t in zip(part, extra,
                                                                          strict=True)]
        elif with_extra:
            part = [torch.cat([x, t.unsqueeze(0).expand(u_count, *t.shape)], dim=1)
                    for x, t in zip(part, empty, strict=True)]
        per_model.append(part)
    batches = [torch.stack([p[i] for p in per_model], dim=1) for i in range(4)]
    for u in range(u_count):
        obs, tgt, mask, w = (b[u] for b in batches)
        h = obs
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i < len(params) - 2:
                h = _Tanh.apply(h)
        err = ((_Tanh.apply(h) - tgt) ** 2 * mask).sum(dim=2)  # (M, B)
        loss = ((err * w).sum(dim=1) / w.sum(dim=1).clamp_min(1e-8)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    out = []
    for m in range(m_count):
        model = copy.deepcopy(net)
        with torch.no_grad():
            for k, layer in enumerate([x for x in model.body if isinstance(x, torch.nn.Linear)]):
                layer.weight.copy_(params[2 * k][m].T)
                layer.bias.copy_(params[2 * k + 1][m, 0])
        out.append(model.eval())
    return out
