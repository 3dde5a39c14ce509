"""``crowdlearning market-study``: does the market pay honest skill, and nothing else?

Reads top to bottom. A crowd of scripted players (``crowd.personas``, ``crowd.device_players``)
plays paid 60-second runs in both modes against the champion, through the very path the game
server uses: ``platform.VerdictService`` with its screen (replay, duplicates, near duplicates),
reaction-delay and device-model estimates, the judge and a SQLite ledger with stakes and holds.
Runs start where the server would start them: a play track, a place and a speed drawn from the
study's seed. On top of the driving personas, attacks are tried on every paid run (up to
``--replays`` a round): a *replayer* sends the run's recorded input again on the same
track, from the start the server draws for it, with tiny noise (1e-3, 0.01) or steering only,
and a *sybil* resubmits the first 60% of the run from another account.

Per persona and mode it prints runs, earnings per run (HBAR, 95% t-interval), the rates of
reward and penalty (95% Wilson intervals), and the gambler's expected earnings per run as the
sabotaged share grows (from the measured honest and saboteur runs); it writes a plot and JSON.
After each round the improving contributions are merged (``close_round``), so ``--rounds`` > 1
measures a champion that learnt from the crowd.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm import tqdm

from crowdlearning.config import Settings, get_settings
from crowdlearning.crowd.personas import Persona, make_persona
from crowdlearning.crowd.study_cli import DEFAULT_PERSONAS
from crowdlearning.evaluation.screening import Screener, screen_config
from crowdlearning.evaluation.verdict import PriceSchedule, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.disturbance import Disturbance
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.session import PlayerInputs, SessionBatch, SessionSpec
from crowdlearning.ledger import Ledger, open_ledger, player_account
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.platform.service import Outcome, VerdictService
from crowdlearning.provenance import run_provenance
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_gen import generate_track

__all__ = ["DEFAULT_PERSONAS", "StudyConfig", "run_from_args", "run_study"]

HBAR = 100_000_000
REPLAY_NOISE = (1e-3, 1e-2)
SYBIL_SHARE = 0.6


@dataclass
class StudyConfig:
    personas: tuple[str, ...] = DEFAULT_PERSONAS
    modes: tuple[str, ...] = ("label", "takeover")
    runs: int = 12  # paid runs per persona and mode, per round
    rounds: int = 1
    ticks: int = 1200  # 60 s runs
    play_tracks: int = 8  # the server's default play tracks (seeds 0..n-1)
    # the server's label-mode mix (``server_label_beta``)
    beta: float = field(default_factory=lambda: get_settings().server_label_beta)
    replays: int = 10  # paid runs attacked per round (replayed three ways, split once)
    honest: str = "expert"  # the honest player of the gambler's curve
    seed: int = 0
    # the server's disturbance strength range (``learning.disturbance``), drawn per run
    disturbance: tuple[float, float] = field(default_factory=lambda: (
        get_settings().server_disturbance_low, get_settings().server_disturbance_high))
    verdict: VerdictConfig = field(default_factory=lambda: VerdictConfig.from_settings(
        get_settings()))
    prices: PriceSchedule = field(default_factory=lambda: PriceSchedule.from_settings(
        get_settings()))

    def __post_init__(self) -> None:
        if self.runs < 1 or self.rounds < 1 or self.ticks < 20 or self.play_tracks < 1:
            raise ValueError("runs, rounds, play_tracks must be >= 1 and ticks >= 20")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        low, high = self.disturbance
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"disturbance needs 0 <= low <= high <= 1, got {low}, {high}")
        bad = [m for m in self.modes if m not in ("label", "takeover")]
        if bad:
            raise ValueError(f"unknown mode(s) {bad}: label, takeover")


@dataclass
class _Tally:
    earnings: list[int] = field(default_factory=list)  # tinybar per run, reward - penalty
    decisions: list[str] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)  # why not judged: refusal or screen note

    def add(self, outcome: Outcome) -> None:
        self.earnings.append(outcome.reward_tinybar - outcome.penalty_tinybar)
        self.decisions.append(outcome.verdict.decision.value)
        if outcome.verdict.runs == 0:  # not judged on the suite: say why, in a few words
            self.reasons[_reason(outcome.verdict.reason or outcome.verdict.decision.value)] += 1

    def summary(self) -> dict:
        n = len(self.earnings)
        hbar = np.asarray(self.earnings, float) / HBAR
        mean = float(hbar.mean()) if n else 0.0
        half = (float(stats.t.ppf(0.975, n - 1) * hbar.std(ddof=1) / math.sqrt(n))
                if n > 1 else float("nan"))
        paid = sum(e > 0 for e in self.earnings)
        penalized = sum(e < 0 for e in self.earnings)
        return {"runs": n, "hbar_per_run": mean, "hbar_ci95": [mean - half, mean + half],
                "paid": paid, "paid_rate_ci95": _wilson(paid, n), "penalized": penalized,
                "penalty_rate_ci95": _wilson(penalized, n),
                "no_effect": self.decisions.count("no_effect"),
                "rejected": self.decisions.count("rejected"),
                "not_judged_because": dict(self.reasons.most_common())}


def _reason(note: str) -> str:
    """A refusal's kind without its figures ("near duplicate", "copies the car", ...)."""
    return note.split(":")[0].strip()[:60]


