"""Where the verdict measures: the frontier family's share, starts before failing corners, and
placebos that follow the suite (docs/verdict.md, "Measuring where the champion fails")."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crowdlearning.errors import SimulationError
from crowdlearning.evaluation.suite import EvalSuite, evaluate, is_play_seed
from crowdlearning.evaluation.verdict import Decision, Judge, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.finetune import FinetuneConfig
from crowdlearning.learning.uncertainty import failure_approaches
from crowdlearning.policy.network import Policy

FAMILIES = ("easy", "tight", "fast-hairpin")


def test_uniform_start_fractions_are_the_suite_without_them() -> None:
    suite = EvalSuite.hidden(4, starts_per_track=2)
    same = dataclasses.replace(suite, start_fracs=EvalSuite.uniform_fracs(4, 2))
    assert same == suite and same.start_fracs == ()
    with pytest.raises(SimulationError, match="start fractions"):
        dataclasses.replace(suite, start_fracs=(0.1, 0.2))


def test_start_fractions_place_each_run_and_travel_with_the_looks_parts() -> None:
    fracs = (0.1, 0.6, 0.25, 0.75, 0.3, 0.9)
    suite = dataclasses.replace(EvalSuite.hidden(3, starts_per_track=2, max_steps=20),
                                start_fracs=fracs)
    result = evaluate(Policy(train_initial_model(0)[0]), suite)
    lengths = np.repeat([t.length_m for t in suite.tracks], 2)
    np.testing.assert_allclose(result.start_s_m, np.asarray(fracs) * lengths)
    assert suite.part(1, 3).start_fracs == fracs[2:]
    np.testing.assert_allclose(suite.part(1, 3).run_fracs, fracs[2:])


def test_the_frontier_gets_its_share_and_every_part_holds_the_mix() -> None:
    suite = EvalSuite.hidden(24, families=FAMILIES, frontier_share=0.5)
    fams = list(suite.families)
    assert fams.count("fast-hairpin") == 12 and fams.count("easy") == fams.count("tight") == 6
    for look in (suite.part(0, 12), suite.part(12, 24)):  # the verdict's two looks
        assert list(look.families).count("fast-hairpin") == 6
        assert set(look.families) == set(FAMILIES)
    # easy only, or no share: today's suite exactly
    even = EvalSuite.hidden(24, families=FAMILIES)
    assert EvalSuite.hidden(24, frontier_share=0.5) == EvalSuite.hidden(24)
    assert EvalSuite.hidden(24, families=FAMILIES, frontier_share=0.0) == even


@pytest.fixture(scope="module")
def champion():
    net, _ = train_initial_model(0)
    return net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)


CONFIG = VerdictConfig(suite_size=6, tracks_per_look=3, starts_per_track=2, window_ticks=200,
                       finetune=FinetuneConfig(updates=100), null_runs=3, null_ticks=200,
                       focus_starts=0.5, focus_lead_ticks=40, focus_survey_ticks=1200)


def _judge(champion, config: VerdictConfig) -> Judge:
    net, data = champion
    runs = config.suite_size * config.starts_per_track
    return Judge(net, 0, data, config=config, null_diffs_m=np.zeros((config.null_runs, runs)))


def test_focused_starts_replay_the_champions_approach_to_its_failures(champion) -> None:
    judge = _judge(champion, CONFIG)
    plain = CONFIG.suite()
    assert judge.suite.track_seeds == plain.track_seeds  # no pool: the same tracks
    found = failure_approaches(judge.champion_policy, plain.tracks, max_ticks=1200,
                               lead_ticks=40)
    fracs = judge.suite.run_fracs.reshape(-1, 2)
    motion = np.asarray(judge.suite.start_motion).reshape(-1, 2, 3)
    assert any(found)  # the initial model fails somewhere on six hidden tracks
    for t, track in enumerate(plain.tracks):
        if not found[t]:
            np.testing.assert_allclose(fracs[t], [0.0, 0.5])  # never fails here: uniform
            np.testing.assert_allclose(motion[t, :, 0], plain.start_speed_mps)
            continue
        a = found[t][0]  # the first start replays the first failure's approach
        assert fracs[t, 0] == pytest.approx((a.s_m % track.length_m) / track.length_m)
        np.testing.assert_allclose(motion[t, 0], [a.speed_mps, a.lateral_m, a.heading_rad])
        assert fracs[t, 1] == 0.0  # the other start stays where uniform starts begin
    # the replayed approaches fail far more often than the uniform suite's runs
    policy = judge.champion_policy
    assert evaluate(policy, judge.suite).exited.mean() > evaluate(policy, plain).exited.mean()


def test_the_pool_puts_the_frontier_tracks_the_champion_fails_on_into_the_suite(champion
                                                                                ) -> None:
    pooled = dataclasses.replace(CONFIG, focus_pool=3)
    judge = _judge(champion, pooled)
    pool = EvalSuite.hidden(18, rotation=0)
    found = failure_approaches(judge.champion_policy, pool.tracks, max_ticks=1200,
                               lead_ticks=40)
    most = sorted(range(18), key=lambda t: -len(found[t]))[:6]
    assert judge.suite.track_seeds == tuple(pool.track_seeds[t] for t in most)
    assert not any(is_play_seed(s) for s in judge.suite.track_seeds)


def test_no_focus_no_share_is_the_verdict_suite_it_always_was(champion) -> None:
    off = dataclasses.replace(CONFIG, focus_starts=0.0)
    assert _judge(champion, off).suite == off.suite()
    assert VerdictConfig().focus_starts == 0 and VerdictConfig().frontier_share == 0


def test_placebos_follow_the_suite_and_the_aa_check_judges_fresh_ones(champion) -> None:
    config = dataclasses.replace(CONFIG, families=FAMILIES, suite_size=6, frontier_share=0.5,
                                 null_follows_suite=True, focus_starts=0.0)
    judge = _judge(champion, config)
    null = judge.placebos(3)
    fresh = judge.placebos(3, salt=0xAA)
    assert all(len(p) >= 2 for p in null + fresh)
    assert not np.array_equal(null[0].observations, fresh[0].observations)
    np.testing.assert_array_equal(judge.placebos(3)[1].observations, null[1].observations)
    decisions = judge.placebo_decisions(2)
    assert len(decisions) == 2 and all(isinstance(d, Decision) for d, _ in decisions)


def test_a_focused_judge_is_rebuilt_exactly_from_its_record(champion) -> None:
    # what ``crowdlearning verify-verdict`` does: the record alone rebuilds the same suite
    config = dataclasses.replace(CONFIG, families=("easy", "tight"), frontier_share=0.5,
                                 focus_pool=2, null_follows_suite=True)
    judge = _judge(champion, config)
    net, data = champion
    again = Judge.from_config_record(judge.config_record(), net, 0, data, judge.seed)
    assert again.config == config
    assert again.suite == judge.suite and judge.suite.start_motion


def test_several_leads_give_each_failure_once_per_lead_lead_by_lead(champion) -> None:
    policy = Policy(champion[0])
    tracks = EvalSuite.hidden(6).tracks
    one = failure_approaches(policy, tracks, max_ticks=1200, lead_ticks=40)
    three = failure_approaches(policy, tracks, max_ticks=1200, lead_ticks=(40, 60, 80))
    assert any(one)
    for t, track in enumerate(tracks):
        k = len(one[t])
        assert len(three[t]) == 3 * k
        assert three[t][:k] == one[t]  # the first lead's block is the one-lead survey
        for f in range(k):  # the same failure, met from further back at each further lead
            a, b, c = three[t][f], three[t][k + f], three[t][2 * k + f]
            assert a.failed_at_m == b.failed_at_m == c.failed_at_m
            back = [(a.s_m - x.s_m) % track.length_m for x in (b, c)]
            assert 0 <= back[0] <= back[1] < track.length_m / 2
    with pytest.raises(ValueError, match="lead_ticks"):
        failure_approaches(policy, tracks, lead_ticks=())


def test_a_lead_step_makes_every_focused_run_of_a_track_a_different_run(champion) -> None:
    four = dataclasses.replace(CONFIG, starts_per_track=4, focus_starts=0.75)
    stepped = dataclasses.replace(four, focus_lead_step_ticks=20)

    def starts(judge: Judge) -> np.ndarray:  # per track, per start: frac, speed, lateral, head
        motion = np.asarray(judge.suite.start_motion).reshape(-1, 4, 3)
        return np.concatenate([judge.suite.run_fracs.reshape(-1, 4, 1), motion], axis=2)

    old, new = starts(_judge(champion, four)), starts(_judge(champion, stepped))
    # without the step a track the champion failed on once replays that one run 3 times
    assert any(len(np.unique(track[:3], axis=0)) < 3 for track in old)
    focused = [track for track in new if track[3, 0] == 0.0]  # else uniform: 0, 1/4, 1/2, 3/4
    assert focused
    for track in focused:
        assert len(np.unique(track[:3], axis=0)) == 3  # three distinct starts into failures
    np.testing.assert_array_equal(new[:, 3], old[:, 3])  # the uniform start is kept


def test_the_lead_step_is_recorded_only_when_on(champion) -> None:
    net, data = champion
    off = _judge(champion, CONFIG)
    assert "focus_lead_step_ticks" not in off.config_record()["verdict"]  # records as before
    on = _judge(champion, dataclasses.replace(CONFIG, focus_lead_step_ticks=20))
    record = on.config_record()
    assert record["verdict"]["focus_lead_step_ticks"] == 20
    again = Judge.from_config_record(record, net, 0, data, on.seed)
    assert again.config == on.config and again.suite == on.suite
    with pytest.raises(ValueError, match="focus_lead_step_ticks"):
        VerdictConfig(focus_lead_step_ticks=-1)


def test_placebos_of_a_champion_that_fails_fast_are_as_long_as_runs(champion) -> None:
    """A champion that leaves the track within seconds gave placebos of a few rows, whose
    fine-tunes swing the score far more than a run's worth of data does: a null too wide to
    pay anyone (docs/verdict.md, "placebos as long as runs")."""
    import copy

    import torch

    net, data = champion
    crasher = copy.deepcopy(net)
    with torch.no_grad():  # full lock to the left, whatever it sees: off the road in seconds
        crasher.body[-1].bias[0] = 50.0
    config = dataclasses.replace(CONFIG, null_runs=6, null_ticks=400, focus_starts=0.0)
    short = _judge((crasher, data), config).placebos(6)
    full = _judge((crasher, data),
                  dataclasses.replace(config, null_full_runs=True)).placebos(6)
    assert max(len(p) for p in short) < 100  # a run ends at the first exit
    # back on the centreline after each exit: every placebo cut from 400 ticks (5-100% of it)
    assert min(len(p) for p in full) >= int(0.05 * 400)
    assert max(len(p) for p in full) <= 400  # never beyond null_ticks, however many resets
    assert sum(len(p) for p in full) > 3 * sum(len(p) for p in short)
    # still a placebo: the champion's own actions (full lock) plus noise, on its own states
    for p in full:
        np.testing.assert_allclose(p.targets[:, 0].mean(), 1.0, atol=0.1)
    assert VerdictConfig().null_full_runs is False
    # recorded only when on: verdicts published before it existed still verify
    assert "null_full_runs" not in _judge((crasher, data), config).config_record()["verdict"]
    on = _judge((crasher, data), dataclasses.replace(config, null_full_runs=True))
    record = on.config_record()
    assert record["verdict"]["null_full_runs"] is True
    assert Judge.from_config_record(record, crasher, 0, data, on.seed).config == on.config


def test_the_full_run_null_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdlearning.config import get_settings

    monkeypatch.setenv("CROWDLEARNING_VERDICT_NULL_FULL_RUNS", "true")
    get_settings.cache_clear()
    try:
        assert VerdictConfig.from_settings(get_settings()).null_full_runs is True
    finally:
        monkeypatch.delenv("CROWDLEARNING_VERDICT_NULL_FULL_RUNS")
        get_settings.cache_clear()
    assert VerdictConfig.from_settings(get_settings()).null_full_runs is False


def test_the_placebo_run_length_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdlearning.config import get_settings

    monkeypatch.setenv("CROWDLEARNING_VERDICT_NULL_TICKS", "600")
    get_settings.cache_clear()
    try:
        assert VerdictConfig.from_settings(get_settings()).null_ticks == 600
    finally:
        monkeypatch.delenv("CROWDLEARNING_VERDICT_NULL_TICKS")
        get_settings.cache_clear()
    assert VerdictConfig.from_settings(get_settings()).null_ticks == 1200
    with pytest.raises(ValueError, match="null_ticks"):
        VerdictConfig(null_ticks=0)
