"""Routing players by uncertainty against uniform track choice, label for label (issue 11.3).

Two DAgger runs from the same initial model, the same seeds and the same budget per round
(``--sessions`` label-mode sessions of at most ``--ticks`` ticks, the scripted ``expert`` persona
through ``SessionBatch``, beta 0.5); they differ only in where each session starts:

- **uniform**: a random play track of the pool and a random start on it;
- **routed**: the champion drives every pool track (no labels), a bootstrap ensemble scores each
  25-m segment (``learning.uncertainty``), and ``learning.routing.plan_missions`` picks the
  starts (3 s before the most unsure / most failed segments, 20% exploration).

After every round both merge their contributions the same way (``DaggerTrainer.merge``: the
champion fine-tuned on all aggregated data) and the new champion drives the hidden suite. Printed
per round: labels so far, lap completion, mean distance before exit; then the labels the routed
run needed to reach the uniform run's final score. Writes a plot and the figures as JSON.
``--ablation`` adds two routed arms that use one half of the score each (spread only, failures
only); ``--families easy tight`` takes half the play pool and half the hidden suite from a
harder family. Figures: ``docs/benchmarks.md``.

    .venv/bin/python bench/routing.py   # 5 seeds, about 4 minutes; --ablation: 4 arms
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from crowdlearning.crowd.personas import make_persona  # noqa: E402
from crowdlearning.crowd.simulation import PLAY_TRACK_POOL, play_track  # noqa: E402
from crowdlearning.evaluation.curriculum import play_seeds  # noqa: E402
from crowdlearning.evaluation.suite import EvalSuite, evaluate  # noqa: E402
from crowdlearning.learning.bootstrap import (  # noqa: E402
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer  # noqa: E402
from crowdlearning.learning.dataset import AggregatedDataset  # noqa: E402
from crowdlearning.learning.registry import ModelRegistry  # noqa: E402
from crowdlearning.learning.routing import RouterConfig, plan_missions  # noqa: E402
from crowdlearning.learning.session import PlayerInputs, SessionBatch, SessionSpec  # noqa: E402
from crowdlearning.learning.train import TrainConfig  # noqa: E402
from crowdlearning.learning.uncertainty import (  # noqa: E402
    EnsembleConfig,
    survey_segments,
    train_ensemble,
)
from crowdlearning.sim.families import family_track  # noqa: E402
from crowdlearning.sim.track import Track  # noqa: E402

# arm -> router (None: uniform starts); the ablations route on one half of the score
ROUTERS: dict[str, RouterConfig | None] = {
    "uniform": None,
    "routed": RouterConfig(),
    "spread-only": RouterConfig(failure_weight=0.0),
    "failures-only": RouterConfig(spread_weight=0.0),
}


@dataclass(frozen=True)
class BenchConfig:
    rounds: int = 6
    sessions: int = 4  # label-mode sessions per round
    ticks: int = 100  # at most 5 s each
    pool: int = 16  # play tracks both arms draw from
    eval_tracks: int = 24  # hidden tracks, 2 starts each
    families: tuple[str, ...] = ("easy",)
    train_updates: int = 1000
    members: int = 5
    beta: float = 0.5


def play_pool(cfg: BenchConfig) -> list[Track]:
    """``cfg.pool`` play tracks split over the families: easy from the simulated crowd's pool,
    the others from their play seeds (``evaluation.curriculum.play_seeds``)."""
    per, extra = divmod(cfg.pool, len(cfg.families))
    tracks = []
    for i, family in enumerate(cfg.families):
        count = per + (i < extra)
        if family == "easy":
            tracks += [play_track(s) for s in PLAY_TRACK_POOL[:count]]
        else:
            tracks += [family_track(family, s) for s in play_seeds(family, count)]
    return tracks


def _starts(arm: str, trainer: DaggerTrainer, tracks: list[Track], cfg: BenchConfig,
            rng: np.random.Generator) -> tuple[list[tuple[int, float]], list[float]]:
    """(track index, start) per session, and each session's mission value (routed only)."""
    router = ROUTERS[arm]
    if router is None:
        picks = [int(rng.integers(len(tracks))) for _ in range(cfg.sessions)]
        return [(t, float(rng.uniform(0.0, tracks[t].length_m))) for t in picks], []
    net, meta = trainer.champion
    members = train_ensemble(net, trainer.dataset.load(),
                             EnsembleConfig(members=cfg.members, seed=meta.version))
    record = survey_segments(trainer.policy(), members, tracks)
    missions = plan_missions(record, cfg.sessions, rng, router)
    return [(m.track_index, m.start_s_m) for m in missions], [m.value for m in missions]


