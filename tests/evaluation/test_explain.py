"""Verdict explanations: the words, the money and the stretches, on constructed verdicts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from crowdlearning.evaluation.explain import EXPLANATION_KEYS, differing_stretches, explain
from crowdlearning.evaluation.verdict import Decision, PriceSchedule, Verdict
from crowdlearning.learning.contribution import Contribution
from crowdlearning.sim.replay import EpisodeStart

PRICES = PriceSchedule()
JUDGE_CONFIG = {"verdict": {"window_ticks": 400, "starts_per_track": 4},
                "prices": dataclasses.asdict(PRICES)}


def verdict(decision: Decision, *, diff: float = 0.0, reason: str = "", runs: int = 8,
            price: int | None = None) -> Verdict:
    """A verdict over ``runs`` runs (2 tracks x 4 starts) where "with" drives ``diff`` m more."""
    twin = [100.0 + i for i in range(runs)]
    with_ = [s + diff for s in twin]
    effect_bp = int(diff / np.mean(twin) * 10_000) if runs else 0
    return Verdict(
        contribution_id="run-1", contributor_id="p1", contribution_digest="d" * 64,
        decision=decision, reason=reason, champion_version=0, seed=1, suite_seeds=[1, 2],
        runs=runs, looks=1 if runs else 0, scores_with_m=with_, scores_without_m=twin,
        mean_diff_m=diff, ci_low_m=diff - 1.9 if runs else 0.0,
        ci_high_m=diff + 1.9 if runs else 0.0, effect_bp=effect_bp, confidence=0.95,
        labels=50, price_tinybar=PRICES.price(decision, effect_bp) if price is None else price,
        null_low_m=-1.3 if runs else 0.0, null_high_m=1.4 if runs else 0.0,
        judge_config=JUDGE_CONFIG)


def contribution(gaps: dict[range, float], n: int = 100, mode: str = "label") -> Contribution:
    """A run of ``n`` ticks driving along x = tick; the player steers the car's proposal plus
    ``gaps[r]`` on the ticks of ``r``, and gives no input elsewhere."""
    proposed = np.zeros((n, 2))
    proposed[:, 0] = 0.1
    player = np.full((n, 2), np.nan)
    for ticks, gap in gaps.items():
        player[list(ticks), 0] = 0.1 + gap
    has = np.isfinite(player[:, 0])
    states = np.zeros((n, 5))
    states[:, 0], states[:, 1] = np.arange(n) * 1.0, 5.0
    return Contribution(
        contribution_id="run-1", contributor_id="p1", session_id="s", mode=mode,
        model_version=0, beta=1.0, start=EpisodeStart("t" * 64), ticks=np.arange(n),
        states=states, observations=np.zeros((n, 18), np.float32), proposed=proposed,
        executed=proposed, player=player, input_tick=np.where(has, np.arange(n), -1),
        intervention=has if mode == "takeover" else np.zeros(n, bool))


def test_an_improvement_is_explained_in_metres_with_its_interval_noise_and_reward() -> None:
    # GIVEN a paid run judged improved by 3.1 m a run on 8 hidden runs
    v = verdict(Decision.IMPROVED, diff=3.1)
    # WHEN it is explained with the reward booked
    e = explain(v, contribution({range(10, 20): 0.4}), paid_mode=True,
                reward_tinybar=v.price_tinybar, penalty_tinybar=0)
    # THEN every documented key is there, the words carry the figures and units
    assert tuple(e) == EXPLANATION_KEYS
    assert e["decision"] == "improved" and e["evaluated"] and e["runs"] == 8
    assert "drove 3.1 m further per 20-s run" in e["comparison"]
    assert "on 8 runs on hidden tracks" in e["comparison"]
    assert "95% sure the difference is between +1.2 and +5.0 m" in e["confidence_text"]
    assert "between -1.3 and +1.4 m" in e["confidence_text"]
    assert e["with_mean_m"] == pytest.approx(e["without_mean_m"] + 3.1)
    # the chart's data: per hidden track (4 starts each), with above without by 3.1 m
    assert len(e["tracks"]) == 2
    assert all(t["with_m"] == pytest.approx(t["without_m"] + 3.1) for t in e["tracks"])
    # the money: rate x effect, in integer tinybars, as booked
    bp = v.effect_bp
    assert e["money"] == {"kind": "reward", "amount_tinybar": bp * 20_000, "why": "improved",
                          "text": e["money"]["text"]}
    assert f"20,000 tinybar per basis point (0.01% of distance) × {bp} bp" in e["money"]["text"]
    assert "capped" not in e["money"]["text"]


def test_a_reward_over_the_cap_says_it_was_capped() -> None:
    v = verdict(Decision.IMPROVED, diff=30.0)  # ~2,900 bp: 58M tinybar priced, capped at 20M
    e = explain(v, None, paid_mode=True, reward_tinybar=v.price_tinybar, penalty_tinybar=0)
    assert e["money"]["amount_tinybar"] == PRICES.reward_cap_tinybar
    assert "capped at 0.2 HBAR" in e["money"]["text"]
    assert e["stretches"] == [] and e["stretches_text"] == ""  # no run given: nothing drawn


def test_a_penalty_is_explained_and_says_when_the_hold_limited_it() -> None:
    v = verdict(Decision.WORSE, diff=-5.0)
    priced = -v.price_tinybar
    e = explain(v, None, paid_mode=True, reward_tinybar=0, penalty_tinybar=priced)
    assert "drove 5.0 m less far" in e["comparison"]
    assert e["money"]["kind"] == "penalty" and e["money"]["amount_tinybar"] == priced
    assert "60,000 tinybar per basis point" in e["money"]["text"]
    assert "limited to the stake" not in e["money"]["text"]
    held = explain(v, None, paid_mode=True, reward_tinybar=0, penalty_tinybar=priced // 2)
    assert "limited to the stake this run held" in held["money"]["text"]
    assert held["money"]["amount_tinybar"] == priced // 2


def test_a_confident_penalty_says_how_much_of_the_harm_it_charges() -> None:
    # GIVEN a run 5 m a run worse (interval upper end -3.1 m, placebos' null down to -1.3 m),
    # priced on the harm beyond the training noise
    confident = PriceSchedule(penalty_basis="confident")
    config = {**JUDGE_CONFIG, "prices": dataclasses.asdict(confident)}
    v = dataclasses.replace(verdict(Decision.WORSE, diff=-5.0), judge_config=config)
    sure = v.confident_harm_bp
    v = dataclasses.replace(v, price_tinybar=confident.price(v.decision, v.effect_bp,
                                                             confident_harm_bp=sure))
    # WHEN it is explained with the penalty booked
    e = explain(v, None, paid_mode=True, reward_tinybar=0, penalty_tinybar=-v.price_tinybar)
    # THEN the text names the basis points charged and the measured ones, and they differ
    assert 0 < sure < -v.effect_bp
    assert (f"× {sure} bp of harm beyond the training noise (measured {-v.effect_bp} bp"
            in e["money"]["text"])
    assert e["money"]["amount_tinybar"] == sure * confident.penalty_tinybar_per_bp


@pytest.mark.parametrize(("decision", "reason", "runs", "paid", "why"), [
    (Decision.NO_EFFECT, "", 8, True, "no_effect"),
    (Decision.NO_EFFECT, "labels copy the policy's own actions: nothing to learn", 0, True,
     "copy"),
    (Decision.NO_EFFECT, "no labels: no input (label mode) or no intervention (takeover mode)",
     0, True, "no_labels"),
    (Decision.REJECTED, "near duplicate: 95% of its labelled states were already submitted", 0,
     True, "near_duplicate"),
    (Decision.REJECTED, "duplicate: the same data was already submitted", 0, True, "duplicate"),
    (Decision.REJECTED, "replay mismatch: the states do not follow", 0, True, "rejected"),
    (Decision.IMPROVED, "", 8, False, "practice"),
])
def test_why_no_money_moved(decision: Decision, reason: str, runs: int, paid: bool,
                            why: str) -> None:
    v = verdict(decision, diff=3.1 if decision is Decision.IMPROVED else 0.2, reason=reason,
                runs=runs)
    e = explain(v, contribution({range(10, 20): 0.4}), paid_mode=paid, reward_tinybar=0,
                penalty_tinybar=0)
    assert e["money"]["kind"] == "none" and e["money"]["amount_tinybar"] == 0
    assert e["money"]["why"] == why
    assert e["evaluated"] is (runs > 0)
    if runs == 0:  # nothing was driven: no figures are claimed
        assert e["comparison"] == "" and e["tracks"] == [] and e["with_mean_m"] is None
    if why == "practice":  # what it would have been worth, in HBAR
        assert "Practice run" in e["money"]["text"] and "would have earned" in e["money"]["text"]
    if why == "copy":
        assert "followed the car's own" in e["decision_text"]
    if why == "near_duplicate":
        assert e["decision_text"].startswith("Not judged") and "repeats data" in e[
            "decision_text"]
    if why == "no_effect":
        assert "No measurable effect" in e["decision_text"]


def test_a_run_that_may_join_the_rounds_pool_is_told_so_and_one_that_harmed_is_not() -> None:
    right_way = verdict(Decision.NO_EFFECT, diff=0.2, runs=8)
    wrong_way = verdict(Decision.NO_EFFECT, diff=-0.2, runs=8)
    told = explain(right_way, None, paid_mode=True, reward_tinybar=0, penalty_tinybar=0,
                   pooled=True)
    assert told["money"]["why"] == "pool" and "round's pool" in told["money"]["text"]
    assert "+0.2 m" in told["money"]["text"]
    for v, pooled in ((wrong_way, True), (right_way, False)):
        e = explain(v, None, paid_mode=True, reward_tinybar=0, penalty_tinybar=0, pooled=pooled)
        assert e["money"]["why"] == "no_effect"


def test_the_stretches_are_the_largest_differences_at_their_ticks() -> None:
    # GIVEN a run where the player differs from the car by 0.2 at 10-19, by 0.8 at 40-44,
    # by 0.5 at 70-79, by 0.3 at 90-95 (and by 0.02, noise, at 50-59)
    c = contribution({range(10, 20): 0.2, range(40, 45): -0.8, range(70, 80): 0.5,
                      range(90, 96): 0.3, range(50, 60): 0.02})
    # WHEN the differing stretches are found
    found = differing_stretches(c)
    # THEN the three largest, largest first, at their ticks, with the car's positions
    assert [(s["first_tick"], s["last_tick"]) for s in found] == [(40, 44), (70, 79), (90, 95)]
    top = found[0]
    assert top["peak_gap"] == pytest.approx(0.8) and top["player_steer"] == pytest.approx(-0.7)
    assert top["car_steer"] == pytest.approx(0.1)
    assert top["start_s"] == 2.0 and top["end_s"] == 2.2
    assert top["points_m"][0] == [40.0, 5.0] and top["points_m"][-1] == [44.0, 5.0]
    assert top["x_m"] == 40.0 and top["y_m"] == 5.0
    text = explain(verdict(Decision.NO_EFFECT), c, paid_mode=True, reward_tinybar=0,
                   penalty_tinybar=0)["stretches_text"]
    assert text.startswith("Where your input differed most") and "2.0-2.2 s" in text


def test_stretches_join_close_ticks_and_ignore_inputs_that_are_not_labels() -> None:
    # two bursts 2 ticks apart are one stretch; in takeover mode only held control counts
    c = contribution({range(10, 15): 0.6, range(17, 20): 0.6})
    assert [(s["first_tick"], s["last_tick"]) for s in differing_stretches(c)] == [(10, 19)]
    held = np.zeros(100, bool)
    held[60:65] = True
    takeover = dataclasses.replace(contribution({range(10, 20): 0.9, range(60, 65): 0.3},
                                                mode="takeover"), intervention=held)
    assert [(s["first_tick"], s["last_tick"]) for s in differing_stretches(takeover)] == [
        (60, 64)]
    quiet = contribution({range(10, 20): 0.01})
    assert differing_stretches(quiet) == []
    e = explain(verdict(Decision.NO_EFFECT), quiet, paid_mode=True, reward_tinybar=0,
                penalty_tinybar=0)
    assert "never differed" in e["stretches_text"]


def test_every_key_is_documented_in_the_protocol() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    section = doc.split("### Verdict explanations", 1)[1].split("\n### ", 1)[0]
    missing = [k for k in EXPLANATION_KEYS if f"`{k}`" not in section]
    assert missing == []
    assert '"explanation"}' in doc  # the verdict message's row names it
