"""The simulated market plays where the champion fails, and the demo prints every round."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.crowd.demo import market_rounds_text
from crowdlearning.crowd.demo_cli import demo_parser
from crowdlearning.crowd.simulation import make_crowd, mission_starts, play_round
from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.learning.uncertainty import survey_segments
from crowdlearning.policy.network import Policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(train_initial_model(0)[0])


def test_missions_start_the_crowd_before_segments_the_champion_fails(policy: Policy) -> None:
    starts = mission_starts(policy, 10, np.random.default_rng(1), tracks_per_family=4)
    assert len(starts) == 10 and all(s is not None for s in starts)
    tracks = list({s.track.digest: s.track for s in starts}.values())
    record = survey_segments(policy, [policy], tracks)
    failing = 0
    for s in starts:
        t = tracks.index(s.track)
        target = record.segment_of(t, s.start_s_m + 3.0 * 8.0)  # the router's 3 s at 8 m/s
        failing += int(record.failures[target] > 0)
        assert (s.speed_mps, s.lateral_m, s.heading_rad) == (8.0, 0.0, 0.0)
    assert failing >= 5  # most runs aim at a failing segment (20% explore, capped per segment)
    # on the champion's approach: the same plan, the failed ones moved to where the champion
    # was 3 s before failing, at its speed
    met = mission_starts(policy, 10, np.random.default_rng(1), tracks_per_family=4,
                         approach=True)
    moved = [(a, b) for a, b in zip(starts, met, strict=True) if a != b]
    assert len(moved) >= 3 and all(a.track == b.track for a, b in moved)
    assert all(b.speed_mps != 8.0 for _, b in moved)
    # no mission: every run on a random track and start, as before
    assert mission_starts(policy, 4, np.random.default_rng(1), share=0.0) == [None] * 4


def test_missions_look_further_on_the_frontier_when_its_first_tracks_show_few_failures(
        policy: Policy) -> None:
    # GIVEN a crowd of 40: more failing segments than 2 easy play tracks of the initial model
    # hold (it is the frontier: the only unlocked family)
    narrow = mission_starts(policy, 40, np.random.default_rng(4), tracks_per_family=2,
                            widen_to=0)
    wide = mission_starts(policy, 40, np.random.default_rng(4), tracks_per_family=2,
                          widen_to=12)
    # THEN without widening every mission is on the first 4 tracks, with it some are beyond,
    # and every mission names a track it can be played on
    def seeds(starts: list) -> set[int]:
        return {start.track.seed for start in starts if start is not None}

    assert seeds(narrow) <= {1000, 1001, 1002, 1003}
    assert seeds(wide) - {1000, 1001, 1002, 1003} and seeds(wide) <= set(range(1000, 1012))
    assert all(0 <= s.start_s_m < s.track.length_m for s in wide if s is not None)


def test_a_round_plays_the_missions_it_is_given(policy: Policy) -> None:
    rng = np.random.default_rng(2)
    crowd = make_crowd({"expert": 2}, rng)
    starts = mission_starts(policy, 2, np.random.default_rng(3), tracks_per_family=2,
                            approach=True)
    contributions = play_round(policy, 0, crowd, rng, round_id="r0", max_ticks=40,
                               starts=starts)
    for c, s in zip(contributions, starts, strict=True):
        assert s is not None and c.start.track_digest == s.track.digest
        assert c.start.start_s_m == pytest.approx(s.start_s_m)
        # where and how the car moved at the start: the mission's (an approach's speed,
        # offset and heading when it aims at a failure), recorded for the screener's replay
        assert (c.start.speed_mps, c.start.lateral_m, c.start.heading_offset_rad) == \
            pytest.approx((s.speed_mps, s.lateral_m, s.heading_rad))


def test_the_demo_prints_each_version_and_each_personas_earnings_per_run() -> None:
    point = {"round": 0, "version": 0, "lap_completion": 0.5, "mean_lap_time_s": 40.0,
             "unlocked_lap_completion": 0.5, "unlocked_mean_lap_time_s": 41.0,
             "unlocked": ["easy"]}
    after = {**point, "round": 1, "version": 1, "lap_completion": 1.0, "mean_lap_time_s": 39.0,
             "unlocked": ["easy", "tight"], "hbar_per_run": {"expert": 0.12, "random": -0.6},
             "promotion": {"candidate": 1, "promoted": True, "champion_common_lap_s": 40.0,
                           "candidate_common_lap_s": 39.0},
             "aa": {"version": 0, "placebos": 8, "improved": 0, "worse": 1}}
    text = "\n".join(market_rounds_text({"learning_curve": [point, after]}))
    assert "v1 yes 40.0->39.0 s" in text and "tight" in text
    assert "+0.1200" in text and "-0.6000" in text
    assert "A/A v0: 8 placebos, improved 0, worse 1" in text
    assert demo_parser().parse_args(["--missions", "0.5", "--aa", "4"]).missions == 0.5
