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
from crowdlearning.policy.network import PolicyNet, single_threaded_blas, single_threaded_torch

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


class _Stack:
    """The weights of M copies of an MLP, stacked, in one flat float32 buffer (with its gradient
    and Adam's moments beside it): ``weights[k]`` is (M, in, out), ``biases[k]`` (M, 1, out),
    views into ``flat``; ``grad_w`` / ``grad_b`` the same into ``grad``. One buffer makes Adam
    six vectorized operations per step, whatever the number of layers and models."""

    def __init__(self, layers: Sequence[torch.nn.Linear], models: int) -> None:
        shapes = []
        for layer in layers:
            shapes += [(models, layer.in_features, layer.out_features),
                       (models, 1, layer.out_features)]
        sizes = [int(np.prod(s)) for s in shapes]
        self.flat = np.zeros(sum(sizes), np.float32)
        self.grad = np.zeros_like(self.flat)
        views, grads, offset = [], [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            views.append(self.flat[offset:offset + size].reshape(shape))
            grads.append(self.grad[offset:offset + size].reshape(shape))
            offset += size
        self.weights, self.biases = views[0::2], views[1::2]
        self.grad_w, self.grad_b = grads[0::2], grads[1::2]
        for k, layer in enumerate(layers):
            self.weights[k][:] = layer.weight.detach().numpy().T
            self.biases[k][:] = layer.bias.detach().numpy()


class _Step:
    """One Adam step of the stacked MLP on a minibatch, backpropagated by hand.

    Why not autograd: the network is three affine layers and tanh, whose backward is four lines;
    autograd's graph, torch's elementwise kernels (its tanh took 372 us on a (4, 256, 128)
    activation, numpy's 50 us) and the per-parameter optimizer were 40% of a fine-tune. Here the
    products go into preallocated buffers (``wide`` below says through which library),
    everything elementwise runs through numpy in place, and Adam (torch's formula: betas 0.9 /
    0.999, eps 1e-8, bias-corrected) runs on the one flat buffer. The same weights up to float
    rounding (``tests/learning/test_finetune.py`` holds it against autograd and
    ``torch.optim.Adam``); the speed-up is in ``docs/benchmarks.md``, "Verdict latency".
    The loss of model m is ``sum_b w_b * sum_j mask_bj (tanh(out)_bj - target_bj)**2 / sum_b
    w_b``, summed over the models (they share no weights, so each gets its own gradient).
    """

    BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
    WIDE = 32  # layers at least this wide both ways multiply through torch

    def __init__(self, stack: _Stack, rows: int, lr: float) -> None:
        self.stack, self.lr, self.count = stack, lr, 0
        models = stack.weights[0].shape[0]
        # acts[k]: input of layer k (acts[0] is the minibatch's observations); acts[-1] the output
        self.acts = [np.empty((models, rows, w.shape[2]), np.float32) for w in stack.weights]
        self.deltas = [np.empty_like(a) for a in self.acts]
        self.moment1 = np.zeros_like(stack.flat)
        self.moment2 = np.zeros_like(stack.flat)
        self.scratch = np.empty_like(stack.flat)
        self.t_weights = [torch.from_numpy(w) for w in stack.weights]
        self.t_biases = [torch.from_numpy(b) for b in stack.biases]
        self.t_acts = [torch.from_numpy(a) for a in self.acts]
        self.t_deltas = [torch.from_numpy(d) for d in self.deltas]
        self.t_grad_w = [torch.from_numpy(g) for g in stack.grad_w]
        # Which layers multiply through torch (MKL; more threads with ``use_torch_threads``) and
        # which through numpy (its BLAS on one thread): MKL's batched product is slow on thin
        # matrices (a (4, 256, 128) x (4, 128, 2) product: 145 us, numpy's 9 us; the 18-wide
        # input layer 68 us against 47 us), and about numpy's speed on the square one.
        self.wide = [min(w.shape[1], w.shape[2]) >= self.WIDE for w in stack.weights]

    def __call__(self, obs: np.ndarray, target: np.ndarray, mask: np.ndarray,
                 weight: np.ndarray) -> None:
        s, n = self.stack, len(self.acts)
        inputs, t_inputs = [obs, *self.acts[:-1]], [torch.from_numpy(obs), *self.t_acts[:-1]]
        for k in range(n):  # forward: a = tanh(in @ W + b), the output squashed too
            if self.wide[k]:
                torch.baddbmm(self.t_biases[k], t_inputs[k], self.t_weights[k],
                              out=self.t_acts[k])
            else:
                np.matmul(inputs[k], s.weights[k], out=self.acts[k])
                self.acts[k] += s.biases[k]
            np.tanh(self.acts[k], out=self.acts[k])
        y, delta = self.acts[-1], self.deltas[-1]
        # d loss / d pre-activation of the output: 2 (y - t) mask w / sum(w), times tanh' = 1 - y^2
        scale = 2.0 / np.maximum(weight.sum(axis=1, dtype=np.float32), np.float32(1e-8))
        np.subtract(y, target, out=delta)
        delta *= mask
        delta *= (weight * scale[:, None])[:, :, None]
        np.multiply(y, y, out=y)
        np.subtract(np.float32(1.0), y, out=y)
        delta *= y
        for k in range(n - 1, -1, -1):  # backward
            if self.wide[k]:
                torch.bmm(t_inputs[k].transpose(1, 2), self.t_deltas[k], out=self.t_grad_w[k])
            else:
                np.matmul(inputs[k].transpose(0, 2, 1), self.deltas[k], out=s.grad_w[k])
            s.grad_b[k][:, 0] = self.deltas[k].sum(axis=1)
            if k == 0:
                break
            below, a = self.deltas[k - 1], self.acts[k - 1]
            if self.wide[k]:
                torch.bmm(self.t_deltas[k], self.t_weights[k].transpose(1, 2),
                          out=self.t_deltas[k - 1])
            else:
                np.matmul(self.deltas[k], s.weights[k].transpose(0, 2, 1), out=below)
            np.multiply(a, a, out=a)  # a is spent: its gradient was taken above
            np.subtract(np.float32(1.0), a, out=a)
            below *= a
        self._adam()

    def _adam(self) -> None:
        s, m1, m2, tmp = self.stack, self.moment1, self.moment2, self.scratch
        self.count += 1
        b1, b2 = self.BETA1, self.BETA2
        m1 *= np.float32(b1)
        np.multiply(s.grad, np.float32(1 - b1), out=tmp)
        m1 += tmp
        m2 *= np.float32(b2)
        np.multiply(s.grad, s.grad, out=tmp)
        tmp *= np.float32(1 - b2)
        m2 += tmp
        correction1 = 1 - b1 ** self.count
        correction2 = 1 - b2 ** self.count
        np.sqrt(m2, out=tmp)
        tmp *= np.float32(1 / np.sqrt(correction2))
        tmp += np.float32(self.EPS)
        np.divide(m1, tmp, out=tmp)
        tmp *= np.float32(self.lr / correction1)
        s.flat -= tmp


def _tensors(data: LabelSet) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(np.ascontiguousarray(data.observations, np.float32)),
            torch.from_numpy(np.ascontiguousarray(data.targets, np.float32)),
            torch.from_numpy(data.mask.astype(np.float32)),
            torch.from_numpy(np.ascontiguousarray(data.weights, np.float32)))


