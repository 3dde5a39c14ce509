"""The whole loop on embedded defaults: a simulated crowd plays, is judged, paid and penalized.

Reads top to bottom: start the local Hedera network and the SQLite ledger; fund the reward
budget; give every simulated player a Hedera account, a deposit and a locked stake; then, per
round, the crowd plays one session each against the champion, every contribution goes through the
verdict service (screen, judge, price, ledger, payout request, audit hash), the round's improving
contributions are merged into a candidate that is promoted only if not worse, and pending payouts
are settled on the local network. At the end the books are checked and reconciled against the
network's receipts, and the report lists earnings per persona and the champion's learning curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hiero_sdk_python import PrivateKey
from tqdm import tqdm

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.publisher import AuditPublisher
from crowdlearning.config import Settings, get_settings
from crowdlearning.crowd.simulation import make_crowd, mission_starts, play_round
from crowdlearning.evaluation.curriculum import Curriculum
from crowdlearning.evaluation.judge_pool import InlineJudgePool
from crowdlearning.evaluation.screening import Screener, screen_config
from crowdlearning.evaluation.suite import EvalSuite, evaluate
from crowdlearning.evaluation.verdict import Decision, PriceSchedule, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import TrainConfig
from crowdlearning.ledger import Ledger, open_ledger, player_account
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.payments.local_network.server import running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler, reconcile
from crowdlearning.platform.service import Outcome, RoundResult, VerdictService
from crowdlearning.provenance import run_provenance
from crowdlearning.sim.params import CONTROL_RATE_HZ
from crowdlearning.sim.track import Track

__all__ = ["MarketConfig", "run_market"]

HBAR = 100_000_000  # tinybar
UNLOCKED_ROTATION = 900_000  # the hidden suite the demo reports unlocked families' laps on


@dataclass
class MarketConfig:
    rounds: int = 6
    crowd: dict[str, int] = field(default_factory=lambda: {
        "expert": 2, "noisy-0.1": 2, "noisy-0.3": 1, "late-6": 1, "lazy": 2, "random": 1,
        "adversary": 1})
    session_ticks: int = 600  # 30 s sessions
    eval_tracks: int = 16  # hidden tracks for the champion's learning curve (2 starts each)
    # share of the crowd's runs started on a mission (``crowd.simulation.mission_starts``: a
    # few seconds before a segment the champion fails, as the game's mission board plans);
    # 0: every run on a random play track and start, as before
    missions: float = 1.0
    # the A/A check: fresh placebos judged against every champion the crowd plays on
    # (``Judge.placebo_decisions``); 0: none
    aa_placebos: int = 0
    seed: int = 0
    train_updates: int = 1500
    deposit_tinybar: int = 5 * HBAR  # each player's deposit
    stake_tinybar: int = 2 * HBAR  # locked stake (paid mode)
    reward_budget_tinybar: int = 1000 * HBAR
    verdict: VerdictConfig = field(default_factory=lambda: VerdictConfig.from_settings(
        get_settings()))
    prices: PriceSchedule = field(default_factory=lambda: PriceSchedule.from_settings(
        get_settings()))


@dataclass
class PersonaBook:
    contributions: int = 0
    paid: int = 0
    penalized: int = 0
    no_effect: int = 0
    rejected: int = 0
    earned_tinybar: int = 0
    penalties_tinybar: int = 0
    pooled: int = 0  # runs paid a share of their round's pool (``evaluation.pooled``)

    def add_pool_share(self, tinybar: int) -> None:
        """A share of the round's pool, paid to a run its own verdict left unpaid."""
        self.pooled += 1
        self.paid += 1
        self.earned_tinybar += tinybar

    def add(self, outcome: Outcome) -> None:
        self.contributions += 1
        decision = outcome.verdict.decision
        self.paid += outcome.reward_tinybar > 0
        self.penalized += outcome.penalty_tinybar > 0
        self.no_effect += decision is Decision.NO_EFFECT
        self.rejected += decision is Decision.REJECTED
        self.earned_tinybar += outcome.reward_tinybar
        self.penalties_tinybar += outcome.penalty_tinybar

    def as_dict(self) -> dict:
        return {"contributions": self.contributions, "paid": self.paid,
                "penalized": self.penalized, "no_effect": self.no_effect,
                "rejected": self.rejected, "pooled": self.pooled,
                "earned_tinybar": self.earned_tinybar,
                "penalties_tinybar": self.penalties_tinybar,
                "net_tinybar": self.earned_tinybar - self.penalties_tinybar}


def _persona(contributor_id: str) -> str:
    return contributor_id.rsplit("-", 1)[0]


def _open_players(ledger: Ledger, transport: SdkHederaTransport, ids: list[str],
                  cfg: MarketConfig) -> dict[str, str]:
    """Ledger accounts, a deposit and a locked stake per player; a Hedera account to pay to."""
    accounts = {}
    for pid in ids:
        ledger.open_player(pid)
        ledger.deposit(f"deposit:{pid}", player_account(pid, AccountKind.AVAILABLE),
                       cfg.deposit_tinybar)
        ledger.lock_stake(f"stake:{pid}", pid, cfg.stake_tinybar)
        accounts[pid] = transport.create_account(PrivateKey.generate_ed25519().public_key())
    return accounts


