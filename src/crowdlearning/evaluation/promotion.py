"""When a candidate model may replace the champion: not less safe, and not slower.

Both are driven on the same hidden runs (``evaluation.suite``). The candidate is promoted only if

- it completes at least as many laps and leaves the track no more often (safety), and its mean
  progress is not lower; and
- on the runs *both* complete, its mean lap time is at most ``pace_tolerance`` (2%) above the
  champion's (pace). Comparing only common runs keeps a candidate that newly finishes a hard,
  slow track from looking slower for it; a candidate that finishes fewer runs already failed the
  safety test.

A model that got safer by crawling (v1 of a demo once completed more laps at 67.8 s a lap where v0
took 36.1 s) is refused, with the reason.

``protected`` families (the ones the champion already mastered: every unlocked family but the
frontier) must each keep at least as many completed laps: safety counted over the whole suite
let a candidate lose an easy family and pass on what it gained on the hard ones (a demo's
champion went from 88% to 56% of the easy laps that way, ``docs/verdict.md``).

Exits weighed against laps (``exit_confidence``, off by default). Counting exits strictly refused
candidates that finish far more laps for one or two exits more on a 32-run suite: a champion that
crawls seldom leaves the track but fails to finish a quarter of its laps (W5 of the issue 11
market: v1 2 exits and 121 laps in 160 runs, its refused v10 8 exits and 152 laps). With
``exit_confidence`` c > 0, more exits refuse the candidate only when

- it does not complete more laps than the champion (a failure to finish is a failure whether the
  car left the track or ran out of time: it must fail less in total), or
- the suite shows with confidence c that it leaves the track more often: the exact one-sided sign
  test on the runs (same track and start) where exactly one of the two left the track
  (McNemar's exact test) gives p < 1 - c. At c = 0.9 on 32 runs: 2 or 3 exits more against none
  pass when paid for with more laps; 4 against none (p = 0.0625) refuse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crowdlearning.config import get_settings
from crowdlearning.evaluation.suite import EvalResult
from crowdlearning.sim.families import EASY

__all__ = ["PACE_TOLERANCE", "Promotion", "as_safe", "exits_more_p", "promotion"]

PACE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str  # why not (empty when promoted)
    champion_lap_s: float | None  # mean lap time on the runs both complete
    candidate_lap_s: float | None
    # the sign test's p-value when the candidate exits more and exits are weighed against laps
    # (``exit_confidence`` > 0); None otherwise
    exits_more_p: float | None = None

    def to_dict(self) -> dict:
        out = {"promoted": self.promoted, "reason": self.reason,
               "champion_common_lap_s": self.champion_lap_s,
               "candidate_common_lap_s": self.candidate_lap_s}
        if self.exits_more_p is not None:
            out["exits_more_p"] = self.exits_more_p
        return out


def promotion(candidate: EvalResult, champion: EvalResult, *,
              pace_tolerance: float | None = None,
              protected: Sequence[str] = (),
              exit_confidence: float | None = None) -> Promotion:
    """Whether ``candidate`` may replace ``champion`` (both on the same suite's runs);
    ``pace_tolerance`` None: the settings' (``promotion_pace_tolerance``, 2% by default);
    ``protected``: families in which it may not complete fewer laps; ``exit_confidence`` None:
    the settings' (``promotion_exit_confidence``; 0 counts exits strictly) (module
    docstring)."""
    if pace_tolerance is None:
        pace_tolerance = get_settings().promotion_pace_tolerance
    exit_confidence = _exit_confidence(exit_confidence)
    if len(candidate.completed) != len(champion.completed):
        raise ValueError("candidate and champion must be evaluated on the same runs")
    common = candidate.completed & champion.completed
    cand_lap = float(np.mean(candidate.lap_time_s[common])) if common.any() else None
    champ_lap = float(np.mean(champion.lap_time_s[common])) if common.any() else None
    reasons, exits_p = _safety(candidate, champion, protected, exit_confidence)
    if cand_lap is not None and champ_lap is not None \
            and cand_lap > champ_lap * (1.0 + pace_tolerance):
        reasons.append(f"slower: {cand_lap:.1f} s a lap vs {champ_lap:.1f} s on the laps both "
                       "finish")
    return Promotion(not reasons, "; ".join(reasons), champ_lap, cand_lap, exits_p)


def as_safe(candidate: EvalResult, champion: EvalResult,
            exit_confidence: float | None = None) -> bool:
    """``candidate`` passes the safety half of ``promotion`` against ``champion`` (laps,
    exits, progress over the whole suite), whatever its pace; ``exit_confidence`` as in
    ``promotion``."""
    return not _safety(candidate, champion, (), _exit_confidence(exit_confidence))[0]


def _exit_confidence(value: float | None) -> float:
    """``value``, or the settings' when None; checked: in [0, 1) (1 would never refuse)."""
    if value is None:
        value = get_settings().promotion_exit_confidence
    if not 0.0 <= value < 1.0:
        raise ValueError(f"exit_confidence must be in [0, 1), got {value}")
    return value


def exits_more_p(candidate: EvalResult, champion: EvalResult) -> float:
    """One-sided p-value that ``candidate`` leaves the track more often than ``champion`` on
    the same runs: the exact sign test (McNemar's exact test) on the runs where exactly one of
    them left the track; 1.0 when no run tells them apart."""
    only_cand = int((candidate.exited & ~champion.exited).sum())
    only_champ = int((champion.exited & ~candidate.exited).sum())
    n = only_cand + only_champ
    if n == 0:
        return 1.0
    # P(X >= only_cand), X ~ Binomial(n, 1/2): exact in integers, then one division
    return sum(math.comb(n, k) for k in range(only_cand, n + 1)) / 2 ** n


def _safety(candidate: EvalResult, champion: EvalResult, protected: Sequence[str],
            exit_confidence: float) -> tuple[list[str], float | None]:
    """Why ``candidate`` is less safe than ``champion`` (empty: it is not); second, the sign
    test's p-value when it exits more and exits are weighed (``exit_confidence`` > 0; else
    None)."""
    reasons, p = [], None
    cand_laps, champ_laps = int(candidate.completed.sum()), int(champion.completed.sum())
    if cand_laps < champ_laps:
        reasons.append(f"completes fewer laps ({cand_laps} vs {champ_laps})")
    cand_exits, champ_exits = int(candidate.exited.sum()), int(champion.exited.sum())
    if cand_exits > champ_exits:
        more = f"leaves the track more often ({cand_exits} vs {champ_exits} runs"
        if exit_confidence <= 0.0:
            reasons.append(f"{more})")
        else:
            p = exits_more_p(candidate, champion)
            if cand_laps <= champ_laps:
                reasons.append(f"{more}) without finishing more laps")
            elif p < 1.0 - exit_confidence:
                reasons.append(f"{more}; p = {p:.3f} < {1.0 - exit_confidence:.2f})")
    if candidate.progress_frac.mean() < champion.progress_frac.mean() - 1e-9:
        reasons.append("drives less far")
    reasons += [f"completes fewer laps on {family} tracks"
                for family in _less_safe_in(candidate, champion, protected)]
    return reasons, p


def _less_safe_in(candidate: EvalResult, champion: EvalResult,
                  families: Sequence[str]) -> list[str]:
    """The ``families`` in which ``candidate`` completes fewer of the suite's laps."""
    if not families:
        return []
    of = (champion.track_family if champion.track_family is not None
          else np.full(len(champion.completed), EASY.name))
    return [f for f in families if (of == f).any()
            and candidate.completed[of == f].sum() < champion.completed[of == f].sum()]