def _minibatches(base: LabelSet, extras: Sequence[LabelSet | None], config: FinetuneConfig,
                 seeds: Sequence[int]) -> list[np.ndarray]:
    """Every minibatch of every update and model, gathered up front: observations, targets,
    mask and weights, each (updates, models, rows, ...) float32.

    The generators draw exactly what one draw per update would (a (U, B) randint equals U draws
    of B), so the rows are those of drawing per step; gathering once saves about 30 small
    operations per step. A model without extra rows gets weightless ones, so every model's
    minibatch has one size (a zero weight and mask add nothing to its loss or its gradient).
    """
    b_t = _tensors(base)
    e_t = [_tensors(e) if e is not None and len(e) else None for e in extras]
    empty = tuple(torch.zeros((config.extra_batch, *t.shape[1:])) for t in b_t)
    with_extra = any(e is not None for e in e_t)
    u_count = config.updates
    per_model = []
    for seed, extra in zip(seeds, e_t, strict=True):
        rows = torch.randint(len(b_t[0]), (u_count, config.base_batch),
                             generator=torch.Generator().manual_seed(seed))
        part = [t[rows] for t in b_t]
        if extra is not None:
            extra_rows = torch.randint(len(extra[0]), (u_count, config.extra_batch),
                                       generator=torch.Generator().manual_seed(seed + 1))
            part = [torch.cat([x, t[extra_rows]], dim=1) for x, t in zip(part, extra,
                                                                          strict=True)]
        elif with_extra:
            part = [torch.cat([x, t.unsqueeze(0).expand(u_count, *t.shape)], dim=1)
                    for x, t in zip(part, empty, strict=True)]
        per_model.append(part)
    return [torch.stack([p[i] for p in per_model], dim=1).contiguous().numpy()
            for i in range(4)]


def finetune(net: PolicyNet, base: LabelSet, extra: LabelSet | None, config: FinetuneConfig,
             seed: int) -> PolicyNet:
    """A fine-tuned copy of ``net`` on ``base`` (+ ``extra`` in every minibatch if given)."""
    [model] = finetune_many(net, base, [extra], config, [seed])
    return model


def finetune_many(net: PolicyNet, base: LabelSet, extras: Sequence[LabelSet | None],
                  config: FinetuneConfig, seeds: Sequence[int]) -> list[PolicyNet]:
    """``finetune(net, base, extras[m], config, seeds[m])`` for every m, trained together.

    The models are stacked and stepped as one batched network (``_Step``: batched products, a
    hand-written backward): at our sizes (an 18-128-128-2 MLP, 256-row minibatches) four
    models cost about twice one (measured in ``bench/bench_verdict.py``). Each model
    draws its own minibatches (a generator seeded ``seed`` for the base rows, ``seed + 1`` for
    the extra rows), and Adam is elementwise, so the models do not interact: a model trained
    with others equals it trained alone (``finetune``) up to float rounding.
    """
    if len(extras) != len(seeds) or not seeds:
        raise ValueError("finetune_many needs one seed per extra (and at least one model)")
    single_threaded_torch()
    single_threaded_blas()
    layers = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    stack = _Stack(layers, len(seeds))
    obs, tgt, mask, w = _minibatches(base, extras, config, seeds)
    step = _Step(stack, obs.shape[2], config.lr)
    for u in range(config.updates):
        step(obs[u], tgt[u], mask[u], w[u])
    out = []
    for m in range(len(seeds)):
        model = copy.deepcopy(net)
        with torch.no_grad():
            for k, layer in enumerate([x for x in model.body if isinstance(x, torch.nn.Linear)]):
                layer.weight.copy_(torch.from_numpy(stack.weights[k][m].T.copy()))
                layer.bias.copy_(torch.from_numpy(stack.biases[k][m, 0].copy()))
        out.append(model.eval())
    return out