def _wilson(k: int, n: int, z: float = 1.959964) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def run_study(cfg: StudyConfig, work: Path) -> dict:
    """Run the study (see the module docstring) in ``work``; the report as plain data."""
    rng = np.random.default_rng(cfg.seed)
    settings = get_settings()
    ledger = open_ledger(Settings(database_url=f"sqlite:///{work / 'ledger.db'}"))
    ledger.deposit("operator-funding", "treasury", 1_000_000 * HBAR)
    ledger.fund_reward_budget("reward-budget", 1_000_000 * HBAR)
    labels = LabelConfig.from_settings(settings)
    trainer = DaggerTrainer(ModelRegistry(work / "models"), AggregatedDataset(work / "dataset"),
                            labels=labels, precision_ref=settings.price_label_noise_ref)
    net, training = train_initial_model(0)
    trainer.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    tracks = {t.digest: t for t in (generate_track(s) for s in range(cfg.play_tracks))}
    # the study plays many runs per player: the hourly submission limit is not its subject
    screen = dataclasses.replace(screen_config(settings), max_per_window=10**9)
    service = VerdictService(trainer, Screener(tracks.__getitem__, config=screen),
                             verdict_config=cfg.verdict, prices=cfg.prices, labels=labels,
                             ledger=ledger, verdict_log=work / "verdicts.jsonl")
    opened: set[str] = set()
    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    latencies: list[float] = []
    versions = []
    for r in range(cfg.rounds):
        version = trainer.registry.champion or 0
        versions.append(version)
        runs = _play_round(cfg, trainer, list(tracks.values()), rng, r)
        # submitted interleaved, as a server receives them: no persona always comes last to a
        # round whose coverage (``evaluation.coverage``) the others already filled
        runs = [runs[i] for i in rng.permutation(len(runs))]
        paid = _submit(service, ledger, runs, opened, tallies, latencies, f"round {r + 1}")
        attacks = _replays(cfg, trainer, service, paid, rng, r)
        _submit(service, ledger, attacks, opened, tallies, latencies, f"round {r + 1} replays")
        service.close_round()
    service.close()
    report = {
        "config": {"personas": list(cfg.personas), "modes": list(cfg.modes), "runs": cfg.runs,
                   "rounds": cfg.rounds, "ticks": cfg.ticks, "beta": cfg.beta,
                   "seed": cfg.seed, "disturbance": list(cfg.disturbance),
                   "prices": dataclasses.asdict(cfg.prices),
                   "verdict": {"confidence": cfg.verdict.confidence,
                               "margin_pct": cfg.verdict.margin_pct,
                               "finetune_seeds": cfg.verdict.finetune_seeds,
                               "null_runs": cfg.verdict.null_runs},
                   # which code and settings made this study (reports compare like with like)
                   "provenance": run_provenance(settings)},
        "champion_versions": versions,
        "personas": {f"{p}|{m}": t.summary() for (p, m), t in sorted(tallies.items())},
        "gambler_curve": _gambler_curve(tallies, cfg.modes, cfg.honest),
        "verdict_latency_s": ({"p50": float(np.median(latencies)),
                               "p95": float(np.percentile(latencies, 95)),
                               "count": len(latencies)} if latencies else {}),
        "books": str(ledger.check_books()),
    }
    return report


