"""The verdict: did this contribution's labels improve the model? How sure, at what price?

**The comparison isolates label quality.** For each contribution the champion is fine-tuned twice
on the very same minibatches (``learning.finetune``): once with the contribution's labels mixed
in, once with its *twin*: the same observations, labelled by the champion itself (what a player
who only copied the car would have sent). The two models differ in one thing only, the label
values the player gave on the states of their run; neither the extra rows, nor where the run
drove, nor training randomness differ. Both models then drive the hidden verdict suite in one
simulator batch from the same starts (common random numbers); the per-run difference in distance
driven within the window is the evidence. (The earlier design compared against the champion
fine-tuned *without* any extra rows: every contribution then also paid for the share of each
minibatch it took from the champion's data, and contributions carrying no information were judged
worse in 60-80% of runs: see docs/verdict.md.)

**Calibrated against training noise (the A/A null).** Fine-tuning is chaotic: ANY change of
labels gives a different model whose closed-loop score differs by a few percent, even when the
change carries no information. So a paired t-interval over the suite alone is far too confident.
Per champion the judge measures ``null_runs`` placebo contributions, the champion's own actions
plus Gaussian noise of ``null_noise`` on its own states on play tracks, exactly as a real
contribution is measured. A decision needs both:

- the suite's paired t-interval (Bonferroni over the looks) clearing ``+-margin``, and
- the effect lying outside the placebos' prediction interval at the same level
  (``mean +- t(K-1) * sd * sqrt(1 + 1/K)``).

So a contribution carrying nothing new is judged improved or worse at most at the stated error
rate, whatever the fine-tune's chaos (``crowdlearning market-study`` measures the rates).

The suite is looked at after every ``tracks_per_look`` tracks; clear cases stop early.

Price: see ``PriceSchedule`` and docs/verdict.md (penalties weigh more than rewards so that
mixing sabotage into honest play loses money).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Literal, get_args

import numpy as np
from scipy import stats

from crowdlearning.config import Settings
from crowdlearning.evaluation.suite import EvalSuite, evaluate_many
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.finetune import FinetuneConfig, finetune_many
from crowdlearning.learning.label_noise import estimate_label_noise, precision_factor
from crowdlearning.learning.labels import (
    COVERED_META_KEY,
    DELAY_META_KEY,
    LabelConfig,
    LabelSet,
    correction_ticks,
    extract_labels,
)
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.sim.families import family_track
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track_gen import generate_track

__all__ = ["PENALTY_BASES", "POOL_CONTRIBUTOR", "POOL_ROTATION", "POOL_SEED", "Decision", "Judge",
           "PriceSchedule", "Verdict", "VerdictConfig", "confident_harm_bp", "label_params_of"]


# what a penalty charges (``PriceSchedule.penalty_basis``; the setting is price_penalty_basis)
PenaltyBasis = Literal["effect", "confident"]
PENALTY_BASES: tuple[str, ...] = get_args(PenaltyBasis)


class Decision(StrEnum):
    IMPROVED = "improved"
    NO_EFFECT = "no_effect"
    WORSE = "worse"
    REJECTED = "rejected"


@dataclass(frozen=True)
class VerdictConfig:
    confidence: float = 0.95  # of an "improved" decision (a reward)
    penalty_confidence: float = 0.99  # of a "worse" decision: a false penalty costs 3x
    margin_pct: float = 0.5  # the effect must clear this before it counts [% of mean distance]
    suite_size: int = 24  # hidden tracks in the verdict suite
    starts_per_track: int = 4
    window_ticks: int = 400  # each run: 20 s of driving
    tracks_per_look: int = 12  # two looks: clear cases stop at half the suite
    rotation: int = 0  # which hidden suite (rotates)
    min_corrections: int = 10  # fewer corrected ticks than this (0.5 s) add nothing
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    finetune_seeds: int = 2  # paired fine-tunes per verdict, averaged (training noise / sqrt)
    null_runs: int = 16  # placebo contributions measured per champion (the A/A null)
    null_noise: float = 0.03  # placebo labels: the champion's own actions + this noise (std)
    null_ticks: int = 1200  # length of each placebo run, as a 60 s run [ticks]
    # the track families the hidden suite is drawn within (``evaluation.curriculum``)
    families: tuple[str, ...] = ("easy",)
    # Where the verdict measures (docs/verdict.md, "Measuring where the champion fails"); the
    # defaults here are the suite as it was (verdict records without these fields re-judge as
    # they were judged), the settings turn them on.
    frontier_share: float = 0.0  # share of the suite's tracks from the frontier family (0: even)
    focus_starts: float = 0.0  # share of each failing track's starts placed before a failure
    focus_lead_ticks: int = 60  # such a run starts where the champion was this long before
    # a track's further focused runs into the same failure start this much earlier each (0: the
    # same approach replayed, as before: identical runs; ``_focused``)
    focus_lead_step_ticks: int = 0
    focus_pool: int = 1  # frontier tracks surveyed per frontier track of the suite
    focus_survey_ticks: int = 2400  # the champion's survey: one lap at most [ticks]
    # placebos drive play tracks of the suite's families, in its proportions, from random
    # starts (False: easy play tracks from the start line, as before)
    null_follows_suite: bool = False
    # a placebo's champion that leaves the track is put back on the centreline where it left
    # and drives on, so placebos have a run's length of states whatever the champion's
    # survival (False: a placebo ends with the champion's first exit; measured in
    # docs/verdict.md "Exits weighed against laps, strict pace, and placebos as long as runs")
    null_full_runs: bool = False

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1 or not 0.5 < self.penalty_confidence < 1:
            raise ValueError("confidence and penalty_confidence must be in (0.5, 1)")
        if self.finetune_seeds < 1:
            raise ValueError(f"finetune_seeds must be >= 1, got {self.finetune_seeds}")
        if self.null_runs < 3:
            raise ValueError(f"null_runs must be >= 3 to estimate the noise, got {self.null_runs}")
        if not 0 < self.null_noise <= 1:
            raise ValueError(f"null_noise must be in (0, 1], got {self.null_noise}")
        if self.null_ticks < 1:
            raise ValueError(f"null_ticks must be >= 1, got {self.null_ticks}")
        if not 0 <= self.frontier_share < 1 or not 0 <= self.focus_starts <= 1:
            raise ValueError("frontier_share must be in [0, 1) and focus_starts in [0, 1]")
        if (self.focus_lead_ticks < 0 or self.focus_lead_step_ticks < 0
                or self.focus_survey_ticks < 1 or self.focus_pool < 1):
            raise ValueError("focus_lead_ticks and focus_lead_step_ticks must be >= 0, "
                             "focus_survey_ticks and focus_pool >= 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> VerdictConfig:
        return cls(confidence=settings.verdict_confidence,
                   penalty_confidence=settings.verdict_penalty_confidence,
                   margin_pct=settings.verdict_margin_pct,
                   suite_size=settings.verdict_suite_size,
                   starts_per_track=settings.verdict_starts_per_track,
                   window_ticks=settings.verdict_window_ticks,
                   tracks_per_look=settings.verdict_tracks_per_look,
                   finetune=FinetuneConfig(updates=settings.verdict_finetune_updates),
                   finetune_seeds=settings.verdict_finetune_seeds,
                   null_runs=settings.verdict_null_runs, null_noise=settings.verdict_null_noise,
                   null_ticks=settings.verdict_null_ticks,
                   frontier_share=settings.verdict_frontier_share,
                   focus_starts=settings.verdict_focus_starts,
                   focus_lead_ticks=settings.verdict_focus_lead_ticks,
                   focus_lead_step_ticks=settings.verdict_focus_lead_step_ticks,
                   focus_pool=settings.verdict_focus_pool,
                   null_follows_suite=settings.verdict_null_follows_suite,
                   null_full_runs=settings.verdict_null_full_runs)

    @property
    def looks(self) -> int:
        """How many times the sequential test looks at the evidence."""
        return int(np.ceil(self.suite_size / self.tracks_per_look))

    def suite(self) -> EvalSuite:
        return EvalSuite.hidden(self.suite_size, rotation=self.rotation, families=self.families,
                                frontier_share=self.frontier_share,
                                starts_per_track=self.starts_per_track, laps=10_000,
                                max_steps=self.window_ticks)


@dataclass(frozen=True)
class PriceSchedule:
    """Tinybars per basis point of measured effect, and caps (1 HBAR = 100,000,000 tinybar).

    Harm is priced higher than gain (``penalty_tinybar_per_bp`` = 3x the reward rate by default)
    and the penalty cap (= the hold a paid run puts up) is 3x the reward cap: a run that harms
    the model costs more than an equally large improvement earns, so any share of sabotage from
    about 25% on makes a player's expected earnings negative (docs/verdict.md, "Pricing").
    """

    reward_tinybar_per_bp: int = 20_000
    reward_cap_tinybar: int = 20_000_000
    penalty_tinybar_per_bp: int = 60_000
    penalty_cap_tinybar: int = 60_000_000
    # a reward is multiplied by the labels' precision factor (``learning.label_noise``): the
    # steering noise at which a label is paid half; 0 = off (every reward paid whole)
    label_noise_ref: float = 0.0
    # what a penalty charges: "effect", the whole measured harm (as records before 2026-11-30
    # were priced); "confident", only the harm beyond the training noise, i.e. beyond both the
    # paired interval's upper end and the placebos' null (``confident_harm_bp``)
    penalty_basis: PenaltyBasis = "effect"

    def __post_init__(self) -> None:
        for name in ("reward_tinybar_per_bp", "reward_cap_tinybar", "penalty_tinybar_per_bp",
                     "penalty_cap_tinybar"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0 [tinybar], got {value!r}")
        if not isinstance(self.label_noise_ref, (int, float)) or not (
                0.0 <= self.label_noise_ref <= 2.0):
            raise ValueError(f"label_noise_ref must be in [0, 2] (steering units), got "
                             f"{self.label_noise_ref!r}")
        if self.penalty_basis not in PENALTY_BASES:
            raise ValueError(f"penalty_basis must be one of {', '.join(PENALTY_BASES)}, got "
                             f"{self.penalty_basis!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceSchedule:
        return cls(reward_tinybar_per_bp=settings.price_reward_tinybar_per_bp,
                   reward_cap_tinybar=settings.price_reward_cap_tinybar,
                   penalty_tinybar_per_bp=settings.price_penalty_tinybar_per_bp,
                   penalty_cap_tinybar=settings.price_penalty_cap_tinybar,
                   label_noise_ref=settings.price_label_noise_ref,
                   penalty_basis=settings.price_penalty_basis)

    def price(self, decision: Decision, effect_bp: int, precision: float = 1.0,
              confident_harm_bp: int | None = None) -> int:
        """Signed amount: > 0 reward, < 0 penalty, 0 for no effect or rejection.

        ``precision`` (0..1, ``learning.label_noise.precision_factor``) scales a reward only:
        a penalty is never reduced by noisy labels (noise must not shield harm).
        ``confident_harm_bp`` (``confident_harm_bp()``) is what a "confident" penalty basis
        charges, never more than the measured harm and at least 1 bp (a run judged worse is
        never charged nothing); it must be given with that basis.
        """
        if not 0.0 <= precision <= 1.0:
            raise ValueError(f"precision must be in [0, 1], got {precision!r}")
        if decision is Decision.IMPROVED:
            whole = min(self.reward_cap_tinybar, max(effect_bp, 0) * self.reward_tinybar_per_bp)
            return int(whole * precision)  # rounded down to the tinybar
        if decision is Decision.WORSE:
            harm = self.charged_harm_bp(effect_bp, confident_harm_bp)
            return -min(self.penalty_cap_tinybar, harm * self.penalty_tinybar_per_bp)
        return 0

    def charged_harm_bp(self, effect_bp: int, confident_harm_bp: int | None) -> int:
        """The basis points of harm a penalty charges under this basis (see ``price``)."""
        harm = max(-effect_bp, 0)
        if self.penalty_basis == "confident":
            if confident_harm_bp is None:
                raise ValueError("a confident penalty needs confident_harm_bp")
            harm = min(harm, max(confident_harm_bp, 1))
        return harm




def confident_harm_bp(mean_diff_m: float, ci_high_m: float, null_low_m: float,
                      twin_mean_m: float) -> int:
    """The harm [bp of the twin's mean distance] a "worse" verdict is sure of: the smaller of
    the paired interval's upper end below 0 and the mean's distance below the placebos' null.

    A run is judged worse when its whole interval lies below 0 and its mean below the null's
    lower end; the measured mean then also carries the part of the harm that training noise
    alone produces in placebos, and the part the interval cannot exclude. Charging only what is
    beyond both keeps a false penalty (an honest run at the edge of the noise, docs/verdict.md)
    small, and a sabotage far beyond the noise still pays about its whole harm.
    """
    twin = max(twin_mean_m, 1e-9)
    beyond_null = (null_low_m - mean_diff_m) / twin * 10_000
    interval = -ci_high_m / twin * 10_000
    return max(int(np.trunc(min(beyond_null, interval))), 0)


@dataclass(frozen=True)
class Verdict:
    """A decision and all the evidence needed to check or reproduce it.

    ``scores_without_m`` are the twin's scores (the same states labelled by the champion);
    ``null_low_m``/``null_high_m`` the placebo prediction interval at the deciding look.
    ``record()`` is exactly the decision's inputs and outputs (nothing about timing): its
    ``sha256`` is what the audit topic carries and ``crowdlearning verify-verdict`` re-derives.
    """

    contribution_id: str
    contributor_id: str
    contribution_digest: str
    decision: Decision
    reason: str
    champion_version: int
    seed: int
    suite_seeds: list[int]
    runs: int  # paired runs evaluated before stopping
    looks: int
    scores_with_m: list[float]
    scores_without_m: list[float]
    mean_diff_m: float
    ci_low_m: float
    ci_high_m: float
    effect_bp: int  # mean difference relative to the twin's mean, basis points
    confidence: float
    labels: int
    price_tinybar: int
    null_low_m: float = 0.0
    null_high_m: float = 0.0
    baseline: str = "twin"
    # the labels' steering jitter and the share of the reward it leaves (``learning.label_noise``;
    # 0 and 1 when the judge's prices do not use it)
    label_noise: float = 0.0
    label_precision: float = 1.0
    # how the run's input became labels (reaction delay, device model): part of the decision
    label_params: dict = field(default_factory=dict)
    # the judge's configuration (verdict, labels, prices): what re-judging needs
    judge_config: dict = field(default_factory=dict)
    elapsed_s: float = field(default=0.0, compare=False)

    @property
    def confident_harm_bp(self) -> int:
        """``confident_harm_bp`` of this verdict's figures (0 without paired runs)."""
        if not self.scores_without_m:
            return 0
        return confident_harm_bp(self.mean_diff_m, self.ci_high_m, self.null_low_m,
                                 float(np.mean(self.scores_without_m)))

    def record(self) -> dict:
        """The decision's inputs and outputs, without timing (what is hashed and published)."""
        out = asdict(self)
        out.pop("elapsed_s")
        return out

    @property
    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of ``record()``."""
        body = json.dumps(self.record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def public(self) -> dict:
        """What a player is shown: the decision, a rounded effect, the price (no per-run data)."""
        return {"contribution_id": self.contribution_id, "decision": self.decision.value,
                "effect_pct": round(self.effect_bp / 100, 1), "price_tinybar": self.price_tinybar,
                "label_precision": self.label_precision,
                "champion_version": self.champion_version, "reason": self.reason}


class Judge:
    """Judges contributions against one champion (see the module docstring)."""

    def __init__(self, champion: PolicyNet, champion_version: int, champion_data: LabelSet, *,
                 config: VerdictConfig | None = None, prices: PriceSchedule | None = None,
                 labels: LabelConfig | None = None, seed: int | None = None,
                 null_diffs_m: np.ndarray | None = None) -> None:
        self.config = config or VerdictConfig()
        self.prices = prices or PriceSchedule()
        self.label_config = labels or LabelConfig()
        self.champion, self.champion_version = champion, champion_version
        self.champion_policy = Policy(champion)
        self.base = champion_data
        self.seed = seed if seed is not None else 10_007 * (champion_version + 1)
        self.suite = self._focused(self.config.suite())
        self.parts = self._parts()
        # (null_runs, suite runs): per-run differences of placebo contributions (the A/A null);
        # given when measured once for many workers (``JudgeSpec.with_null``)
        self.null_diffs_m = (self._null_diffs() if null_diffs_m is None
                             else np.asarray(null_diffs_m, np.float64))
        self._pooled_judges: dict[int, Judge] = {}  # pool size -> its judge (judge_pooled)
        if self.null_diffs_m.shape != (self.config.null_runs, self.suite.num_runs):
            raise ValueError(f"null_diffs_m has shape {self.null_diffs_m.shape}, expected "
                             f"{(self.config.null_runs, self.suite.num_runs)}")

    def judge(self, contribution: Contribution) -> Verdict:
        """Decide and price ``contribution`` (deterministic: judging again gives the same)."""
        started = time.perf_counter()
        labels = extract_labels(contribution, self.label_config)
        reason = self._adds_nothing(contribution, labels)
        if reason:
            return self._verdict(contribution, Decision.NO_EFFECT, reason, [], [], 0,
                                 len(labels), started)
        with_scores, twin_scores, looks, decision = self._compare(labels)
        verdict = self._verdict(contribution, decision, "", with_scores, twin_scores, looks,
                                len(labels), started)
        return self._priced_by_precision(contribution, verdict)

    def _priced_by_precision(self, contribution: Contribution, verdict: Verdict) -> Verdict:
        """``verdict`` with its labels' jitter recorded and its reward scaled by their precision
        (``PriceSchedule.label_noise_ref``; unchanged when that is 0)."""
        ref = self.prices.label_noise_ref
        if ref <= 0:
            return verdict
        noise = estimate_label_noise(contribution, prior=ref, config=self.label_config)
        precision = precision_factor(noise.sigma, ref)
        return replace(verdict, label_noise=noise.sigma, label_precision=precision,
                       price_tinybar=self.prices.price(verdict.decision, verdict.effect_bp,
                                                       precision, verdict.confident_harm_bp))

    def judge_pooled(self, labels: LabelSet, members: int, *, pool_id: str, digest: str
                     ) -> Verdict:
        """Decide the pooled labels of ``members`` runs as one contribution (``pool_id``,
        contributor ``pool``; ``evaluation.pooled``).

        - On hidden tracks of its own (``POOL_ROTATION`` further on) and fine-tune seeds of its
          own: the members were chosen for a positive effect on this judge's suite and seeds,
          and a test on the same ones would count that selection as evidence.
        - As the merge will treat it, ``members`` contributions among many: its fine-tunes give
          it ``members`` times one contribution's rows of every minibatch (at most the
          champion's own share).
        - Against a null measured the same way, each of ``null_runs`` placebos being
          ``members`` placebos concatenated: the training noise of data its size.

        Priced as one contribution (``evaluation.pooled`` scales the cap and shares it out); the
        record names what the members were judged with alone, so that ``verify`` can rebuild
        this judge."""
        started = time.perf_counter()
        if members < 1 or len(labels) == 0:
            raise ValueError("a pool needs at least one member and some labels")
        pooled = self._pooled_judge(members)
        with_scores, twin_scores, looks, decision = pooled._compare(labels)
        subject = _Subject(pool_id, POOL_CONTRIBUTOR, digest)
        verdict = pooled._verdict(subject, decision, "", with_scores, twin_scores, looks,
                                  len(labels), started)
        return replace(verdict, label_params={
            "pool_members": members, "member_extra_batch": self.config.finetune.extra_batch,
            "member_rotation": self.config.rotation, "member_seed": self.seed})

    def _pooled_judge(self, members: int) -> Judge:
        """This judge for a pool of ``members`` runs (``judge_pooled``): its own suite, seeds,
        fine-tune share and null; built once per size and kept."""
        if members not in self._pooled_judges:
            tune = self.config.finetune
            pooled = copy.copy(self)
            pooled.config = replace(
                self.config, rotation=self.config.rotation + POOL_ROTATION,
                finetune=replace(tune, extra_batch=min(tune.extra_batch * members,
                                                       tune.base_batch)))
            pooled.seed = self.seed + POOL_SEED
            pooled.suite = pooled._focused(pooled.config.suite())
            pooled.parts = pooled._parts()
            pooled._pooled_judges = {}
            runs = self.config.null_runs
            # fresh placebos (another salt than the null's), ``members`` to a pooled placebo
            singles = pooled.placebos(runs * members, salt=0x9001 + members)
            pools = [LabelSet.concat(singles[k * members:(k + 1) * members])
                     for k in range(runs)]
            pooled.null_diffs_m = np.asarray([np.subtract(*pooled._all_scores(p))
                                              for p in pools])
            self._pooled_judges[members] = pooled
        return self._pooled_judges[members]

    def twin_of(self, labels: LabelSet) -> LabelSet:
        """The same rows labelled by the champion itself (same mask, weights and sources)."""
        own = self.champion_policy.act(labels.observations) if len(labels) else np.zeros((0, 2))
        targets = np.where(labels.mask, own, 0.0)
        return LabelSet(labels.observations, targets.astype(np.float32),
                        labels.mask, labels.weights, labels.sources)

    def rejected(self, contribution: Contribution, reason: str) -> Verdict:
        """The verdict for a contribution screening refused: nothing judged, nothing priced."""
        return replace(self._verdict(contribution, Decision.REJECTED, reason, [], [], 0, 0,
                                     time.perf_counter()), price_tinybar=0)

    def _adds_nothing(self, c: Contribution, labels: LabelSet) -> str:
        if len(labels) == 0:
            return "no labels: no input (label mode) or no intervention (takeover mode)"
        if int((correction_ticks(c) & c.label_ticks).sum()) < self.config.min_corrections:
            return "labels copy the policy's own actions: nothing to learn"
        return ""

    # ------------------------------------------------------------------ the comparison
    def _compare(self, labels: LabelSet) -> tuple[list[float], list[float], int, Decision]:
        models = self._models(labels)
        with_scores: list[float] = []
        twin_scores: list[float] = []
        decision = Decision.NO_EFFECT
        for look, part in enumerate(self.parts):
            a, b = self._scores(models, part)
            with_scores.extend(a.tolist())
            twin_scores.extend(b.tolist())
            decision, done = self._decide(np.asarray(with_scores), np.asarray(twin_scores))
            if done:
                return with_scores, twin_scores, look + 1, decision
        return with_scores, twin_scores, self.config.looks, decision

    def _models(self, labels: LabelSet) -> list[tuple[Policy, Policy]]:
        """Per fine-tune seed: the champion fine-tuned with ``labels`` and with their twin, on
        the same minibatches."""
        twin, seeds = self.twin_of(labels), self.finetune_seeds
        nets = finetune_many(self.champion, self.base, [labels, twin] * len(seeds),
                             self.config.finetune, [s for s in seeds for _ in range(2)])
        return [(Policy(nets[2 * k]), Policy(nets[2 * k + 1])) for k in range(len(seeds))]

    @property
    def finetune_seeds(self) -> list[int]:
        return [self.seed + 7_919 * k for k in range(self.config.finetune_seeds)]

    @staticmethod
    def _scores(models: list[tuple[Policy, Policy]], part: EvalSuite
                ) -> tuple[np.ndarray, np.ndarray]:
        """Per run of ``part``: the with-models' and the twins' distance, averaged over seeds."""
        results = evaluate_many([p for pair in models for p in pair], part)
        return (np.mean([r.progress_m for r in results[0::2]], axis=0),
                np.mean([r.progress_m for r in results[1::2]], axis=0))

    def _focused(self, suite: EvalSuite) -> EvalSuite:
        """``suite`` measuring where the champion still fails (docs/verdict.md, "Measuring
        where the champion fails"); unchanged when ``focus_starts`` is 0.

        The champion drives every track of the suite, and ``focus_pool`` x as many hidden
        tracks of the frontier family (the hardest in the suite), by itself, one lap from two
        starts (``learning.uncertainty.failure_approaches``). The suite's frontier tracks become
        the pool's tracks it fails on most (then the others, in the pool's order), and on every
        track it fails, ``focus_starts`` of the starts replay its approach to a failure: the
        run starts where the champion was ``focus_lead_ticks`` before it failed, at the speed,
        offset and heading it had (its failures there in turn; with ``focus_lead_step_ticks``,
        once every failure has a run, the next runs start that much earlier again, so no two
        runs are the same; without it the failures are cycled and a track that failed once
        replays one approach in every focused start); the other starts stay equally spaced.
        Once the champion drives most of the suite safely, runs from uniform starts mostly
        measure laps both models drive alike; the corners it still fails are where labels can
        move it. Deterministic from the champion (re-judging rebuilds the same suite).
        """
        cfg, k = self.config, suite.starts_per_track
        focus = round(cfg.focus_starts * k)
        if focus == 0:
            return suite
        from crowdlearning.learning.uncertainty import failure_approaches

        frontier = suite.family_names[-1]
        slots = [i for i, f in enumerate(suite.families) if f == frontier]
        seeds, families = list(suite.track_seeds), list(suite.families)
        if cfg.focus_pool > 1 and slots:
            pool = EvalSuite.hidden(len(slots) * cfg.focus_pool, rotation=cfg.rotation,
                                    families=(frontier,))
            found = failure_approaches(self.champion_policy, pool.tracks,
                                       max_ticks=cfg.focus_survey_ticks,
                                       lead_ticks=cfg.focus_lead_ticks,
                                       start_speed_mps=suite.start_speed_mps)
            order = sorted(range(len(found)), key=lambda t: -len(found[t]))
            for slot, t in zip(slots, order, strict=False):
                seeds[slot] = pool.track_seeds[t]
        chosen = replace(suite, track_seeds=tuple(seeds), track_families=tuple(families))
        leads = ([cfg.focus_lead_ticks + i * cfg.focus_lead_step_ticks for i in range(focus)]
                 if cfg.focus_lead_step_ticks else cfg.focus_lead_ticks)
        approaches = failure_approaches(self.champion_policy, chosen.tracks,
                                        max_ticks=cfg.focus_survey_ticks, lead_ticks=leads,
                                        start_speed_mps=suite.start_speed_mps)
        if not any(approaches):
            return chosen
        fracs: list[float] = []
        motion: list[tuple[float, float, float]] = []
        for track, found in zip(chosen.tracks, approaches, strict=True):
            placed = 0 if not found else focus
            for j in range(placed):
                a = found[j % len(found)]
                fracs.append((a.s_m % track.length_m) / track.length_m)
                motion.append((a.speed_mps, a.lateral_m, a.heading_rad))
            rest = k - placed
            fracs.extend(i / rest for i in range(rest))
            motion.extend([(suite.start_speed_mps, 0.0, 0.0)] * rest)
        return replace(chosen, start_fracs=tuple(fracs), start_motion=tuple(motion))

    def _parts(self) -> list[EvalSuite]:
        """The suite cut into the looks' parts (consecutive tracks, in the suite's order)."""
        cfg, suite = self.config, self.suite
        return [suite.part(i, i + cfg.tracks_per_look)
                for i in range(0, len(suite.track_seeds), cfg.tracks_per_look)]

    def _null_diffs(self) -> np.ndarray:
        """Per-run differences (placebo minus its twin) for ``null_runs`` placebos.

        A placebo (``placebos``) is a contribution that carries no information, measured
        exactly as a contribution is (paired fine-tunes, the same suite), so the spread of its
        effects is the training noise a real effect must clear.
        """
        return np.asarray([np.subtract(*self._all_scores(p))
                           for p in self.placebos(self.config.null_runs)])

    def placebos(self, count: int, salt: int = 0xA1A) -> list[LabelSet]:
        """``count`` placebo contributions: the champion driving a play track by itself for a
        run's length, labelled with its own actions plus Gaussian noise of ``null_noise``, cut
        to 5-100% of the run and weighted 1 or ``intervention_weight`` (label or takeover).

        ``salt`` keys their generator: the null's placebos use the default; an A/A check
        (``placebo_decisions``) draws fresh ones with another salt. Where they drive: easy play
        tracks from the start line, or (``null_follows_suite``) play tracks of the suite's
        families in its proportions from random places. A placebo ends at the champion's first
        exit, or (``null_full_runs``) the champion is put back on the centreline and drives
        on for ``null_ticks``.
        """
        cfg = self.config
        rng = np.random.default_rng([self.seed, salt])
        seeds = rng.choice(1_000_000, size=count, replace=False)
        if cfg.null_follows_suite:
            # the suite's families in its proportions, from random places, as the crowd plays
            families = rng.choice(np.asarray(self.suite.families), size=count)
            tracks = [family_track(str(f), int(s)) for f, s in zip(families, seeds, strict=True)]
            starts: np.ndarray | float = rng.uniform(0, 1, len(tracks)) * np.array(
                [t.length_m for t in tracks])
        else:
            tracks = [generate_track(int(s)) for s in seeds]
            starts = 0.0  # started as the game started a run (the start line)
        sim = RaceSim(tracks, len(tracks), max_steps=cfg.null_ticks)
        sim.reset_cars(np.arange(len(tracks)), track_index=np.arange(len(tracks)),
                       start_s_m=starts, speed_mps=self.suite.start_speed_mps)
        obs_rows: list[list[np.ndarray]] = [[] for _ in tracks]
        while sim.alive.any():
            obs = sim.observe()
            for i in np.flatnonzero(sim.alive):
                obs_rows[i].append(obs[i])
            step = sim.step(self.champion_policy.act(obs))
            if cfg.null_full_runs:
                # a champion that fails fast would give placebos of a few rows, far smaller
                # than the crowd's runs, and a null made of tiny-sample fine-tune chaos
                # (a car's ``steps`` is its rows so far: kept across the reset, so the run
                # still ends at ``null_ticks``)
                again = np.flatnonzero(step.terminated & (sim.steps < cfg.null_ticks))
                if again.size:
                    driven = sim.steps[again].copy()
                    sim.reset_cars(again, track_index=again, start_s_m=sim.frenet[again, 0],
                                   speed_mps=self.suite.start_speed_mps)
                    sim.steps[again] = driven
        out = []
        for i, rows in enumerate(obs_rows):
            # contributions range from a few dozen takeover ticks (weighted) to a whole run of
            # labels: placebos span the same range, so the null covers both
            keep = max(2, int(len(rows) * float(np.exp(rng.uniform(np.log(0.05), 0.0)))))
            observations = np.asarray(rows[:keep], np.float32)
            own = self.champion_policy.act(observations)
            noisy = np.clip(own + rng.normal(0.0, cfg.null_noise, own.shape), -1.0, 1.0)
            weight = self.label_config.intervention_weight if i % 2 else 1.0
            out.append(LabelSet.from_actions(observations, noisy, f"placebo-{i}", weight))
        return out

    def placebo_decisions(self, count: int, salt: int = 0xAA) -> list[tuple[Decision, float]]:
        """The A/A check: ``count`` fresh placebos (not the null's: another ``salt``) judged
        as contributions are, past the copier check (which would call them all "no effect"):
        per placebo its decision and mean difference [m]. Data carrying nothing should be
        judged improved or worse at most at the stated error rates."""
        out = []
        for labels in self.placebos(count, salt):
            with_scores, twin_scores, _, decision = self._compare(labels)
            out.append((decision, float(np.mean(np.subtract(with_scores, twin_scores)))))
        return out

    def _all_scores(self, labels: LabelSet) -> tuple[np.ndarray, np.ndarray]:
        """Every run of the suite, no early stop (the looks' parts, in one simulator batch)."""
        return self._scores(self._models(labels), self.suite)

    def _quantiles(self, dof: int) -> tuple[float, float]:
        """t quantiles of the lower (reward) and upper (penalty) bounds: each side at half its
        error rate, split over the looks (Bonferroni)."""
        cfg = self.config
        reward_alpha = (1.0 - cfg.confidence) / cfg.looks
        penalty_alpha = (1.0 - cfg.penalty_confidence) / cfg.looks
        return (float(stats.t.ppf(1 - reward_alpha / 2, dof)),
                float(stats.t.ppf(1 - penalty_alpha / 2, dof)))

    def _interval(self, diffs: np.ndarray) -> tuple[float, float]:
        """The suite's paired interval: the lower end at the reward's level, the upper end at
        the (stricter) penalty's level."""
        sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
        q_low, q_high = self._quantiles(len(diffs) - 1)
        se, mean = sd / np.sqrt(len(diffs)), float(diffs.mean())
        return mean - q_low * se, mean + q_high * se

    def null_interval(self, runs: int) -> tuple[float, float]:
        """The placebos' prediction interval for a mean difference over the first ``runs`` runs
        (the same levels as the suite's interval: a penalty needs the stricter one) [m]."""
        means = self.null_diffs_m[:, :runs].mean(axis=1)
        k = len(means)
        q_high, q_low = self._quantiles(k - 1)  # above the null: reward; below: penalty
        spread = float(means.std(ddof=1)) * np.sqrt(1 + 1 / k)
        centre = float(means.mean())
        return centre - q_low * spread, centre + q_high * spread

    def _margin_m(self, twin: np.ndarray) -> float:
        return self.config.margin_pct / 100 * float(twin.mean())

    def _decide(self, with_scores: np.ndarray, twin: np.ndarray) -> tuple[Decision, bool]:
        diffs = with_scores - twin
        low, high = self._interval(diffs)
        null_low, null_high = self.null_interval(len(diffs))
        mean, margin = float(diffs.mean()), self._margin_m(twin)
        if low > margin and mean > null_high:
            return Decision.IMPROVED, True
        if high < -margin and mean < null_low:
            return Decision.WORSE, True
        return Decision.NO_EFFECT, (-margin <= low and high <= margin)

    def _verdict(self, c: Contribution | _Subject, decision: Decision, reason: str,
                 with_scores: list[float], twin_scores: list[float], looks: int, n_labels: int,
                 started: float) -> Verdict:
        twin = np.asarray(twin_scores)
        diffs = np.asarray(with_scores) - twin
        n = len(diffs)
        low, high = self._interval(diffs) if n > 1 else (0.0, 0.0)
        null_low, null_high = self.null_interval(n) if n else (0.0, 0.0)
        mean = float(diffs.mean()) if n else 0.0
        effect_bp = int(np.trunc(mean / max(float(twin.mean()), 1e-9) * 10_000)) if n else 0
        sure_bp = confident_harm_bp(mean, high, null_low, float(twin.mean())) if n else 0
        return Verdict(
            contribution_id=c.contribution_id, contributor_id=c.contributor_id,
            contribution_digest=c.digest, decision=decision, reason=reason,
            champion_version=self.champion_version, seed=self.seed,
            suite_seeds=list(self.suite.track_seeds), runs=n, looks=looks,
            scores_with_m=[float(s) for s in with_scores],
            scores_without_m=[float(s) for s in twin_scores],
            mean_diff_m=mean, ci_low_m=low, ci_high_m=high, effect_bp=effect_bp,
            confidence=self.config.confidence, labels=n_labels,
            price_tinybar=self.prices.price(decision, effect_bp, confident_harm_bp=sure_bp),
            null_low_m=null_low, null_high_m=null_high, label_params=label_params_of(c),
            judge_config=self.config_record(), elapsed_s=time.perf_counter() - started)

    def config_record(self) -> dict:
        """The judge's configuration as plain data (see ``Judge.from_config_record``)."""
        verdict = asdict(self.config)
        if tuple(verdict["families"]) == ("easy",):
            del verdict["families"]  # easy only: the record verdicts always had
        if not verdict["focus_lead_step_ticks"]:
            del verdict["focus_lead_step_ticks"]  # off: as records were before it existed
        if not verdict["null_full_runs"]:
            del verdict["null_full_runs"]  # off: as records were before it existed
        prices = asdict(self.prices)
        if prices["penalty_basis"] == "effect":
            del prices["penalty_basis"]  # the whole harm: as records were before it existed
        record = {"verdict": verdict, "labels": asdict(self.label_config), "prices": prices}
        # as JSON has it (tuples become lists): a published record and a re-judged one compare
        # equal field by field, not only by hash
        return json.loads(json.dumps(record))

    @classmethod
    def from_config_record(cls, record: dict, champion: PolicyNet, champion_version: int,
                           champion_data: LabelSet, seed: int) -> Judge:
        """A judge configured as ``config_record()`` says (to re-judge a published verdict)."""
        verdict = dict(record["verdict"])
        verdict["finetune"] = FinetuneConfig(**verdict["finetune"])
        verdict["families"] = tuple(verdict.get("families", ("easy",)))
        return cls(champion, champion_version, champion_data, config=VerdictConfig(**verdict),
                   prices=PriceSchedule(**record["prices"]),
                   labels=LabelConfig(**record["labels"]), seed=seed)


POOL_CONTRIBUTOR = "pool"  # the contributor of a pooled verdict (``Judge.judge_pooled``)
# a pool is judged on the hidden suite this many rotations further on, with fine-tune seeds this
# much further on, than its members were (``Judge.judge_pooled``)
POOL_ROTATION = 3_000_000
POOL_SEED = 104_729


@dataclass(frozen=True)
class _Subject:
    """What a verdict names of what it judged, for a pool (a contribution has these too)."""

    contribution_id: str
    contributor_id: str
    digest: str
    meta: dict = field(default_factory=dict)


def label_params_of(contribution: Contribution | _Subject) -> dict:
    """What of a contribution's meta decides how its input becomes labels (the reaction delay,
    the device model's parameters, the ticks already covered this round), and the secret seed
    the server drew the run's start from: recorded in its verdict."""
    return {k: v for k, v in sorted(contribution.meta.items())
            if k in (DELAY_META_KEY, COVERED_META_KEY, "start_seed", "disturbance_std")
            or k.startswith("device")}
