"""A verdict explained to the player who earned it: plain words, units, and the data to draw.

``explain`` turns a ``Verdict`` (with vs twin on the hidden suite, the interval, the placebo
band, the decision), the money actually booked for it and the run's ``Contribution`` into the
``explanation`` object of the ``verdict`` message and of ``GET /api/wallet/runs``
(docs/protocol.md, "Verdict explanations"):

- ``comparison`` / ``confidence_text`` / ``decision_text``: how far the model trained on the
  player's labels drove against the one trained on the car's own labels, how sure the judge is,
  and why that is the decision;
- ``money``: what moved and why (rate x effect, capped; or why nothing moved);
- ``stretches``: the (at most 3) stretches of the run where the player's steering differed most
  from the car's proposal, with the car's positions, to draw on the track;
- ``tracks``: mean distance per hidden track, with and without, for the chart.

Nothing here decides anything: it only reads what the verdict recorded.
"""

from __future__ import annotations

import numpy as np

from crowdlearning.evaluation.pooled import may_join
from crowdlearning.evaluation.verdict import Decision, PriceSchedule, Verdict
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.labels import MIN_CORRECTION
from crowdlearning.sim.params import CONTROL_RATE_HZ

__all__ = ["EXPLANATION_KEYS", "TOP_STRETCHES", "differing_stretches", "explain"]

TOP_STRETCHES = 3  # stretches shown on the track
JOIN_TICKS = 3  # stretches closer than this many ticks are one
MAX_POINTS = 40  # car positions kept per stretch (enough to draw it)
HBAR = 100_000_000
# the keys of an explanation, as docs/protocol.md documents them
EXPLANATION_KEYS = ("decision", "evaluated", "runs", "window_s", "with_mean_m", "without_mean_m",
                    "mean_diff_m", "ci_low_m", "ci_high_m", "null_low_m", "null_high_m",
                    "confidence", "effect_pct", "tracks", "comparison", "confidence_text",
                    "decision_text", "money", "stretches", "stretches_text")


def explain(verdict: Verdict, contribution: Contribution | None, *, paid_mode: bool,
            reward_tinybar: int, penalty_tinybar: int, note: str = "",
            pooled: bool = False) -> dict:
    """The ``explanation`` object of a verdict (see the module docstring); ``pooled``: the
    service judges the round's pool (``evaluation.pooled``), which this run may join."""
    cfg = verdict.judge_config.get("verdict", {})
    window_s = float(cfg.get("window_ticks", 400)) / CONTROL_RATE_HZ
    with_m, without_m = np.asarray(verdict.scores_with_m), np.asarray(verdict.scores_without_m)
    evaluated = verdict.runs > 0 and len(with_m) == len(without_m) > 0
    stretches = differing_stretches(contribution) if contribution is not None else []
    out = {
        "decision": verdict.decision.value,
        "evaluated": evaluated,
        "runs": verdict.runs,
        "window_s": window_s,
        "with_mean_m": round(float(with_m.mean()), 2) if evaluated else None,
        "without_mean_m": round(float(without_m.mean()), 2) if evaluated else None,
        "mean_diff_m": round(verdict.mean_diff_m, 2),
        "ci_low_m": round(verdict.ci_low_m, 2),
        "ci_high_m": round(verdict.ci_high_m, 2),
        "null_low_m": round(verdict.null_low_m, 2),
        "null_high_m": round(verdict.null_high_m, 2),
        "confidence": verdict.confidence,
        "effect_pct": round(verdict.effect_bp / 100, 2),
        "tracks": _per_track(with_m, without_m, int(cfg.get("starts_per_track", 1)))
        if evaluated else [],
        "comparison": _comparison(verdict, with_m, without_m, window_s) if evaluated else "",
        "confidence_text": _confidence(verdict) if evaluated else "",
        "decision_text": _decision(verdict, evaluated),
        "money": _money(verdict, paid_mode, reward_tinybar, penalty_tinybar, note,
                        pooled and may_join(verdict)),
        "stretches": stretches,
        "stretches_text": _stretches_text(stretches, contribution),
    }
    assert tuple(out) == EXPLANATION_KEYS
    return out


# ---------------------------------------------------------------------- with vs without
def _per_track(with_m: np.ndarray, without_m: np.ndarray, starts: int) -> list[dict]:
    """Mean distance per hidden track (the suite runs track by track, ``starts`` each)."""
    k = starts if starts > 0 and len(with_m) % starts == 0 else 1
    w, t = with_m.reshape(-1, k).mean(axis=1), without_m.reshape(-1, k).mean(axis=1)
    return [{"with_m": round(float(a), 1), "without_m": round(float(b), 1)}
            for a, b in zip(w, t, strict=True)]