def _submit(service: VerdictService, ledger: Ledger,
            runs: list[tuple[tuple[str, str], Contribution]], opened: set[str],
            tallies: dict[tuple[str, str], _Tally], latencies: list[float], what: str
            ) -> list[Contribution]:
    """Submit runs one by one as paid runs; the contributions that were paid."""
    paid = []
    for (persona, mode), contribution in tqdm(runs, desc=f"{what} verdicts", unit="run"):
        _open(ledger, contribution.contributor_id, opened)
        outcome = service.submit(contribution)
        tallies[(persona, mode)].add(outcome)
        if outcome.verdict.runs > 0:  # judged on the suite (not refused, not a copy)
            latencies.append(outcome.verdict.elapsed_s)
        if outcome.reward_tinybar > 0:
            paid.append(contribution)
    return paid


def _open(ledger: Ledger, player: str, opened: set[str]) -> None:
    """A funded, staked player (paid mode), once."""
    if player in opened:
        return
    ledger.open_player(player)
    ledger.deposit(f"deposit:{player}", player_account(player, AccountKind.AVAILABLE),
                   1000 * HBAR)
    ledger.lock_stake(f"stake:{player}", player, 500 * HBAR)
    opened.add(player)


def _disturbances(cfg: StudyConfig, r: int, stream: int) -> Iterator[Disturbance]:
    """Each run's disturbance, as the server draws it from a secret per-run seed (its own
    generator: the strength range does not change the starts or the players' noise)."""
    rng = np.random.default_rng([cfg.seed, r, stream, 0xD157])
    while True:
        yield Disturbance.draw(int(rng.integers(2**62)), *cfg.disturbance)


def _play_round(cfg: StudyConfig, trainer: DaggerTrainer, tracks: list[Track],
                rng: np.random.Generator, r: int) -> list[tuple[tuple[str, str], Contribution]]:
    """Every persona plays ``runs`` paid runs per mode in one lockstep batch."""
    specs, groups, keys = [], {}, []
    wind = _disturbances(cfg, r, 0)
    for persona in cfg.personas:
        for mode in cfg.modes:
            rows = []
            for k in range(cfg.runs):
                track = tracks[int(rng.integers(len(tracks)))]
                specs.append(SessionSpec(
                    f"{persona}.{mode}", f"r{r}-{persona}-{mode}-{k}", track,
                    start_s_m=float(rng.uniform(0, track.length_m)),
                    start_speed_mps=float(rng.uniform(6.0, 10.0)), mode=mode,  # type: ignore[arg-type]
                    beta=cfg.beta, disturbance=next(wind)))
                rows.append(len(specs) - 1)
                keys.append((persona, mode))
            groups[(persona, mode)] = (make_persona(persona, np.random.default_rng(
                [cfg.seed, r, len(groups)])), np.asarray(rows))
    contributions = _play(trainer, specs, list(groups.values()), cfg.ticks)
    by_session = {c.session_id: c for c in contributions}
    return [(key, by_session[spec.session_id]) for key, spec in zip(keys, specs, strict=True)
            if spec.session_id in by_session]


