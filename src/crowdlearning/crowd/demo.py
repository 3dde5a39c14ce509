"""``crowdlearning demo``: a simulated crowd improves the model, round by round, on one machine.

Default: the whole loop (``crowd.market``): play, verdicts, ledger, payouts on the local Hedera
network; the report has the learning curve and earnings per persona.

``--accept-all``: plain DAgger without verdicts (every contribution is merged), with the
behaviour-cloning baseline at the same label budgets: the proof that the crowd's DAgger data beats
expert demonstrations label for label.

Both write ``report.md`` and ``learning_curve.png`` into ``--out``; ``--json PATH`` also writes
the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crowdlearning.crowd.demo_cli import demo_main
from crowdlearning.crowd.simulation import PLAY_TRACK_POOL, make_crowd, play_round
from crowdlearning.evaluation.suite import EvalSuite, evaluate
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    INITIAL_UPDATES,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.labels import LabelConfig, LabelSet
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import TrainConfig, fit, new_network
from crowdlearning.policy.network import Policy

__all__ = ["DemoConfig", "demo_main", "run_dagger_demo", "run_from_args"]


@dataclass
class DemoConfig:
    rounds: int = 8  # DAgger rounds (one model version each)
    crowd: dict[str, int] = field(default_factory=lambda: {"expert": 4, "noisy-0.1": 2})
    session_ticks: int = 600  # ticks per session (30 s at 20 Hz)
    eval_tracks: int = 24  # hidden tracks (2 starts each)
    seed: int = 0
    train_updates: int = 1500  # gradient steps per new version
    bc_updates: int = 3000  # gradient steps of each behaviour-cloning baseline model
    bc_seeds: int = 3  # baseline models per budget (their results are averaged)
    baseline: bool = True
    out_dir: Path = Path("var/demo")
    json_path: Path | None = None


def _evaluate(policy: Policy, suite: EvalSuite) -> dict:
    return evaluate(policy, suite).summary()


def run_dagger_demo(cfg: DemoConfig) -> dict:
    """Run the rounds and the baseline; return the report as plain data."""
    rng = np.random.default_rng(cfg.seed)
    suite = EvalSuite.hidden(cfg.eval_tracks)
    work = cfg.out_dir / f"run-{int(time.time())}"
    trainer = DaggerTrainer(ModelRegistry(work / "models"), AggregatedDataset(work / "dataset"),
                            labels=LabelConfig(), train=TrainConfig(updates=cfg.train_updates,
                                                                     seed=cfg.seed))
    net, training = train_initial_model(cfg.seed)
    demo = expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)
    trainer.start(net, demo, training)
    base_labels = len(demo)
    curve = [{"version": 0, "labels": base_labels, **_evaluate(trainer.policy(), suite)}]
    crowd = make_crowd(cfg.crowd, rng)
    per_persona: dict[str, dict[str, int]] = {}
    labels_so_far = base_labels
    for r in tqdm(range(cfg.rounds), desc="DAgger rounds", unit="round"):
        version = trainer.registry.champion or 0
        contributions = play_round(trainer.policy(), version, crowd, rng, round_id=f"r{r}",
                                   max_ticks=cfg.session_ticks)
        labels = trainer.labels_for(contributions)
        for c, lab in zip(contributions, labels, strict=True):
            stats = per_persona.setdefault(c.contributor_id.rsplit("-", 1)[0],
                                           {"contributions": 0, "labels": 0})
            stats["contributions"] += 1
            stats["labels"] += len(lab)
        labels_so_far += sum(len(lab) for lab in labels)
        meta = trainer.merge(contributions)
        curve.append({"version": meta.version, "labels": labels_so_far,
                      **_evaluate(trainer.policy(), suite)})
    baseline = _bc_baseline(cfg, suite, [p["labels"] for p in curve]) if cfg.baseline else []
    return {"config": {**asdict(cfg), "out_dir": str(cfg.out_dir),
                       "json_path": str(cfg.json_path) if cfg.json_path else None,
                       "initial_updates": INITIAL_UPDATES, "eval_runs": suite.num_runs},
            "dagger": curve, "behaviour_cloning": baseline, "personas": per_persona,
            "work_dir": str(work)}


def _bc_baseline(cfg: DemoConfig, suite: EvalSuite, budgets: Sequence[int]) -> list[dict]:
    """Behaviour cloning from scratch on exactly ``budget`` expert-driven labels, per budget.

    The labels are collected the way the crowd's are: the initial demonstrations, then sessions
    of ``session_ticks`` on random play tracks from random starts, in order, with the expert
    driving (its own states: no DAgger). So both curves see the same kind and number of labels.
    """
    rng = np.random.default_rng(cfg.seed + 7)
    sessions = int(np.ceil(max(budgets) / cfg.session_ticks)) + 1
    seeds = rng.choice(PLAY_TRACK_POOL, size=sessions, replace=True)
    starts = [float(rng.uniform(0, 400)) for _ in seeds]
    parts = [expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)]
    for seed, start in zip(seeds, starts, strict=True):
        parts.append(expert_demonstrations([seed], cfg.session_ticks, start_s_m=[start],
                                           source="bc"))
    pool = LabelSet.concat(parts)
    out = []
    for budget in tqdm(budgets, desc="BC baseline", unit="budget"):
        data = pool.select(np.arange(min(budget, len(pool))))
        runs = []
        for k in range(cfg.bc_seeds):
            seed = cfg.seed + k
            net = fit(new_network(seed), data, TrainConfig(updates=cfg.bc_updates, seed=seed))
            runs.append(_evaluate(Policy(net), suite))
        point = {key: float(np.mean([r[key] for r in runs]))
                 for key in ("lap_completion", "mean_progress", "exit_rate")}
        point["lap_completion_per_seed"] = [r["lap_completion"] for r in runs]
        out.append({"labels": int(budget), **point})
    return out


def write_report(report: dict, out_dir: Path, json_path: Path | None = None) -> list[Path]:
    """``report.md`` and ``learning_curve.png`` in ``out_dir``; JSON too if asked."""
    from crowdlearning.crowd.report import learning_curve_png, markdown_report

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [learning_curve_png(report, out_dir / "learning_curve.png")]
    md = out_dir / "report.md"
    md.write_text(markdown_report(report))
    paths.append(md)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2))
        paths.append(json_path)
    return paths


def run_from_args(args: argparse.Namespace) -> int:
    """Run the demo ``crowd.demo_cli``'s parser asked for; write and name the reports."""
    report = _dagger(args) if args.accept_all else _market(args)
    for path in write_report(report, args.out, args.json_path):
        print(f"wrote {path}")
    return 0


