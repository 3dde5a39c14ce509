"""Paired fine-tuning: the champion trained with and without a contribution, same randomness.

Both runs draw the *same* minibatches from the champion's data (one generator seeded with
``seed``); the run "with" a contribution adds ``extra_batch`` rows of it to every minibatch
(drawn from a second generator). So the two models differ by the contribution's data alone, not
by training noise, and the run "without" is shared by every contribution judged against the same
champion and seed. Deterministic on a CPU (single thread).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch

from crowdlearning.learning.labels import LabelSet
from crowdlearning.policy.network import PolicyNet, single_threaded_torch

__all__ = ["FinetuneConfig", "finetune"]


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


def _tensors(data: LabelSet) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(np.ascontiguousarray(data.observations, np.float32)),
            torch.from_numpy(np.ascontiguousarray(data.targets, np.float32)),
            torch.from_numpy(data.mask.astype(np.float32)),
            torch.from_numpy(np.ascontiguousarray(data.weights, np.float32)))


def finetune(net: PolicyNet, base: LabelSet, extra: LabelSet | None, config: FinetuneConfig,
             seed: int) -> PolicyNet:
    """A fine-tuned copy of ``net`` on ``base`` (+ ``extra`` in every minibatch if given)."""
    model = copy.deepcopy(net).train()
    b = _tensors(base)
    e = _tensors(extra) if extra is not None and len(extra) else None
    g_base = torch.Generator().manual_seed(seed)
    g_extra = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    single_threaded_torch()
    for _ in range(config.updates):
        rows = torch.randint(len(b[0]), (config.base_batch,), generator=g_base)
        obs, tgt, mask, w = (t[rows] for t in b)
        if e is not None:
            extra_rows = torch.randint(len(e[0]), (config.extra_batch,), generator=g_extra)
            obs, tgt, mask, w = (torch.cat([x, t[extra_rows]]) for x, t in
                                 zip((obs, tgt, mask, w), e, strict=True))
        err = ((model(obs) - tgt) ** 2 * mask).sum(dim=1)
        loss = (err * w).sum() / w.sum().clamp_min(1e-8)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()