def run_market(cfg: MarketConfig, work: Path) -> dict:
    """Run the loop (see the module docstring) in ``work``; return the report as plain data."""
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(cfg.seed)
    with running_local_network() as info:
        transport = SdkHederaTransport.for_local_network(info)
        try:
            return _run(cfg, work, rng, transport)
        finally:
            transport.close()


def _run(cfg: MarketConfig, work: Path, rng: np.random.Generator,
         transport: SdkHederaTransport) -> dict:
    ledger = open_ledger(Settings(database_url=f"sqlite:///{work / 'ledger.db'}"))
    ledger.deposit("operator-funding", "treasury", cfg.reward_budget_tinybar)
    ledger.fund_reward_budget("reward-budget", cfg.reward_budget_tinybar)
    settings = get_settings()
    labels = LabelConfig.from_settings(settings)  # the judge and the merges label alike
    trainer = DaggerTrainer(ModelRegistry(work / "models"), AggregatedDataset(work / "dataset"),
                            labels=labels,
                            train=TrainConfig(updates=cfg.train_updates, seed=cfg.seed),
                            precision_ref=settings.price_label_noise_ref,
                            anchor_share=settings.merge_anchor_share)
    net, training = train_initial_model(cfg.seed)
    trainer.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    crowd = make_crowd(cfg.crowd, rng)
    accounts = _open_players(ledger, transport, [m.contributor_id for m in crowd], cfg)
    catalog: dict[str, Track] = {}
    settler = Settler(ledger, transport)
    # the audit trail as the platform keeps it: verdicts and settlements journaled, published
    # in blocks on the deployment's topic (drained after each round instead of a thread)
    journal = AuditJournal(ledger.engine, scan_limit=settings.audit_scan_limit,
                           attempts=settings.ledger_transaction_attempts)
    publisher = AuditPublisher.from_settings(journal, transport, settings)
    suite = EvalSuite.hidden(cfg.eval_tracks)
    service = VerdictService(
        trainer, Screener(catalog.__getitem__, config=screen_config(settings)),
        verdict_config=cfg.verdict, prices=cfg.prices,
        labels=labels, champion_suite=suite, ledger=ledger, settler=settler, transport=transport,
        hedera_account_of=accounts.get, verdict_log=work / "verdicts.jsonl", audit=journal,
        curriculum=Curriculum.from_settings(settings, trainer.registry.root),
        pace_calibration=settings.promotion_pace_calibration,
        pooled_verdict=settings.verdict_pooled,
        pooled_min_members=settings.verdict_pooled_min_members)
    books = {_persona(m.contributor_id): PersonaBook() for m in crowd}
    curve = [_point(trainer, 0, suite, families=service.unlocked_families,
                    eval_tracks=cfg.eval_tracks)]
    mission_rng = np.random.default_rng([cfg.seed, 0x3155])  # the missions' plans
    aa_done: set[int] = set()  # champions A/A-checked
    latencies: list[float] = []
    for r in tqdm(range(cfg.rounds), desc="rounds", unit="round"):
        version = trainer.registry.champion or 0
        starts = (mission_starts(trainer.policy(), len(crowd), mission_rng,
                                 families=service.unlocked_families, share=cfg.missions,
                                 approach=settings.server_missions_approach,
                                 approach_ticks=round(settings.server_missions_approach_s
                                                      * CONTROL_RATE_HZ),
                                 passing=settings.server_missions_passing)
                  if cfg.missions > 0 else None)
        contributions = play_round(trainer.policy(), version, crowd, rng, round_id=f"r{r}",
                                   max_ticks=cfg.session_ticks, catalog=catalog,
                                   disturbance=(settings.server_disturbance_low,
                                                settings.server_disturbance_high),
                                   families=service.unlocked_families, starts=starts)
        aa = (_aa_check(service, cfg.aa_placebos, r)
              if cfg.aa_placebos and version not in aa_done else None)
        aa_done.add(version)
        earned: dict[str, int] = {}  # this round: contribution id -> net tinybar
        decisions: dict[str, dict[str, int]] = {}  # this round: persona -> decision -> runs
        for c in contributions:
            outcome = service.submit(c)
            tally = decisions.setdefault(_persona(c.contributor_id), {})
            key = outcome.verdict.decision.value
            tally[key] = tally.get(key, 0) + 1
            books[_persona(c.contributor_id)].add(outcome)
            earned[c.contribution_id] = outcome.reward_tinybar - outcome.penalty_tinybar
            latencies.append(outcome.verdict.elapsed_s)
        result = service.close_round()
        owner = {c.contribution_id: c.contributor_id for c in contributions}
        for cid, share in (result.pool or {}).get("shares", {}).items():
            books[_persona(owner[cid])].add_pool_share(share)
            earned[cid] += share
        per_persona: dict[str, list[int]] = {}
        for cid, net in earned.items():
            per_persona.setdefault(_persona(owner[cid]), []).append(net)
        service.settle()
        publisher.drain()
        curve.append(_point(trainer, r + 1, suite, families=result.unlocked_families,
                            eval_tracks=cfg.eval_tracks, promoted=result.promoted,
                            merged=len(result.merged), why_not=result.why_not,
                            unlocked=list(result.unlocked_families),
                            played_on=version,
                            on_missions=sum(s is not None for s in starts or []),
                            aa=aa,
                            promotion=_promotion_record(result),
                            decisions=decisions,
                            pool=result.pool,
                            hbar_per_run={p: float(np.mean(v)) / 1e8
                                          for p, v in sorted(per_persona.items())}))
    final = settler.run_until_settled(max_runs=20, pause_s=0.05)
    service.settle()  # journals what settled last for the audit
    audited = publisher.drain()
    summary = ledger.check_books()
    recon = reconcile(ledger, transport)
    return {
        "config": {"rounds": cfg.rounds, "crowd": cfg.crowd, "session_ticks": cfg.session_ticks,
                   "eval_tracks": cfg.eval_tracks, "seed": cfg.seed,
                   "verdict": {"confidence": cfg.verdict.confidence,
                               "margin_pct": cfg.verdict.margin_pct,
                               "suite_size": cfg.verdict.suite_size},
                   # which code and settings made this run (reports compare like with like)
                   "provenance": run_provenance(settings)},
        "learning_curve": curve,
        "personas": {name: book.as_dict() for name, book in books.items()},
        "verdict_latency_s": {"median": float(np.median(latencies)),
                              "p95": float(np.percentile(latencies, 95)),
                              "count": len(latencies)},
        "settlement": {"live_after": final.live, "books": str(summary),
                       "reconciliation": str(recon),
                       "paid_on_chain_tinybar": sum(transport.account_balance(a)
                                                    for a in accounts.values())},
        "audit": {**journal.stats(), "all_published": audited},
        "work_dir": str(work),
    }


