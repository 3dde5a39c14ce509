"""Supervised training of the policy on label rows: behaviour cloning and DAgger rounds alike.

Loss: weighted, masked mean squared error between the network's action and the label (masked
dimensions, e.g. a throttle the player never touched, contribute nothing). Deterministic from
``TrainConfig.seed`` on a CPU (single thread, deterministic algorithms).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch

from crowdlearning.learning.labels import LabelSet
from crowdlearning.policy.network import Architecture, PolicyNet, single_threaded_torch

__all__ = ["TrainConfig", "fit", "new_network"]


@dataclass(frozen=True)
class TrainConfig:
    updates: int = 1500  # gradient steps
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def new_network(seed: int, arch: Architecture | None = None) -> PolicyNet:
    """A freshly initialised network, reproducible from ``seed``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return PolicyNet(arch)


def fit(net: PolicyNet, data: LabelSet, config: TrainConfig | None = None) -> PolicyNet:
    """A trained copy of ``net`` (``net`` itself is left untouched)."""
    cfg = config or TrainConfig()
    model = copy.deepcopy(net).train()
    if len(data) == 0 or cfg.updates == 0:
        return model.eval()
    obs = torch.from_numpy(np.ascontiguousarray(data.observations, np.float32))
    target = torch.from_numpy(np.ascontiguousarray(data.targets, np.float32))
    mask = torch.from_numpy(data.mask.astype(np.float32))
    weight = torch.from_numpy(np.ascontiguousarray(data.weights, np.float32))
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    single_threaded_torch()
    for _ in range(cfg.updates):
        rows = torch.randint(len(obs), (min(cfg.batch_size, len(obs)),), generator=gen)
        err = (model(obs[rows]) - target[rows]) ** 2 * mask[rows]
        loss = (err.sum(dim=1) * weight[rows]).sum() / weight[rows].sum().clamp_min(1e-8)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()
