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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crowdlearning.config import get_settings
from crowdlearning.evaluation.suite import EvalResult
from crowdlearning.sim.families import EASY

__all__ = ["PACE_TOLERANCE", "Promotion", "as_safe", "promotion"]

PACE_TOLERANCE = 0.02


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str  # why not (empty when promoted)
    champion_lap_s: float | None  # mean lap time on the runs both complete
    candidate_lap_s: float | None

    def to_dict(self) -> dict:
        return {"promoted": self.promoted, "reason": self.reason,
                "champion_common_lap_s": self.champion_lap_s,
                "candidate_common_lap_s": self.candidate_lap_s}


def promotion(candidate: EvalResult, champion: EvalResult, *,
              pace_tolerance: float | None = None,
              protected: Sequence[str] = ()) -> Promotion:
    """Whether ``candidate`` may replace ``champion`` (both on the same suite's runs);
    ``pace_tolerance`` None: the settings' (``promotion_pace_tolerance``, 2% by default);
    ``protected``: families in which it may not complete fewer laps (module docstring)."""
    if pace_tolerance is None:
        pace_tolerance = get_settings().promotion_pace_tolerance
    if len(candidate.completed) != len(champion.completed):
        raise ValueError("candidate and champion must be evaluated on the same runs")
    common = candidate.completed & champion.completed
    cand_lap = float(np.mean(candidate.lap_time_s[common])) if common.any() else None
    champ_lap = float(np.mean(champion.lap_time_s[common])) if common.any() else None
    reasons = _safety_reasons(candidate, champion, protected)
    if cand_lap is not None and champ_lap is not None \
            and cand_lap > champ_lap * (1.0 + pace_tolerance):
        reasons.append(f"slower: {cand_lap:.1f} s a lap vs {champ_lap:.1f} s on the laps both "
                       "finish")
    return Promotion(not reasons, "; ".join(reasons), champ_lap, cand_lap)


def as_safe(candidate: EvalResult, champion: EvalResult) -> bool:
    """``candidate`` passes the safety half of ``promotion`` against ``champion`` (laps,
    exits, progress over the whole suite), whatever its pace."""
    return not _safety_reasons(candidate, champion, ())


def _safety_reasons(candidate: EvalResult, champion: EvalResult,
                    protected: Sequence[str]) -> list[str]:
    """Why ``candidate`` is less safe than ``champion`` (empty: it is not)."""
    reasons = []
    if candidate.completed.sum() < champion.completed.sum():
        reasons.append(f"completes fewer laps ({int(candidate.completed.sum())} vs "
                       f"{int(champion.completed.sum())})")
    if candidate.exited.sum() > champion.exited.sum():
        reasons.append(f"leaves the track more often ({int(candidate.exited.sum())} vs "
                       f"{int(champion.exited.sum())} runs)")
    if candidate.progress_frac.mean() < champion.progress_frac.mean() - 1e-9:
        reasons.append("drives less far")
    reasons += [f"completes fewer laps on {family} tracks"
                for family in _less_safe_in(candidate, champion, protected)]
    return reasons


def _less_safe_in(candidate: EvalResult, champion: EvalResult,
                  families: Sequence[str]) -> list[str]:
    """The ``families`` in which ``candidate`` completes fewer of the suite's laps."""
    if not families:
        return []
    of = (champion.track_family if champion.track_family is not None
          else np.full(len(champion.completed), EASY.name))
    return [f for f in families if (of == f).any()
            and candidate.completed[of == f].sum() < champion.completed[of == f].sum()]

