"""Pace calibration: a candidate that got safer but slower trades its spare safety for pace.

Merging the crowd's corrections makes a model safer and, measured, a little slower: the
corrections cluster where the champion fails (hard corners, where the labels brake), so the
merged model brakes a little more everywhere. In ``crowdlearning demo --rounds 10`` six of eight
promotions were safer but 0.03-1.6% slower on the laps both models finish, and with a strict
pace rule only one of nine candidates was promoted (``docs/verdict.md``).
Measured since: the crowd's careful expert is slower than the models, and the pace was lost on the
families the champion had already mastered; merges anchored on the champion's own driving there
(``learning.anchors``) keep most of it, and calibration is what is left for the rest.

Throttle is one output of the policy (``tanh`` of the last layer's second unit), so its bias is
a one-number dial between pace and safety: on one champion's candidate, measured on 32 hidden
runs, +0.1 on that bias took its lap from 72.2 s to 68.5 s and its lap completion from 87.5% to
81.2%; +0.5 to 51.7 s and 53.1%; on another, +0.1 was free (84.4% of laps against 81.2%, 71.0
s against 70.0 s). ``calibrate_pace`` turns the dial up in small steps, on a hidden
*calibration* suite of its own (its rotation range is used by no verdict, promotion or mastery
suite, so the gate that decides the promotion is not the data the dial was tuned on), and keeps
the smallest step at which the candidate is at least as fast as the champion there *and* loses
no safety: at least as safe as the champion and as the candidate as trained (laps completed,
exits, progress). It takes only pace that costs nothing measurable. Trading the candidate's
spare safety for pace (safe against the champion only) was tried first: in a 10-round demo a
calibrated champion then drove 56% of the easy laps of the learning curve's suite where its
predecessor drove 88% (the promotion suite counts safety over all its families: 81% of its laps
against 72%, gained on the hard ones). No such step:
the candidate is left as it was, and the promotion judges it as it is.

The round (``platform.service``, ``promotion_pace_calibration``) calibrates every candidate that
is at least as safe as the champion but slower on the promotion suite's common laps, even one
within ``promotion_pace_tolerance``. The calibrated model is used only if it is then neither
slower nor less safe on the promotion suite too (no tolerance); it is registered as a version
of its own (parent: the candidate as trained, no contributions of its own, ``training.kind``
``pace``), so the lineage says what was done, and the next round fine-tunes from it. Otherwise
the candidate is judged as it was trained, with the tolerance.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from crowdlearning.evaluation.promotion import as_safe, promotion
from crowdlearning.evaluation.suite import EvalResult, EvalSuite, evaluate_many
from crowdlearning.policy.network import Policy, PolicyNet

__all__ = ["CALIBRATION_ROTATION", "STEPS", "PaceCalibration", "calibrate_pace",
           "calibration_suite", "is_slower_but_safe", "throttle_shifted"]

CALIBRATION_ROTATION = 2_000_000  # hidden suites of this range: calibration only
# throttle bias tried, smallest first; the search stops at the first step that costs safety.
# Measured in a 10-round demo (seed 0, strict pace): the three candidates it calibrated all took
# the largest step tried then (0.2), two of them were promoted; so the range goes further
STEPS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4)
THROTTLE = 1  # the action's throttle unit (steer, throttle)


@dataclass(frozen=True)
class PaceCalibration:
    """What ``calibrate_pace`` found: the bias added (0: none), and the calibration suite's
    figures for the champion and the chosen candidate."""

    throttle_bias: float
    champion_lap_s: float | None
    candidate_lap_s: float | None  # as trained
    calibrated_lap_s: float | None  # with the bias (= candidate_lap_s when 0)
    tried: int  # biases evaluated

    def to_dict(self) -> dict:
        return {"throttle_bias": self.throttle_bias, "champion_lap_s": self.champion_lap_s,
                "candidate_lap_s": self.candidate_lap_s,
                "calibrated_lap_s": self.calibrated_lap_s, "tried": self.tried}


def throttle_shifted(net: PolicyNet, bias: float) -> PolicyNet:
    """A copy of ``net`` whose throttle output's last-layer bias is ``bias`` higher."""
    shifted = copy.deepcopy(net)
    last = [m for m in shifted.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.bias[THROTTLE] += float(bias)
    return shifted


def calibration_suite(families: Sequence[str], version: int, *, tracks: int = 16,
                      like: EvalSuite | None = None) -> EvalSuite:
    """The hidden calibration suite for candidate ``version`` within ``families`` (rollout
    rules of ``like``, the promotion suite, when given)."""
    rules = {} if like is None else {"starts_per_track": like.starts_per_track,
                                     "start_speed_mps": like.start_speed_mps,
                                     "laps": like.laps, "max_steps": like.max_steps}
    return EvalSuite.hidden(max(tracks, len(families)), rotation=CALIBRATION_ROTATION + version,
                            families=tuple(families), **rules)


def calibrate_pace(candidate: PolicyNet, champion: Policy, suite: EvalSuite,
                   steps: Sequence[float] = STEPS) -> tuple[PolicyNet, PaceCalibration]:
    """The candidate, throttle-calibrated to the champion's pace on ``suite`` where that keeps
    it at least as safe, else unchanged (module docstring); what was found."""
    champ, plain = evaluate_many([champion, Policy(candidate)], suite)
    first = promotion(plain, champ, pace_tolerance=0.0)
    if first.promoted or not as_safe(plain, champ):  # not slower, or less safe: nothing to trade
        return candidate, PaceCalibration(0.0, first.champion_lap_s, first.candidate_lap_s,
                                          first.candidate_lap_s, 0)
    tried = 0
    for bias in steps:
        shifted = throttle_shifted(candidate, bias)
        [result] = evaluate_many([Policy(shifted)], suite)
        tried += 1
        if not as_safe(result, plain):
            break  # more throttle only costs more safety
        decision = promotion(result, champ, pace_tolerance=0.0)
        if decision.promoted:
            return shifted, PaceCalibration(float(bias), first.champion_lap_s,
                                            first.candidate_lap_s, decision.candidate_lap_s,
                                            tried)
    return candidate, PaceCalibration(0.0, first.champion_lap_s, first.candidate_lap_s,
                                      first.candidate_lap_s, tried)


def is_slower_but_safe(candidate: EvalResult, champion: EvalResult) -> bool:
    """At least as safe as the champion and slower on the laps both finish: the candidates
    whose throttle is worth calibrating."""
    decision = promotion(candidate, champion, pace_tolerance=0.0)
    return not decision.promoted and as_safe(candidate, champion)