def _apply_common(cfg: object, args: argparse.Namespace) -> None:
    """The options both demos share, where given on the command line."""
    for name, value in (("rounds", args.rounds), ("session_ticks", args.ticks),
                        ("eval_tracks", args.eval_tracks), ("crowd", args.crowd)):
        if value is not None:
            setattr(cfg, name, value)


def _dagger(args: argparse.Namespace) -> dict:
    cfg = DemoConfig(seed=args.seed, baseline=not args.no_baseline, bc_seeds=args.bc_seeds,
                     out_dir=args.out, json_path=args.json_path)
    _apply_common(cfg, args)
    report = run_dagger_demo(cfg)
    first, last = report["dagger"][0], report["dagger"][-1]
    print(f"lap completion on hidden tracks: {first['lap_completion']:.0%} (v0) -> "
          f"{last['lap_completion']:.0%} (v{last['version']}) with {last['labels']} labels")
    return report


def _market(args: argparse.Namespace) -> dict:
    from crowdlearning.crowd.market import MarketConfig, run_market

    cfg = MarketConfig(seed=args.seed)
    _apply_common(cfg, args)
    if getattr(args, "missions", None) is not None:
        cfg.missions = args.missions
    cfg.aa_placebos = getattr(args, "aa", 0) or 0
    report = run_market(cfg, args.out / f"run-{int(time.time())}")
    for name, book in report["personas"].items():
        print(f"{name:<14} contributions {book['contributions']:>3}  paid {book['paid']:>3}  "
              f"penalized {book['penalized']:>3}  net {book['net_tinybar'] / 1e8:+.4f} HBAR")
    for line in market_rounds_text(report):
        print(line)
    first, last = report["learning_curve"][0], report["learning_curve"][-1]
    print(f"champion lap completion: {first['lap_completion']:.0%} -> "
          f"{last['lap_completion']:.0%} (v{last['version']})")
    return report


def market_rounds_text(report: dict) -> list[str]:
    """Per round: the champion after it (version, lap completion and mean lap time on the
    easy learning-curve suite and on the unlocked families, the unlocked families), whether a
    candidate was promoted (with both lap times on the promotion suite), and each persona's
    earnings per run that round (HBAR)."""
    curve = report["learning_curve"]
    personas = sorted({n for p in curve for n in p.get("hbar_per_run", {})})
    lines = ["round champion  laps(easy) lap s  laps(unlocked) lap s  laps(mastered)  frontier"
             "      promoted (lap s on the laps both finish: champion->candidate)"]
    for p in curve:
        promo = p.get("promotion")
        if promo is None:
            verdict = "-" if p["round"] == 0 else "nothing merged"
        else:
            cand, champ = promo["candidate_common_lap_s"], promo["champion_common_lap_s"]
            times = (f" {champ:.1f}->{cand:.1f} s" if cand is not None and champ is not None
                     else "")
            verdict = (f"v{promo['candidate']} yes{times}" if promo["promoted"]
                       else f"v{promo['candidate']} no{times}")
            if promo.get("throttle_bias"):
                verdict += f" (throttle {promo['throttle_bias']:+.3f})"
        unlocked = p.get("unlocked") or ["easy"]
        lines.append(f"{p['round']:>5} v{p['version']:<7} {p['lap_completion']:>9.1%} "
                     f"{_secs(p['mean_lap_time_s'])} {p['unlocked_lap_completion']:>14.1%} "
                     f"{_secs(p['unlocked_mean_lap_time_s'])} "
                     f"{_pct(p.get('mastered_lap_completion'))}  {unlocked[-1]:<13} {verdict}")
    checks = [p["aa"] for p in curve if p.get("aa")]
    for aa in checks:
        lines.append(f"A/A v{aa['version']}: {aa['placebos']} placebos, improved "
                     f"{aa['improved']}, worse {aa['worse']}")
    lines.append("earnings per run by round [HBAR] (the champion the round was played on):")
    lines.append("round  " + " ".join(f"{n[:14]:>14}" for n in personas))
    for p in curve[1:]:
        cells = " ".join(f"{p['hbar_per_run'].get(n, 0.0):>+14.4f}" for n in personas)
        lines.append(f"{p['round']:>5}  {cells}")
    return lines


def _pct(value: float | None) -> str:
    return f"{'-':>15}" if value is None else f"{value:>15.1%}"


def _secs(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.1f}"
