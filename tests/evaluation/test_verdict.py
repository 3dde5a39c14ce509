"""Verdicts: separate data from noise, decide with confidence, price, reproduce, resist gaming."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.screening import ScreenConfig, Screener
from crowdlearning.evaluation.verdict import (
    Decision,
    Judge,
    PriceSchedule,
    VerdictConfig,
    confident_harm_bp,
)
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.finetune import FinetuneConfig
from crowdlearning.learning.labels import extract_labels
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play

CONFIG = VerdictConfig(suite_size=12, tracks_per_look=4, starts_per_track=3, window_ticks=300,
                       finetune=FinetuneConfig(updates=200), null_runs=6, null_ticks=400)


@pytest.fixture(scope="module")
def judge() -> Judge:
    net, _ = train_initial_model(0)
    return Judge(net, 0, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS),
                 config=CONFIG)


@pytest.fixture(scope="module")
def plays(judge: Judge) -> dict:
    policy = Policy(judge.champion)
    rng = np.random.default_rng(3)
    return {name: play(policy, make_persona(name, rng), ticks=400, track_name="hairpin-valley",
                       session_id=name) for name in ("expert", "lazy", "random", "adversary")}


def test_random_and_adversarial_data_is_judged_worse_and_penalized(judge: Judge, plays) -> None:
    for name in ("random", "adversary"):
        verdict = judge.judge(plays[name])
        assert verdict.decision is Decision.WORSE, (name, verdict.effect_bp)
        assert verdict.ci_high_m < 0
        assert -judge.prices.penalty_cap_tinybar <= verdict.price_tinybar < 0


def test_expert_data_is_never_judged_worse(judge: Judge, plays) -> None:
    verdict = judge.judge(plays["expert"])
    assert verdict.decision in (Decision.IMPROVED, Decision.NO_EFFECT), verdict.effect_bp
    assert verdict.price_tinybar >= 0


def test_lazy_copying_is_not_paid_and_not_evaluated(judge: Judge, plays) -> None:
    verdict = judge.judge(plays["lazy"])
    assert verdict.decision is Decision.NO_EFFECT
    assert verdict.price_tinybar == 0 and verdict.runs == 0
    assert "copy the policy" in verdict.reason


def test_rejudging_reproduces_the_verdict_exactly(judge: Judge, plays) -> None:
    first = judge.judge(plays["random"])
    again = Judge(judge.champion, 0, judge.base, config=CONFIG).judge(plays["random"])
    assert first == again  # every field but the elapsed time
    record = json.loads(first.to_json())
    assert record["scores_with_m"] == first.scores_with_m and record["seed"] == judge.seed
    public = first.public()
    assert "scores_with_m" not in public and public["effect_pct"] == round(
        first.effect_bp / 100, 1)


def test_sequential_test_stops_early_when_the_answer_is_clear(judge: Judge, plays) -> None:
    verdict = judge.judge(plays["adversary"])
    assert verdict.looks < 3 and verdict.runs < judge.suite.num_runs


def test_the_baseline_is_the_same_states_labelled_by_the_champion(judge: Judge, plays) -> None:
    # the twin keeps rows, mask and weights; only the label values become the champion's own
    labels = extract_labels(plays["random"], judge.label_config)
    twin = judge.twin_of(labels)
    assert np.array_equal(twin.observations, labels.observations)
    assert np.array_equal(twin.mask, labels.mask) and np.array_equal(twin.weights, labels.weights)
    own = Policy(judge.champion).act(labels.observations)
    assert np.allclose(twin.targets[twin.mask], own[twin.mask], atol=1e-6)
    # so the judge compares label values only: the champion's own labels change nothing at all
    with_scores, twin_scores = judge._all_scores(twin)
    assert np.array_equal(with_scores, twin_scores)


def test_the_null_is_measured_from_placebos_and_widens_the_decision(judge: Judge) -> None:
    assert judge.null_diffs_m.shape == (CONFIG.null_runs, judge.suite.num_runs)
    assert np.any(judge.null_diffs_m != 0)  # training noise is real: placebos move the score
    low, high = judge.null_interval(judge.suite.num_runs)
    centre = float(judge.null_diffs_m.mean())
    assert low < centre < high


def test_noise_around_the_policy_is_neither_paid_nor_penalized(judge: Judge, plays) -> None:
    # a copier adding small noise carries no information: never improved, never worse
    c = plays["lazy"]
    rng = np.random.default_rng(11)
    for k in range(3):
        noisy = np.clip(c.player + rng.normal(0, 0.03, c.player.shape), -1, 1)
        verdict = judge.judge(dataclasses.replace(c, player=noisy, contribution_id=f"n{k}"))
        assert verdict.decision is Decision.NO_EFFECT, verdict.effect_bp
        assert verdict.price_tinybar == 0


def test_the_published_hash_covers_the_decision_and_nothing_about_timing(judge: Judge,
                                                                          plays) -> None:
    verdict = judge.judge(plays["random"])
    slower = dataclasses.replace(verdict, elapsed_s=verdict.elapsed_s + 5.0)
    assert slower.sha256 == verdict.sha256 and "elapsed_s" not in verdict.record()
    assert dataclasses.replace(verdict, price_tinybar=verdict.price_tinybar + 1).sha256 != (
        verdict.sha256)
    assert verdict.judge_config["verdict"]["suite_size"] == CONFIG.suite_size


def test_default_prices_weigh_harm_three_times_gain() -> None:
    prices = PriceSchedule()
    assert prices.price(Decision.WORSE, -100) == -3 * prices.price(Decision.IMPROVED, 100)
    assert prices.penalty_cap_tinybar == 3 * prices.reward_cap_tinybar
    with pytest.raises(ValueError, match="reward_cap_tinybar"):
        PriceSchedule(reward_cap_tinybar=-1)


def test_price_schedule_caps_rewards_and_penalties() -> None:
    prices = PriceSchedule(reward_tinybar_per_bp=10, reward_cap_tinybar=500,
                           penalty_tinybar_per_bp=20, penalty_cap_tinybar=300)
    assert prices.price(Decision.IMPROVED, 30) == 300
    assert prices.price(Decision.IMPROVED, 3000) == 500
    assert prices.price(Decision.WORSE, -10) == -200
    assert prices.price(Decision.WORSE, -1000) == -300
    assert prices.price(Decision.NO_EFFECT, 500) == 0


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _screener(clock: _Clock, **kwargs: object) -> Screener:
    track = named_track("hairpin-valley")
    tracks = {track.digest: track}
    return Screener(tracks.__getitem__, config=ScreenConfig(**kwargs), clock=clock)  # type: ignore[arg-type]


def test_screen_rejects_forged_states(plays) -> None:
    screen = _screener(_Clock())
    c = plays["expert"]
    assert screen.check(c) == ""
    forged_states = c.states.copy()
    forged_states[10, 0] += 0.5
    forged = dataclasses.replace(c, states=forged_states, session_id="x")
    assert "replay mismatch" in screen.check(forged)
    forged_obs = c.observations.copy()
    forged_obs[5, 3] = 0.0
    assert "replay mismatch" in screen.check(dataclasses.replace(c, observations=forged_obs))


def test_screen_rejects_duplicates_and_near_duplicates(plays) -> None:
    screen = _screener(_Clock())
    c = plays["expert"]
    screen.accept(c)
    copy = dataclasses.replace(c, contribution_id="other", contributor_id="sybil")
    assert "duplicate" in screen.check(copy)
    # the same states and answers with one tick's label nudged: a near duplicate
    player = c.player.copy()
    player[0, 0] = np.clip(player[0, 0] + 0.5, -1, 1)
    assert "near duplicate" in screen.check(dataclasses.replace(c, player=player))


def test_screen_rate_limits_per_contributor(plays) -> None:
    clock = _Clock()
    screen = _screener(clock, max_per_window=2, window_s=60.0)
    c = plays["random"]
    assert "rate limit" not in screen.check(c)
    assert "rate limit" not in screen.check(c)
    assert "rate limit" in screen.check(c)
    clock.now = 61.0
    assert "rate limit" not in screen.check(c)


def test_screen_rejects_unknown_tracks(plays) -> None:
    screen = Screener(lambda digest: {}[digest])
    assert "unknown track" in screen.check(plays["expert"])


def test_precision_scales_rewards_down_and_never_penalties() -> None:
    prices = PriceSchedule(reward_tinybar_per_bp=10, reward_cap_tinybar=500,
                           penalty_tinybar_per_bp=20, penalty_cap_tinybar=300,
                           label_noise_ref=0.1)
    assert prices.price(Decision.IMPROVED, 30, precision=0.5) == 150
    assert prices.price(Decision.IMPROVED, 3000, precision=0.333) == 166  # rounded down
    assert prices.price(Decision.WORSE, -10, precision=0.2) == -200  # noise shields no harm
    with pytest.raises(ValueError, match="precision"):
        prices.price(Decision.IMPROVED, 30, precision=1.5)
    with pytest.raises(ValueError, match="label_noise_ref"):
        PriceSchedule(label_noise_ref=-0.1)


def test_a_shaky_hand_is_paid_its_labels_precision_and_reproducibly(judge: Judge,
                                                                     plays) -> None:
    priced = Judge(judge.champion, 0, judge.base, config=CONFIG,
                   prices=dataclasses.replace(judge.prices, label_noise_ref=0.1),
                   null_diffs_m=judge.null_diffs_m)
    c = plays["random"]
    verdict = priced.judge(c)
    whole = judge.judge(c)  # the same decision, without the factor
    assert (verdict.decision, verdict.effect_bp) == (whole.decision, whole.effect_bp)
    assert verdict.label_noise > 0.2 and 0 < verdict.label_precision < 0.2  # random steering
    assert verdict.price_tinybar == whole.price_tinybar < 0  # a penalty is never scaled
    assert verdict.record()["label_precision"] == verdict.label_precision
    # re-judged from the published configuration: the same record, bit for bit
    again = Judge.from_config_record(verdict.judge_config, judge.champion, 0, judge.base,
                                     verdict.seed).judge(c)
    assert again.sha256 == verdict.sha256
    assert whole.label_precision == 1.0 and whole.label_noise == 0.0  # off: nothing recorded
    # a reward: the same improvement pays a steady hand more than a shaky one
    expert = plays["expert"]
    rng = np.random.default_rng(5)
    shaky = dataclasses.replace(
        expert, contribution_id="shaky",
        player=np.clip(expert.player + rng.normal(0, 0.15, expert.player.shape), -1, 1))
    paid = {}
    for contribution in (expert, shaky):
        improved = dataclasses.replace(whole, decision=Decision.IMPROVED, effect_bp=300)
        v = priced._priced_by_precision(contribution, improved)
        assert v.price_tinybar == int(priced.prices.price(Decision.IMPROVED, 300)
                                      * v.label_precision)
        paid[contribution.contribution_id] = v.price_tinybar
    assert paid["expert"] > 2 * paid["shaky"] > 0


def test_confident_harm_is_what_lies_beyond_both_the_interval_and_the_null() -> None:
    # twin drives 100 m a run; the run's mean is -50 m, its interval's upper end -20 m
    assert confident_harm_bp(-50.0, -20.0, -40.0, 100.0) == 1000  # 10 m beyond the null
    assert confident_harm_bp(-50.0, -5.0, -10.0, 100.0) == 500  # the interval is closer to 0
    assert confident_harm_bp(-50.0, 3.0, -60.0, 100.0) == 0  # nothing it is sure of


def test_a_confident_penalty_charges_only_the_harm_beyond_the_noise() -> None:
    prices = PriceSchedule(penalty_tinybar_per_bp=20, penalty_cap_tinybar=30_000,
                           reward_tinybar_per_bp=10, penalty_basis="confident")
    # harm measured 1,000 bp of which 200 lie beyond the noise: 200 bp are charged
    assert prices.price(Decision.WORSE, -1000, confident_harm_bp=200) == -4_000
    # never more than the measured harm, and the cap still holds
    assert prices.price(Decision.WORSE, -100, confident_harm_bp=5_000) == -2_000
    assert prices.price(Decision.WORSE, -9_000, confident_harm_bp=8_000) == -30_000
    # a run judged worse by less than 1 bp beyond the noise is still charged 1 bp, not nothing
    assert prices.price(Decision.WORSE, -500, confident_harm_bp=0) == -20
    # rewards are priced as before
    assert prices.price(Decision.IMPROVED, 30, confident_harm_bp=0) == 300
    with pytest.raises(ValueError, match="confident_harm_bp"):
        prices.price(Decision.WORSE, -1000)
    with pytest.raises(ValueError, match="penalty_basis"):
        PriceSchedule(penalty_basis="half")
    # the whole harm as before with the record's old basis
    assert PriceSchedule(penalty_tinybar_per_bp=20, penalty_cap_tinybar=30_000).price(
        Decision.WORSE, -1000, confident_harm_bp=200) == -20_000


def test_a_confident_penalty_is_recorded_and_rejudged_bit_for_bit(judge: Judge, plays) -> None:
    # GIVEN the same judge, pricing penalties on the whole harm and on the confident harm
    # (no cap, so that the two amounts show)
    uncapped = dataclasses.replace(judge.prices, penalty_cap_tinybar=10**12)
    judges = [Judge(judge.champion, 0, judge.base, config=CONFIG, null_diffs_m=judge.null_diffs_m,
                    prices=dataclasses.replace(uncapped, penalty_basis=basis))
              for basis in ("effect", "confident")]
    c = plays["random"]
    # WHEN both judge a run that harms the model
    whole, sure = (j.judge(c) for j in judges)
    # THEN the decision is the same and the penalty charges only the harm beyond the noise
    assert (sure.decision, sure.effect_bp) == (whole.decision, whole.effect_bp)
    assert sure.decision is Decision.WORSE and 0 < sure.confident_harm_bp < -sure.effect_bp
    rate = judge.prices.penalty_tinybar_per_bp
    assert sure.price_tinybar == -sure.confident_harm_bp * rate
    assert whole.price_tinybar == whole.effect_bp * rate < sure.price_tinybar
    # the basis is in the published configuration (records priced on the whole harm keep
    # theirs without it, as before it existed), and a re-judge reproduces the record
    assert sure.judge_config["prices"]["penalty_basis"] == "confident"
    assert "penalty_basis" not in whole.judge_config["prices"]
    for v in (whole, sure):
        again = Judge.from_config_record(v.judge_config, judge.champion, 0, judge.base,
                                         v.seed).judge(c)
        assert again.sha256 == v.sha256


def test_the_configuration_record_compares_equal_after_json(judge: Judge) -> None:
    # a suite over several families (tuples in the config) must compare equal to its published
    # JSON field by field, or verify-verdict names judge_config as differing
    several = dataclasses.replace(CONFIG, families=("easy", "tight"))
    holder = type("Holder", (), {"config": several, "label_config": judge.label_config,
                                 "prices": judge.prices})()
    record = Judge.config_record(holder)  # type: ignore[arg-type]
    assert record == json.loads(json.dumps(record))
    assert record["verdict"]["families"] == ["easy", "tight"]