def _comparison(v: Verdict, with_m: np.ndarray, without_m: np.ndarray, window_s: float) -> str:
    diff = v.mean_diff_m
    way = "further" if diff >= 0 else "less far"
    return (f"The model trained on your labels drove {abs(diff):.1f} m {way} per {window_s:g}-s "
            f"run than the same model trained on the car's own labels, on {v.runs} runs on "
            f"hidden tracks ({with_m.mean():.1f} m against {without_m.mean():.1f} m on average, "
            f"{v.effect_bp / 100:+.2f}%).")


def _confidence(v: Verdict) -> str:
    return (f"{v.confidence:.0%} sure the difference is between {v.ci_low_m:+.1f} and "
            f"{v.ci_high_m:+.1f} m; training noise alone (placebo runs that teach nothing) moves "
            f"it between {v.null_low_m:+.1f} and {v.null_high_m:+.1f} m.")


def _decision(v: Verdict, evaluated: bool) -> str:
    if v.decision is Decision.IMPROVED:
        return ("Improved: the whole interval is above zero (by more than the judge's margin) and "
                "the difference is beyond what training noise alone produces.")
    if v.decision is Decision.WORSE:
        return ("Worse: the whole interval is below zero (by more than the judge's margin) and "
                "the difference is beyond what training noise alone produces.")
    if v.decision is Decision.REJECTED:
        return f"Not judged: {_reason_words(v.reason)}."
    if not evaluated:
        return f"Not evaluated: {_reason_words(v.reason)}."
    return ("No measurable effect: the interval reaches zero, or the difference is within what "
            "training noise alone produces.")


def _reason_words(reason: str) -> str:
    if "copy the policy" in reason:
        return ("your steering followed the car's own almost everywhere (under 0.5 s of "
                "correction), so it teaches the car nothing")
    if reason.startswith("no labels"):
        return "you gave no input the car could learn from (in takeover mode: hold the wheel)"
    if reason.startswith("near duplicate"):
        return f"it repeats data already sent ({reason})"
    if reason.startswith("duplicate"):
        return "the same data was already submitted"
    return reason or "no reason recorded"


# ---------------------------------------------------------------------- money
def _hbar(tinybar: int) -> str:
    return f"{tinybar / HBAR:.8f}".rstrip("0").rstrip(".") + " HBAR"


def _prices(v: Verdict) -> PriceSchedule:
    try:
        return PriceSchedule(**v.judge_config["prices"])
    except (KeyError, TypeError, ValueError):
        return PriceSchedule()


def _money(v: Verdict, paid_mode: bool, reward: int, penalty: int, note: str,
           in_pool: bool = False) -> dict:
    """What moved (integer tinybars) and why, in words; ``why`` names the case."""
    p, bp = _prices(v), abs(v.effect_bp)
    if reward > 0:
        capped = bp * p.reward_tinybar_per_bp > p.reward_cap_tinybar
        text = (f"Reward {_hbar(reward)}: {p.reward_tinybar_per_bp:,} tinybar per basis point "
                f"(0.01% of distance) × {bp} bp"
                + (f", capped at {_hbar(p.reward_cap_tinybar)}" if capped else "")
                + (f", × {v.label_precision:.0%} for the steadiness of your steering "
                   f"(jitter {v.label_noise:.3f}; a steadier hand is paid more)"
                   if v.label_precision < 1.0 else "") + ".")
        return {"kind": "reward", "amount_tinybar": reward, "why": "improved", "text": text}
    if penalty > 0:
        charged = p.charged_harm_bp(v.effect_bp, v.confident_harm_bp)
        capped = charged * p.penalty_tinybar_per_bp > p.penalty_cap_tinybar
        priced = -v.price_tinybar
        beyond = (f" of harm beyond the training noise (measured {bp} bp; the part placebos "
                  "or chance could explain is not charged)" if charged < bp else "")
        text = (f"Penalty {_hbar(penalty)}: {p.penalty_tinybar_per_bp:,} tinybar per basis point "
                f"(0.01% of distance) × {charged} bp{beyond}"
                + (f", capped at {_hbar(p.penalty_cap_tinybar)}" if capped else "")
                + (f", limited to the stake this run held (priced {_hbar(priced)})"
                   if priced > penalty else "")
                + "; taken from the stake held behind this run, the rest released.")
        return {"kind": "penalty", "amount_tinybar": penalty, "why": "worse", "text": text}
    why, text = _no_money(v, paid_mode, note, in_pool)
    return {"kind": "none", "amount_tinybar": 0, "why": why, "text": text}


