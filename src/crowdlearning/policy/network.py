"""The policy network and its batched inference.

An MLP from the documented observation (``crowdlearning.sim.observation``) to the action
(steer, throttle), each squashed to [-1, 1] by tanh. Small on purpose: one batched call serves
thousands of cars per tick on a CPU.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

__all__ = ["Architecture", "Policy", "PolicyNet", "single_threaded_blas", "single_threaded_torch",
           "use_torch_threads"]

_blas_pinned = False


_torch_threads = 1  # this process's torch threads (``use_torch_threads``)


def use_torch_threads(count: int) -> None:
    """Let torch use ``count`` threads in this process from now on (1 unless said otherwise).

    Only for a process that owns its cores: a judge on a machine of its own
    (``CROWDLEARNING_JUDGE_THREADS``), where the fine-tune, the bulk of a verdict, runs 1.7x
    faster on 2 threads with bit-identical weights (docs/benchmarks.md, "verdict latency").
    """
    global _torch_threads
    if count < 1:
        raise ValueError(f"torch threads must be >= 1, got {count}")
    _torch_threads = count
    torch.set_num_threads(count)


def single_threaded_torch() -> None:
    """Run torch on this process's threads: one, unless ``use_torch_threads`` said otherwise
    (idempotent).

    Our batches are small (an 18-128-128-2 MLP); a thread pool only adds synchronisation, and on
    a shared 2-core machine its spinning fights the simulator: the hidden-suite evaluation took
    4.5 s with 2 threads against 0.19 s with 1 under load (``/tmp``-free figure in
    docs/benchmarks.md, "verdict latency"). Process-wide on purpose: the platform is the process.
    """
    if torch.get_num_threads() != _torch_threads:
        torch.set_num_threads(_torch_threads)


def single_threaded_blas() -> None:
    """Run the BLAS libraries loaded in this process (numpy's OpenBLAS) on one thread, once per
    process. An explicit ``OPENBLAS_NUM_THREADS`` wins.

    ``Policy``'s numpy path multiplies through numpy's OpenBLAS, which by default starts a thread
    per core: at 100 rows that is 84 us of wall time but 153 us of CPU, the second thread
    spinning against the game loop's own (issue 13; 100 players: server CPU 119% -> 17%,
    docs/benchmarks.md). The ``crowdlearning`` command sets ``OPENBLAS_NUM_THREADS=1`` before
    numpy loads (``cli.THREAD_VARIABLES``); this does the same at run time for every other way
    in (``serve_main`` called directly, tests, embedding), through ``threadpoolctl``. A BLAS
    loaded later (scipy's) is not limited.
    """
    global _blas_pinned
    if _blas_pinned or os.environ.get("OPENBLAS_NUM_THREADS"):
        return
    _blas_pinned = True
    threadpool_limits(limits=1, user_api="blas")  # kept for the process: never restored


@dataclass(frozen=True)
class Architecture:
    """Shape of the network; stored in every checkpoint so weights are never misread."""

    obs_dim: int = 18
    hidden: tuple[int, ...] = (128, 128)
    act_dim: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        return cls(obs_dim=int(data["obs_dim"]), hidden=tuple(int(h) for h in data["hidden"]),
                   act_dim=int(data["act_dim"]))


class PolicyNet(nn.Module):
    """MLP with tanh-squashed outputs."""

    def __init__(self, arch: Architecture | None = None) -> None:
        super().__init__()
        self.arch = arch or Architecture()
        layers: list[nn.Module] = []
        width = self.arch.obs_dim
        for h in self.arch.hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, self.arch.act_dim))
        self.body = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(obs))


class Policy:
    """Batched, gradient-free inference: numpy observations in, numpy actions out.

    The weights are snapshotted at construction. Small batches run through numpy: torch's
    per-operator overhead dominates there (measured at 48 rows: 227 us per call in torch, 34 us in
    numpy; at 1,000 rows torch wins, 1.1 ms against 3.1 ms), so the evaluation suite and the
    replays use numpy and the game server's big batches use torch. Each path is deterministic;
    they agree to ~1e-7.
    """

    NUMPY_MAX_ROWS = 256

    def __init__(self, net: PolicyNet) -> None:
        self.net = net.eval()
        single_threaded_torch()
        single_threaded_blas()
        self._layers = [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
                        for m in self.net.body if isinstance(m, nn.Linear)]

    @property
    def arch(self) -> Architecture:
        return self.net.arch

    def act(self, observations: np.ndarray) -> np.ndarray:
        """Actions (n, 2) float64 for observations (n, obs_dim)."""
        obs = np.asarray(observations, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.arch.obs_dim:
            raise ValueError(f"observations must have shape (n, {self.arch.obs_dim}), "
                             f"got {obs.shape}")
        if len(obs) <= self.NUMPY_MAX_ROWS:
            return self._numpy_forward(obs).astype(np.float64)
        with torch.inference_mode():
            return self.net(torch.from_numpy(obs)).numpy().astype(np.float64)

    def _numpy_forward(self, obs: np.ndarray) -> np.ndarray:
        h = obs
        last = len(self._layers) - 1
        for i, (weight, bias) in enumerate(self._layers):
            h = h @ weight + bias
            if i < last:
                np.tanh(h, out=h)
        return np.tanh(h)