def _play(trainer: DaggerTrainer, tracks: list[Track], starts: list[tuple[int, float]],
          cfg: BenchConfig, round_id: str, rng: np.random.Generator) -> list:
    specs = [SessionSpec(f"expert-{k}", f"{round_id}-{k}", tracks[t], start_s_m=s,
                         beta=cfg.beta) for k, (t, s) in enumerate(starts)]
    version = trainer.registry.champion or 0
    batch = SessionBatch(trainer.policy(), specs, model_version=version, max_ticks=cfg.ticks)
    expert, rows = make_persona("expert", rng), np.arange(len(specs))
    while not batch.done:
        inputs = PlayerInputs.none(len(specs))
        inputs.set_rows(rows, expert.act(batch.frame(), rows))
        batch.advance(inputs)
    return batch.contributions()


def _score(trainer: DaggerTrainer, suite: EvalSuite) -> dict:
    result = evaluate(trainer.policy(), suite)
    return {"lap_completion": result.lap_completion,
            "mean_distance_m": float(result.progress_m.mean()),
            "exit_rate": float(result.exited.mean())}


def run_arm(arm: str, seed: int, cfg: BenchConfig, initial: tuple, suite: EvalSuite,
            work: Path) -> list[dict]:
    """One DAgger run; a row per version (round 0 = the initial model)."""
    net, training, demo = initial
    trainer = DaggerTrainer(ModelRegistry(work / arm / "models"),
                            AggregatedDataset(work / arm / "dataset"),
                            train=TrainConfig(updates=cfg.train_updates, seed=seed))
    trainer.start(net, demo, training)
    tracks = play_pool(cfg)
    rng = np.random.default_rng([seed, 11])  # the same stream for both arms
    labels = 0
    rows = [{"round": 0, "labels": 0, **_score(trainer, suite)}]
    for r in tqdm(range(1, cfg.rounds + 1), desc=f"{arm} seed {seed}", unit="round",
                  leave=False):
        starts, values = _starts(arm, trainer, tracks, cfg, rng)
        contributions = _play(trainer, tracks, starts, cfg, f"{arm}{seed}r{r}", rng)
        labels += sum(len(x) for x in trainer.labels_for(contributions))
        trainer.merge(contributions)
        rows.append({"round": r, "labels": labels, **_score(trainer, suite),
                     "mission_value": float(np.mean(values)) if values else None})
    return rows


def labels_to_reach(rows: list[dict], key: str, target: float) -> int | None:
    """Labels of the first version whose ``key`` reaches ``target`` (None: never)."""
    return next((r["labels"] for r in rows if r[key] >= target - 1e-9), None)