def _no_money(v: Verdict, paid_mode: bool, note: str, in_pool: bool = False
              ) -> tuple[str, str]:
    if not paid_mode:
        would = ("" if v.price_tinybar == 0 else
                 f" As a paid run it would have {'earned' if v.price_tinybar > 0 else 'cost'} "
                 f"{_hbar(abs(v.price_tinybar))}.")
        return "practice", "Practice run: no money at stake." + would
    if v.decision is Decision.IMPROVED:  # priced but not paid (e.g. the reward budget is spent)
        return "not_paid", f"No reward paid: {note or 'the reward was not booked'}."
    if v.decision is Decision.REJECTED:
        kind = ("near_duplicate" if v.reason.startswith("near duplicate") else
                "duplicate" if v.reason.startswith("duplicate") else "rejected")
        return kind, (f"No money moved: not judged ({_reason_words(v.reason)}); the stake held "
                      "behind the run was released.")
    if "copy the policy" in v.reason:
        return "copy", ("No money moved: copying the car's own steering is neither paid nor "
                        "charged.")
    if v.reason.startswith("no labels"):
        return "no_labels", "No money moved: the run carried no labels."
    if in_pool:
        return "pool", (f"No money moved yet: your labels pointed the right way "
                        f"({v.mean_diff_m:+.1f} m) but within the training noise. The run joins "
                        "this round's pool, judged when the round closes with the other runs "
                        "like it: if the pool improves the model, it is merged and you are paid "
                        "a share by your run's own effect (saying nothing new stays free).")
    return "no_effect", ("No money moved: no measurable effect is neither paid nor charged "
                         "(saying nothing new is always free).")


# ---------------------------------------------------------------------- where input differed
def differing_stretches(c: Contribution, top: int = TOP_STRETCHES) -> list[dict]:
    """The ``top`` stretches of the run where |player's steering - car's proposal| was largest.

    A stretch is consecutive label ticks where the two differ by at least ``MIN_CORRECTION``
    (stretches under ``JOIN_TICKS`` apart are one); they are ranked by their largest difference
    (then by the summed difference), largest first. Ticks count from the run's first tick.
    """
    steer = c.player[:, 0]
    given = np.isfinite(steer) & c.label_ticks
    gap = np.where(given, np.abs(np.nan_to_num(steer) - c.proposed[:, 0]), 0.0)
    segments: list[list[int]] = []
    for i in np.flatnonzero(gap >= MIN_CORRECTION).tolist():
        if segments and i - segments[-1][1] <= JOIN_TICKS:
            segments[-1][1] = i
        else:
            segments.append([i, i])
    ranked = sorted(segments, key=lambda s: (-gap[s[0]:s[1] + 1].max(),
                                             -gap[s[0]:s[1] + 1].sum(), s[0]))
    return [_stretch(c, gap, first, last) for first, last in ranked[:top]]


def _stretch(c: Contribution, gap: np.ndarray, first: int, last: int) -> dict:
    peak = first + int(np.argmax(gap[first:last + 1]))
    rows = np.linspace(first, last, min(MAX_POINTS, last - first + 1)).round().astype(int)
    return {"first_tick": int(c.ticks[first]), "last_tick": int(c.ticks[last]),
            "peak_tick": int(c.ticks[peak]),
            "start_s": round(first / CONTROL_RATE_HZ, 2), "end_s": round(last / CONTROL_RATE_HZ, 2),
            "peak_gap": round(float(gap[peak]), 3),
            "mean_gap": round(float(gap[first:last + 1].mean()), 3),
            "player_steer": round(float(c.player[peak, 0]), 3),
            "car_steer": round(float(c.proposed[peak, 0]), 3),
            "x_m": round(float(c.states[peak, 0]), 2), "y_m": round(float(c.states[peak, 1]), 2),
            "points_m": [[round(float(c.states[i, 0]), 2), round(float(c.states[i, 1]), 2)]
                         for i in rows]}


def _stretches_text(stretches: list[dict], c: Contribution | None) -> str:
    if c is None:
        return ""
    if not stretches:
        return "Your steering never differed from the car's by 0.05 or more."
    parts = [f"{s['start_s']:.1f}-{s['end_s']:.1f} s (you steered {s['player_steer']:+.2f}, "
             f"the car wanted {s['car_steer']:+.2f})" for s in stretches]
    return "Where your input differed most from the car: " + "; ".join(parts) + "."