def _point(trainer: DaggerTrainer, rounds: int, suite: EvalSuite, *,
           families: tuple[str, ...], eval_tracks: int, **extra: object) -> dict:
    """The champion after ``rounds`` rounds: on the learning curve's (easy) suite, and on
    ``eval_tracks`` hidden tracks within the unlocked ``families`` (a rotation no verdict,
    promotion or mastery suite uses; a lap may take as long as in the mastery suite): lap
    completion per family, on all of them and on the mastered ones (all but the frontier)."""
    version = trainer.registry.champion or 0
    labels = len(trainer.dataset.load(trainer.registry.contributions_in(version)))
    unlocked = evaluate(trainer.policy(), EvalSuite.hidden(
        max(eval_tracks, len(families)), rotation=UNLOCKED_ROTATION, families=families,
        max_steps=get_settings().curriculum_mastery_ticks))  # the mastery suite's lap limit
    mastered = unlocked.track_family != families[-1]  # every unlocked family but the frontier
    return {"round": rounds, "version": version, "labels": labels,
            **evaluate(trainer.policy(), suite).summary(),
            "unlocked_lap_completion": unlocked.lap_completion,
            "unlocked_mean_lap_time_s": unlocked.summary()["mean_lap_time_s"],
            "mastered_lap_completion": (float(unlocked.completed[mastered].mean())
                                        if mastered.any() else None),
            "lap_completion_by_family": unlocked.lap_completion_by_family(), **extra}


def _promotion_record(result: RoundResult) -> dict | None:
    """Champion and candidate on the promotion suite (None when nothing was merged)."""
    cand = result.candidate_metrics
    if cand is None:
        return None
    champ = result.champion_metrics
    calibration = cand.get("pace_calibration") or {}
    return {"candidate": result.candidate_version, "promoted": result.promoted,
            "champion_lap_completion": champ["lap_completion"],
            "candidate_lap_completion": cand["lap_completion"],
            "champion_exit_rate": champ["exit_rate"], "candidate_exit_rate": cand["exit_rate"],
            "champion_common_lap_s": cand.get("champion_common_lap_s"),
            "candidate_common_lap_s": cand.get("candidate_common_lap_s"),
            # the throttle bias of a pace-calibrated candidate (evaluation/pace.py), 0: none
            "throttle_bias": calibration.get("throttle_bias", 0.0)
            if "calibrated_version" in calibration else 0.0,
            # the sign test's p-value when exits were weighed against laps, else None
            "exits_more_p": cand.get("exits_more_p")}


def _aa_check(service: VerdictService, count: int, round_no: int) -> dict:
    """``count`` fresh placebos judged by the current champion's judge (the A/A check)."""
    spec = service.judge_spec()
    pool = service.pool
    judge = pool.judge_for(spec) if isinstance(pool, InlineJudgePool) else spec.build()
    results = judge.placebo_decisions(count, salt=0xAA00 + round_no)
    decisions = [d.value for d, _ in results]
    return {"version": spec.champion_version, "placebos": count,
            "improved": decisions.count("improved"), "worse": decisions.count("worse"),
            "no_effect": decisions.count("no_effect"),
            "mean_diff_m": [round(m, 2) for _, m in results]}