def summarize(runs: dict[str, dict[int, list[dict]]]) -> dict:
    """Per arm, per round: means over seeds; and the labels routed needed for uniform's final."""
    out: dict = {"per_round": {}, "to_reach": []}
    for arm in runs:
        per_seed = list(runs[arm].values())
        out["per_round"][arm] = [
            {k: float(np.mean([s[i][k] for s in per_seed]))
             for k in ("labels", "lap_completion", "mean_distance_m", "exit_rate")}
            for i in range(len(per_seed[0]))]
    means = out["per_round"]
    out["mean_curve"] = {"uniform_labels": means["uniform"][-1]["labels"]}
    for key in ("lap_completion", "mean_distance_m"):
        target = means["uniform"][-1][key]
        out["mean_curve"][f"uniform_final_{key}"] = target
        for arm in (a for a in runs if a != "uniform"):
            out["mean_curve"][f"{arm}_labels_to_{key}"] = labels_to_reach(means[arm], key,
                                                                          target)
    for seed in runs["uniform"]:
        uni, rout = runs["uniform"][seed], runs["routed"][seed]
        row = {"seed": seed, "uniform_labels": uni[-1]["labels"]}
        for key in ("lap_completion", "mean_distance_m"):
            row[f"uniform_final_{key}"] = uni[-1][key]
            row[f"routed_labels_to_{key}"] = labels_to_reach(rout, key, uni[-1][key])
        out["to_reach"].append(row)
    return out


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "lap_completion", "hidden-suite lap completion"),
                           (axes[1], "mean_distance_m", "mean distance before exit [m]")):
        for arm, style in zip(summary["per_round"], ("o--", "s-", "^:", "v:"), strict=False):
            rows = summary["per_round"][arm]
            ax.plot([r["labels"] for r in rows], [r[key] for r in rows], style, label=arm)
        ax.set_xlabel("expert labels (mean over seeds)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Routing sessions by uncertainty vs uniform starts (same seeds and sessions)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--rounds", type=int, default=BenchConfig.rounds)
    ap.add_argument("--sessions", type=int, default=BenchConfig.sessions)
    ap.add_argument("--ticks", type=int, default=BenchConfig.ticks)
    ap.add_argument("--ablation", action="store_true",
                    help="also route on the spread alone and on the failures alone")
    ap.add_argument("--families", nargs="+", default=list(BenchConfig.families))
    ap.add_argument("--plot", type=Path, default=Path("docs/img/routing.png"))
    ap.add_argument("--json", type=Path, default=Path("var/routing.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = BenchConfig(rounds=args.rounds, sessions=args.sessions, ticks=args.ticks,
                      families=tuple(args.families))
    suite = EvalSuite.hidden(cfg.eval_tracks, families=cfg.families)
    t0 = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    demo = expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)
    arms = list(ROUTERS) if args.ablation else ["uniform", "routed"]
    runs: dict[str, dict[int, list[dict]]] = {arm: {} for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in tqdm(args.seeds, desc="seeds", unit="seed"):
            net, training = train_initial_model(seed)
            for arm in arms:
                runs[arm][seed] = run_arm(arm, seed, cfg, (net, training, demo), suite,
                                          Path(tmp) / f"s{seed}")
    summary = summarize(runs)
    print(f"per round, mean of {len(args.seeds)} seeds: labels so far / hidden-suite lap "
          "completion / mean distance before exit [m]")
    print("round " + "".join(f"| {arm:<24}" for arm in runs))
    for i in range(cfg.rounds + 1):
        cells = [summary["per_round"][arm][i] for arm in runs]
        print(f"{i:>5} " + "".join(f"| {c['labels']:>6.0f} {c['lap_completion']:>7.1%} "
                                    f"{c['mean_distance_m']:>7.1f}  " for c in cells))
    for row in summary["to_reach"]:
        print(f"seed {row['seed']}: uniform final {row['uniform_final_lap_completion']:.1%} "
              f"laps, {row['uniform_final_mean_distance_m']:.0f} m with "
              f"{row['uniform_labels']} labels; routed reached those laps with "
              f"{row['routed_labels_to_lap_completion']} labels, that distance with "
              f"{row['routed_labels_to_mean_distance_m']} labels")
    mean = summary["mean_curve"]
    print(f"mean of seeds: uniform final {mean['uniform_final_lap_completion']:.1%} laps, "
          f"{mean['uniform_final_mean_distance_m']:.0f} m with {mean['uniform_labels']:.0f} "
          "labels")
    for arm in (a for a in runs if a != "uniform"):
        print(f"  {arm:<14} reached those laps with {mean[f'{arm}_labels_to_lap_completion']} "
              f"labels, that distance with {mean[f'{arm}_labels_to_mean_distance_m']} labels")
    elapsed = time.perf_counter() - t0
    print(f"elapsed {elapsed:.0f} s, load average at end: {os.getloadavg()[0]:.2f}")
    plot(summary, args.plot)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"config": cfg.__dict__ | {"seeds": args.seeds},
                                     "runs": runs, "summary": summary,
                                     "elapsed_s": elapsed}, indent=1, default=list))
    print(f"wrote {args.plot} and {args.json}")


if __name__ == "__main__":
    main()