def _play(trainer: DaggerTrainer, specs: list[SessionSpec],
          groups: list[tuple[Persona, np.ndarray]], ticks: int) -> list[Contribution]:
    batch = SessionBatch(trainer.policy(), specs, model_version=trainer.registry.champion or 0,
                         max_ticks=ticks)
    with tqdm(total=ticks, desc="playing", unit="tick", leave=False) as bar:
        while not batch.done:
            frame = batch.frame()
            inputs = PlayerInputs.none(len(specs))
            for persona, rows in groups:
                inputs.set_rows(rows, persona.act(frame, rows))
            batch.advance(inputs)
            bar.update(1)
    return batch.contributions()


@dataclass
class _Replayer(Persona):
    """Sends a recorded run's input again, tick by tick, with a little noise (``steer_only``:
    the steering alone)."""

    player: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    intervention: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    noise_std: float = 0.0
    steer_only: bool = False

    def act(self, frame, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = min(frame.tick, len(self.player) - 1)
        action = np.repeat(self.player[t:t + 1], len(rows), axis=0)
        action = action + self.rng.normal(0.0, self.noise_std, size=action.shape)
        if self.steer_only:
            action[:, 1] = np.nan
        action = np.clip(action, -1.0, 1.0)
        tick = np.where(np.isfinite(action).any(axis=1), frame.tick, -1).astype(np.int64)
        return action, tick, np.repeat(self.intervention[t:t + 1], len(rows))


def _replays(cfg: StudyConfig, trainer: DaggerTrainer, service: VerdictService,
             paid: list[Contribution], rng: np.random.Generator, r: int
             ) -> list[tuple[tuple[str, str], Contribution]]:
    """Attacks on the round's paid runs, submitted after them: the recorded input sent again
    from the same track and start with tiny noise (1e-3, 1e-2) or steering only, by another
    account (``replayer``); the first 60% of the run resubmitted by another account
    (``sybil``)."""
    paid = paid[: cfg.replays]
    if not paid:
        return []
    variants = [(f"replayer-{n}", n, False) for n in REPLAY_NOISE] + [
        ("replayer-steering", 0.0, True)]
    specs, groups = [], []
    wind = _disturbances(cfg, r, 1)
    for k, original in enumerate(paid):
        track = service.screener.tracks(original.start.track_digest)
        for j, (name, noise, steer_only) in enumerate(variants):
            # the server draws every run's start (``server.game_loop.RunStart``): a replay
            # starts where the server puts it, and sends the recorded input from there
            specs.append(SessionSpec(name, f"r{r}-replay-{k}-{j}", track,
                                     start_s_m=float(rng.uniform(0, track.length_m)),
                                     start_speed_mps=float(rng.uniform(6.0, 10.0)),
                                     mode=original.mode, beta=original.beta,
                                     disturbance=next(wind)))
            groups.append((_Replayer("replayer", np.random.default_rng([cfg.seed, r, k, j]),
                                     player=original.player,
                                     intervention=original.intervention, noise_std=noise,
                                     steer_only=steer_only), np.array([len(specs) - 1])))
    out: list[tuple[tuple[str, str], Contribution]] = [
        ((c.contributor_id, c.mode), c) for c in _play(trainer, specs, groups, cfg.ticks)]
    for k, original in enumerate(paid):
        n = max(1, int(original.num_ticks * SYBIL_SHARE))
        part = {name: getattr(original, name)[:n] for name in (
            "ticks", "states", "observations", "proposed", "executed", "player", "input_tick",
            "intervention")}
        out.append((("sybil", original.mode), dataclasses.replace(
            original, contribution_id=f"r{r}-sybil-{k}", session_id=f"r{r}-sybil-{k}",
            contributor_id=f"sybil-{k % 3}", meta={}, **part)))
    return out


def _gambler_curve(tallies: dict[tuple[str, str], _Tally], modes: Sequence[str],
                   honest_persona: str = "expert") -> dict:
    """Expected earnings per run [HBAR] of a player who sabotages a share of runs, from the
    measured honest (``honest_persona``) and saboteur ("adversary") runs, per mode."""
    curve = {}
    for mode in modes:
        honest, bad = tallies.get((honest_persona, mode)), tallies.get(("adversary", mode))
        if not honest or not bad or not honest.earnings or not bad.earnings:
            continue
        h = float(np.mean(honest.earnings)) / HBAR
        s = float(np.mean(bad.earnings)) / HBAR
        curve[mode] = {f"{share:.1f}": (1 - share) * h + share * s
                       for share in np.linspace(0, 1, 11)}
    return curve


def format_report(report: dict) -> str:
    """The report as a Markdown table (per persona and mode) and the gambler curve."""
    lines = ["| persona | mode | runs | HBAR/run (95% CI) | paid (95% CI) | penalized (95% CI) "
             "| no effect | rejected |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for key, s in report["personas"].items():
        persona, mode = key.split("|")
        lo, hi = s["hbar_ci95"]
        lines.append(
            f"| {persona} | {mode} | {s['runs']} | {s['hbar_per_run']:+.4f} ({lo:+.4f}, "
            f"{hi:+.4f}) | {s['paid']} ({s['paid_rate_ci95'][0]:.0%}-"
            f"{s['paid_rate_ci95'][1]:.0%}) | {s['penalized']} "
            f"({s['penalty_rate_ci95'][0]:.0%}-{s['penalty_rate_ci95'][1]:.0%}) | "
            f"{s['no_effect']} | {s['rejected']} |")
    for mode, curve in report["gambler_curve"].items():
        lines.append("")
        lines.append(f"gambler ({mode}), expected HBAR/run by sabotaged share: " + ", ".join(
            f"{k}: {v:+.4f}" for k, v in curve.items()))
    lat = report.get("verdict_latency_s") or {}
    if lat:
        lines.append(f"\nverdict latency: p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s "
                     f"({lat['count']} verdicts, load average {os.getloadavg()[0]:.1f})")
    return "\n".join(lines)


def plot_report(report: dict, path: Path) -> Path:
    """Earnings per run with 95% intervals, per persona and mode (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = report["personas"]
    personas = sorted({k.split("|")[0] for k in entries})
    modes = sorted({k.split("|")[1] for k in entries})
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(personas)), 4.5))
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        xs, ys, errs = [], [], []
        for j, persona in enumerate(personas):
            s = entries.get(f"{persona}|{mode}")
            if s is None:
                continue
            lo, hi = s["hbar_ci95"]
            xs.append(j + i * width)
            ys.append(s["hbar_per_run"])
            errs.append(0.0 if math.isnan(hi) else (hi - lo) / 2)
        ax.bar(xs, ys, width=width, yerr=errs, capsize=2, label=mode)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(personas))])
    ax.set_xticklabels(personas, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("HBAR per run (95% CI)")
    ax.set_title("Earnings per paid run, by persona and mode")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``crowdlearning market-study`` once its arguments are parsed (``crowd.study_cli``)."""
    personas = tuple(p.strip() for p in args.personas.split(",") if p.strip())
    rng = np.random.default_rng(0)
    try:
        for name in personas:
            make_persona(name, rng)
        cfg = StudyConfig(personas=personas, modes=tuple(args.modes.split(",")),
                          runs=args.runs, rounds=args.rounds, ticks=args.ticks,
                          replays=args.replays, seed=args.seed,
                          **({"beta": args.beta} if args.beta is not None else {}),
                          **({"disturbance": args.disturbance} if args.disturbance else {}))
    except ValueError as exc:
        parser.exit(2, f"crowdlearning market-study: error: {exc}\n")
    with tempfile.TemporaryDirectory(prefix="market-study-") as tmp:
        report = run_study(cfg, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "market-study.json").write_text(json.dumps(report, indent=2))
    plot = plot_report(report, args.out / "market-study.png")
    print(format_report(report))
    print(f"wrote {args.out / 'market-study.json'} and {plot}")
    return 0
