# ruff: noqa: E402  (thread counts are set before numpy and torch load)
"""Time from submission to verdict for 60-second contributions, on this machine.

A crowd of scripted players (experts, noisy, late, lazy, random, adversary) each plays a
60-second session (1,200 ticks) against the initial model; every contribution is then submitted
to the verdict path: screening (rate limit, duplicates, bit-exact replay of the action log) and
the judge (paired with/twin fine-tunes, both models of each pair driven in one simulator batch,
sequential test on the hidden suite). Measured per contribution, after the champion's judge is
built (that one-off cost, the placebo null shared by every contribution judged against the
champion, is printed separately).

Same run, the alternatives: the fine-tune stepped by autograd and ``torch.optim.Adam`` instead of
the hand-written backward (what the judge did until 2026-11-29; same placebo null), and one
fine-tune seed instead of two (half the work, twice the training variance). Prints median,
95th percentile, CPU seconds, the decisions, the ratios and the load average.

Run: ``.venv/bin/python bench/bench_verdict.py [--players 3]`` (targets: median <= 1 s,
p95 <= 3 s on the 2-core machine).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread each: the judge runs on one core

import argparse
import contextlib
import copy
import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch

from crowdlearning.crowd.personas import PERSONAS
from crowdlearning.crowd.simulation import make_crowd, play_round
from crowdlearning.evaluation import verdict as verdict_module
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.verdict import Judge, VerdictConfig
from crowdlearning.learning import finetune
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.policy.network import Policy, use_torch_threads


def _timed(judge: Judge, screener: Screener, contributions: list
           ) -> tuple[list[float], list, list[float]]:
    """Per contribution: wall seconds, decision, CPU seconds of this process."""
    times, decisions, cpu = [], [], []
    for c in contributions:
        start, start_cpu = time.perf_counter(), time.process_time()
        reason = screener.check(c)
        verdict = judge.rejected(c, reason) if reason else judge.judge(c)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        decisions.append(verdict.decision.value)
    return times, decisions, cpu


class _Tanh(torch.autograd.Function):
    """tanh through numpy's kernel with its gradient (what the autograd fine-tune used)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def]
        y = torch.from_numpy(np.tanh(x.detach().contiguous().numpy()))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (y,) = ctx.saved_tensors
        return grad - grad * y * y


def _autograd_finetune_many(net, base, extras, config, seeds):  # type: ignore[no-untyped-def]
    """The fine-tune as it was until 2026-11-29: the same minibatches, the stacked models
    stepped by autograd and ``torch.optim.Adam`` (the alternative this benchmark measures)."""
    finetune.single_threaded_torch()
    layers = [m for m in net.body if isinstance(m, torch.nn.Linear)]
    m_count = len(seeds)
    params = []
    for layer in layers:
        w = layer.weight.detach().T.unsqueeze(0).repeat(m_count, 1, 1).clone()
        b = layer.bias.detach().view(1, 1, -1).repeat(m_count, 1, 1).clone()
        params += [w.requires_grad_(), b.requires_grad_()]
    opt = torch.optim.Adam(params, lr=config.lr)
    batches = [torch.from_numpy(x) for x in finetune._minibatches(base, extras, config, seeds)]
    for u in range(config.updates):
        obs, tgt, mask, w = (x[u] for x in batches)
        h = obs
        for i in range(0, len(params), 2):
            h = torch.baddbmm(params[i + 1], h, params[i])
            if i < len(params) - 2:
                h = _Tanh.apply(h)
        err = ((_Tanh.apply(h) - tgt) ** 2 * mask).sum(dim=2)
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


@contextlib.contextmanager
def _autograd() -> Iterator[None]:
    """The judge's fine-tunes through ``_autograd_finetune_many``."""
    saved = verdict_module.finetune_many
    verdict_module.finetune_many = _autograd_finetune_many
    try:
        yield
    finally:
        verdict_module.finetune_many = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=3, help="players per persona")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the judge (CROWDLEARNING_JUDGE_THREADS): 1 "
                        "beside a game server, the machine's cores for a judge of its own")
    args = parser.parse_args()
    use_torch_threads(args.threads)
    net, _ = train_initial_model(args.seed)
    demo = expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)
    rng = np.random.default_rng(args.seed)
    catalog: dict = {}
    crowd = make_crowd({p: args.players for p in PERSONAS}, rng)
    contributions = play_round(Policy(net), 0, crowd, rng, round_id="bench", max_ticks=1200,
                               catalog=catalog)
    ticks = [c.num_ticks for c in contributions]
    print(f"{len(contributions)} contributions, {np.mean(ticks):.0f} ticks on average "
          f"(1200 = 60 s; adversaries and random players crash sooner)")
    setups = {}
    results = {}
    loads = {}
    ours_judge = None
    for name, config in (("2 seeds (ours)", VerdictConfig()),
                         ("2 seeds, autograd", VerdictConfig()),
                         ("1 seed", replace(VerdictConfig(), finetune_seeds=1))):
        kernels = _autograd() if "autograd" in name else contextlib.nullcontext()
        with kernels:
            start = time.perf_counter()
            # the autograd judge reuses our placebo null: its verdicts' time is the question
            judge = Judge(net, 0, demo, config=config,
                          null_diffs_m=ours_judge.null_diffs_m if "autograd" in name else None)
            ours_judge = ours_judge or judge
            setups[name] = time.perf_counter() - start
            results[name] = _timed(judge, Screener(catalog.__getitem__), contributions)
        loads[name] = os.getloadavg()[0]
    print(f"\non {os.cpu_count()} cores, {args.threads} torch thread(s); wall and CPU seconds per "
          "verdict (CPU: this process)")
    print(f"{'judge':<22} {'setup s':>8} {'median s':>9} {'p95 s':>7} {'max s':>7} "
          f"{'CPU med s':>10} {'load':>5}")
    for name, (times, _, cpu) in results.items():
        print(f"{name:<22} {setups[name]:>8.2f} {np.median(times):>9.2f} "
              f"{np.percentile(times, 95):>7.2f} {max(times):>7.2f} {np.median(cpu):>10.2f} "
              f"{loads[name]:>5.1f}")
    ours, before, alt = (np.asarray(results[k][0]) for k in results)
    print(f"\nratio autograd / ours: median {np.median(before) / np.median(ours):.2f}x, "
          f"CPU {np.median(results['2 seeds, autograd'][2]) / np.median(results['2 seeds (ours)'][2]):.2f}x; "  # noqa: E501
          f"same decision {sum(a == b for a, b in zip(results['2 seeds (ours)'][1], results['2 seeds, autograd'][1], strict=True))}"  # noqa: E501
          f" of {len(contributions)}")
    print(f"ratio 1-seed / ours: median {np.median(alt) / np.median(ours):.2f}x, "
          f"p95 {np.percentile(alt, 95) / np.percentile(ours, 95):.2f}x")
    decisions = results["2 seeds (ours)"][1]
    for persona in PERSONAS:
        mine = [d for c, d in zip(contributions, decisions, strict=True)
                if c.contributor_id.rsplit("-", 1)[0] == persona]
        print(f"  {persona:<10} {', '.join(mine)}")
    med, p95 = np.median(ours), np.percentile(ours, 95)
    print(f"\ntargets: median <= 1 s {'MET' if med <= 1 else 'NOT MET'}, "
          f"p95 <= 3 s {'MET' if p95 <= 3 else 'NOT MET'}")


if __name__ == "__main__":
    main()
