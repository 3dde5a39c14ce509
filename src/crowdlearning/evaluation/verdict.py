"""The verdict: did this contribution improve the model? With what confidence, at what price.

For a champion version and a seed, ``Judge`` fine-tunes the champion on its own data once (the
counterfactual "without", shared by every contribution judged against that champion) and scores
it on the hidden verdict suite. For each contribution it fine-tunes again with the contribution's
labels mixed into the very same minibatches (``learning.finetune``), so the two models differ by
the data alone. Both drive the same tracks from the same starts (common random numbers); the
per-run difference in distance driven within the window is the evidence.

Decision: a sequential paired t-interval on the mean difference, looked at after every
``tracks_per_look`` tracks; each look uses ``(1 - confidence) / looks`` (Bonferroni), so the
whole procedure keeps the stated confidence. ``improved`` when the interval's lower end clears
``+margin``, ``worse`` when its upper end is below ``-margin``, ``no_effect`` when it lies inside
``[-margin, +margin]`` or when the suite is used up. The margin (relative to the counterfactual's
mean) is what an improvement must clear before it pays, as in the Ladder mechanism.

Price: reward = effect in basis points x rate, capped; penalty likewise; no effect is free.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum

import numpy as np
from scipy import stats

from crowdlearning.config import Settings
from crowdlearning.evaluation.suite import EvalSuite, evaluate
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.finetune import FinetuneConfig, finetune
from crowdlearning.learning.labels import LabelConfig, LabelSet, extract_labels
from crowdlearning.policy.network import Policy, PolicyNet

__all__ = ["Decision", "Judge", "PriceSchedule", "Verdict", "VerdictConfig"]


class Decision(StrEnum):
    IMPROVED = "improved"
    NO_EFFECT = "no_effect"
    WORSE = "worse"
    REJECTED = "rejected"


@dataclass(frozen=True)
class VerdictConfig:
    confidence: float = 0.95
    margin_pct: float = 0.5  # the effect must clear this before it counts [% of mean distance]
    suite_size: int = 24  # hidden tracks in the verdict suite
    starts_per_track: int = 4
    window_ticks: int = 400  # each run: 20 s of driving
    tracks_per_look: int = 12  # two looks: clear cases stop at half the suite
    rotation: int = 0  # which hidden suite (rotates)
    lazy_threshold: float = 0.02  # mean |label - policy| below this adds nothing
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> VerdictConfig:
        return cls(confidence=settings.verdict_confidence,
                   margin_pct=settings.verdict_margin_pct,
                   suite_size=settings.verdict_suite_size,
                   starts_per_track=settings.verdict_starts_per_track,
                   window_ticks=settings.verdict_window_ticks,
                   tracks_per_look=settings.verdict_tracks_per_look,
                   finetune=FinetuneConfig(updates=settings.verdict_finetune_updates))

    @property
    def looks(self) -> int:
        """How many times the sequential test looks at the evidence."""
        return int(np.ceil(self.suite_size / self.tracks_per_look))

    def suite(self) -> EvalSuite:
        return EvalSuite.hidden(self.suite_size, rotation=self.rotation,
                                starts_per_track=self.starts_per_track, laps=10_000,
                                max_steps=self.window_ticks)


@dataclass(frozen=True)
class PriceSchedule:
    """Tinybars per basis point of measured effect, and caps (1 HBAR = 100,000,000 tinybar)."""

    reward_tinybar_per_bp: int = 100_000
    reward_cap_tinybar: int = 100_000_000
    penalty_tinybar_per_bp: int = 100_000
    penalty_cap_tinybar: int = 10_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceSchedule:
        return cls(reward_tinybar_per_bp=settings.price_reward_tinybar_per_bp,
                   reward_cap_tinybar=settings.price_reward_cap_tinybar,
                   penalty_tinybar_per_bp=settings.price_penalty_tinybar_per_bp,
                   penalty_cap_tinybar=settings.price_penalty_cap_tinybar)

    def price(self, decision: Decision, effect_bp: int) -> int:
        """Signed amount: > 0 reward, < 0 penalty, 0 for no effect or rejection."""
        if decision is Decision.IMPROVED:
            return min(self.reward_cap_tinybar, effect_bp * self.reward_tinybar_per_bp)
        if decision is Decision.WORSE:
            return -min(self.penalty_cap_tinybar, -effect_bp * self.penalty_tinybar_per_bp)
        return 0


@dataclass(frozen=True)
class Verdict:
    """A decision and all the evidence needed to check or reproduce it."""

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
    effect_bp: int  # mean difference relative to the counterfactual mean, basis points
    confidence: float
    labels: int
    price_tinybar: int
    elapsed_s: float = field(default=0.0, compare=False)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def public(self) -> dict:
        """What a player is shown: the decision, a rounded effect, the price (no per-run data)."""
        return {"contribution_id": self.contribution_id, "decision": self.decision.value,
                "effect_pct": round(self.effect_bp / 100, 1), "price_tinybar": self.price_tinybar,
                "champion_version": self.champion_version, "reason": self.reason}


class Judge:
    """Judges contributions against one champion (see the module docstring)."""

    def __init__(self, champion: PolicyNet, champion_version: int, champion_data: LabelSet, *,
                 config: VerdictConfig | None = None, prices: PriceSchedule | None = None,
                 labels: LabelConfig | None = None, seed: int | None = None) -> None:
        self.config = config or VerdictConfig()
        self.prices = prices or PriceSchedule()
        self.label_config = labels or LabelConfig()
        self.champion, self.champion_version = champion, champion_version
        self.base = champion_data
        self.seed = seed if seed is not None else 10_007 * (champion_version + 1)
        self.suite = self.config.suite()
        self.counterfactual = finetune(champion, champion_data, None, self.config.finetune,
                                       self.seed)
        self.without_m = evaluate(Policy(self.counterfactual), self.suite).progress_m

    def judge(self, contribution: Contribution) -> Verdict:
        """Decide and price ``contribution`` (deterministic: judging again gives the same)."""
        started = time.perf_counter()
        labels = extract_labels(contribution, self.label_config)
        reason = self._adds_nothing(contribution, labels)
        if reason:
            return self._verdict(contribution, Decision.NO_EFFECT, reason, [], 0, len(labels),
                                 started)
        with_net = finetune(self.champion, self.base, labels, self.config.finetune, self.seed)
        scores, looks, decision = self._sequential(Policy(with_net))
        return self._verdict(contribution, decision, "", scores, looks, len(labels), started)

    def rejected(self, contribution: Contribution, reason: str) -> Verdict:
        """The verdict for a contribution screening refused: nothing judged, nothing priced."""
        return replace(self._verdict(contribution, Decision.REJECTED, reason, [], 0, 0,
                                     time.perf_counter()), price_tinybar=0)

    def _adds_nothing(self, c: Contribution, labels: LabelSet) -> str:
        if len(labels) == 0:
            return "no labels: no input (label mode) or no intervention (takeover mode)"
        rows = np.flatnonzero(c.intervention if c.mode == "takeover" else c.has_input)
        given = np.isfinite(c.player[rows])
        gap = np.abs(np.where(given, c.player[rows] - c.proposed[rows], 0.0)).sum()
        if gap / max(given.sum(), 1) < self.config.lazy_threshold:
            return "labels copy the policy's own actions: nothing to learn"
        return ""

    def _sequential(self, policy: Policy) -> tuple[list[float], int, Decision]:
        cfg, suite = self.config, self.suite
        per_track = cfg.starts_per_track
        n_looks = cfg.looks
        scores: list[float] = []
        decision = Decision.NO_EFFECT
        for look in range(n_looks):
            seeds = suite.track_seeds[look * cfg.tracks_per_look:(look + 1) * cfg.tracks_per_look]
            part = EvalSuite(seeds, starts_per_track=per_track, laps=suite.laps,
                             max_steps=suite.max_steps, start_speed_mps=suite.start_speed_mps)
            scores.extend(evaluate(policy, part).progress_m.tolist())
            decision, done = self._decide(np.asarray(scores), n_looks)
            if done:
                return scores, look + 1, decision
        return scores, n_looks, decision

    def _interval(self, diffs: np.ndarray, n_looks: int) -> tuple[float, float]:
        alpha = (1.0 - self.config.confidence) / n_looks
        sd = float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
        half = float(stats.t.ppf(1 - alpha / 2, len(diffs) - 1)) * sd / np.sqrt(len(diffs))
        mean = float(diffs.mean())
        return mean - half, mean + half

    def _margin_m(self) -> float:
        return self.config.margin_pct / 100 * float(self.without_m.mean())

    def _decide(self, scores: np.ndarray, n_looks: int) -> tuple[Decision, bool]:
        diffs = scores - self.without_m[: len(scores)]
        low, high = self._interval(diffs, n_looks)
        margin = self._margin_m()
        if low > margin:
            return Decision.IMPROVED, True
        if high < -margin:
            return Decision.WORSE, True
        return Decision.NO_EFFECT, (-margin <= low and high <= margin)

    def _verdict(self, c: Contribution, decision: Decision, reason: str, scores: list[float],
                 looks: int, n_labels: int, started: float) -> Verdict:
        without = self.without_m[: len(scores)]
        diffs = np.asarray(scores) - without
        n_looks = self.config.looks
        low, high = self._interval(diffs, n_looks) if len(scores) > 1 else (0.0, 0.0)
        mean = float(diffs.mean()) if len(scores) else 0.0
        effect_bp = int(np.trunc(mean / max(float(without.mean()), 1e-9) * 10_000)) if len(
            scores) else 0
        return Verdict(
            contribution_id=c.contribution_id, contributor_id=c.contributor_id,
            contribution_digest=c.digest, decision=decision, reason=reason,
            champion_version=self.champion_version, seed=self.seed,
            suite_seeds=list(self.suite.track_seeds), runs=len(scores), looks=looks,
            scores_with_m=[float(s) for s in scores], scores_without_m=without.tolist(),
            mean_diff_m=mean, ci_low_m=low, ci_high_m=high, effect_bp=effect_bp,
            confidence=self.config.confidence, labels=n_labels,
            price_tinybar=self.prices.price(decision, effect_bp),
            elapsed_s=time.perf_counter() - started)
