"""The uncertainty signal, the segment record and the router (issue 11.3)."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.routing import RouterConfig, meet_failures, plan_missions
from crowdlearning.learning.train import TrainConfig, fit, new_network
from crowdlearning.learning.uncertainty import (
    EnsembleConfig,
    SegmentRecord,
    fails_from,
    passage_approaches,
    steering_spread,
    survey_segments,
    survey_widening,
    train_ensemble,
)
from crowdlearning.policy.network import Policy
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track_gen import generate_track, named_track

SMALL = EnsembleConfig(members=4, updates=150, seed=3)


@pytest.fixture(scope="module")
def initial() -> tuple:
    net, _ = train_initial_model(0)
    return net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)


def test_ensemble_disagrees_more_on_states_its_data_never_reached() -> None:
    # GIVEN an ensemble fine-tuned on the expert driving on the racing line of one track
    data = expert_demonstrations([100], 400)
    net = fit(new_network(0), data, TrainConfig(updates=300, seed=0))
    members = train_ensemble(net, data, EnsembleConfig(members=5, updates=200))
    # WHEN it scores its own training states and states well off the line, turned away
    track = generate_track(100)
    sim = RaceSim([track], 40)
    sim.reset_cars(np.arange(40), start_s_m=np.linspace(0, track.length_m, 40, endpoint=False),
                   speed_mps=8.0, lateral_m=3.0, heading_offset_rad=0.5)
    seen = steering_spread(members, data.observations).mean()
    unseen = steering_spread(members, sim.observe()).mean()
    # THEN the steering spread is much larger where the data says nothing
    assert unseen > 2.0 * seen, (seen, unseen)


def test_segments_where_the_initial_model_fails_are_the_unsure_ones(initial: tuple) -> None:
    # GIVEN the initial model (it leaves play tracks on the harder corners) and its ensemble
    net, demo = initial
    members = train_ensemble(net, demo, SMALL)
    tracks = [generate_track(s) for s in range(1000, 1012)]
    # WHEN it drives every track from 4 starts and each 25-m segment is scored
    record = survey_segments(Policy(net), members, tracks, starts_per_track=4)
    # THEN it failed somewhere, failures sit on visited segments, and the segments where it
    # failed have a clearly higher ensemble spread than those it drove through
    failed = record.failures > 0
    assert failed.sum() >= 3
    assert record.visited[failed].all()
    assert (record.passes >= record.failures).all()
    rel = record.relative_spread
    assert np.nanmean(rel[failed]) > 1.5 * np.nanmedian(rel[~failed & record.visited])
    # and the score ranks failed segments on top
    score = record.score()
    top = np.argsort(-np.nan_to_num(score, nan=-1.0))[:int(failed.sum())]
    assert failed[top].mean() >= 0.8


def test_a_car_that_steers_off_fails_in_the_segment_it_started_in() -> None:
    class HardLeft(Policy):
        def __init__(self) -> None:  # a deliberately broken candidate
            pass

        def act(self, observations: np.ndarray) -> np.ndarray:
            return np.tile([1.0, 1.0], (len(observations), 1))

    track = named_track("kidney")
    bad = HardLeft()
    record = survey_segments(bad, [bad, bad], [track], starts_per_track=4, segment_m=25.0)
    starts = track.length_m * np.arange(4) / 4
    assert record.failures.sum() == 4
    expected = {int(record.segment_of(0, s)) for s in starts}
    near = {int(record.segment_of(0, s + 25.0)) for s in starts}
    assert set(np.flatnonzero(record.failures)) <= expected | near
    assert np.allclose(record.spread[record.visited], 0.0)  # identical members never disagree


def _record(scores: np.ndarray) -> SegmentRecord:
    """A one-track record whose segments score ``1 + 4 * failure rate`` ~ ``scores``."""
    track = named_track("kidney")
    m = int(np.ceil(track.length_m / 25.0))
    assert len(scores) <= m
    spread = np.ones(m)
    failures = np.zeros(m, np.int64)
    failures[:len(scores)] = np.round(np.asarray(scores) * 10).astype(np.int64)
    return SegmentRecord((track,), 25.0, np.zeros(m, np.int64), np.arange(m) * 25.0,
                         np.full(m, 50), np.full(m, 10), spread, failures)


def test_router_follows_the_scores_caps_each_segment_and_starts_before_it() -> None:
    record = _record(np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]))
    cfg = RouterConfig(explore=0.0, max_share=0.3, temperature=0.5)
    plan = plan_missions(record, 20, np.random.default_rng(0), cfg)
    targets = np.array([int(record.segment_of(0, m.target_m)) for m in plan])
    counts = np.bincount(targets, minlength=len(record))
    # the worst segment gets the cap, the second the next most, and no one segment gets more
    assert counts[3] == 6 and counts.max() == 6
    assert counts[6] == np.sort(counts)[-2] and counts[6] >= 3
    assert len(set(targets.tolist())) >= 4  # after the caps the rest spreads out
    length = record.tracks[0].length_m
    lead = cfg.lead_s * cfg.start_speed_mps
    for m in plan:
        assert (m.target_m - m.start_s_m) % length == pytest.approx(lead % length)
        assert m.value == pytest.approx(record.score()[int(record.segment_of(0, m.target_m))])
    assert {m.reason for m in plan if m.value > 3} == {"failed"}


def test_router_explores_and_is_deterministic_from_its_seed() -> None:
    record = _record(np.array([0.0, 0.0, 2.0]))
    cfg = RouterConfig(explore=0.25)
    plan = plan_missions(record, 400, np.random.default_rng(7), cfg)
    explored = [m for m in plan if m.reason == "explore"]
    # about a quarter explores, spread over the whole track
    assert 0.18 < len(explored) / len(plan) < 0.32
    starts = np.array([m.start_s_m for m in explored])
    assert np.histogram(starts, bins=4, range=(0, record.tracks[0].length_m))[0].min() > 0
    again = plan_missions(record, 400, np.random.default_rng(7), cfg)
    assert [m.to_dict() for m in again] == [m.to_dict() for m in plan]
    other = plan_missions(record, 400, np.random.default_rng(8), cfg)
    assert [m.to_dict() for m in other] != [m.to_dict() for m in plan]


def test_ensemble_and_survey_are_deterministic(initial: tuple) -> None:
    net, demo = initial
    a = train_ensemble(net, demo, SMALL)
    b = train_ensemble(net, demo, SMALL)
    obs = demo.observations[:50]
    assert np.array_equal(steering_spread(a, obs), steering_spread(b, obs))
    assert steering_spread(a, obs).max() > 0  # the bootstrap members do differ
    tracks = [generate_track(1003)]
    r1 = survey_segments(Policy(net), a, tracks)
    r2 = survey_segments(Policy(net), b, tracks)
    assert np.array_equal(r1.failures, r2.failures)
    assert np.array_equal(np.nan_to_num(r1.spread), np.nan_to_num(r2.spread))


def test_a_widened_survey_is_one_survey_of_every_track_it_reached(initial: tuple) -> None:
    # GIVEN the initial model, four play tracks to survey and twelve more it may look at
    policy = Policy(initial[0])
    base = [generate_track(s) for s in range(1000, 1004)]
    more = [generate_track(s) for s in range(1004, 1016)]
    first = survey_segments(policy, [policy], base)
    assert 1 <= first.failing_segments < 100  # it fails somewhere on the first four
    # WHEN the record already has enough failing segments, nothing more is surveyed
    enough = survey_widening(policy, [policy], base, iter(more), failing_segments=1, batch=4)
    assert enough.tracks == tuple(base)
    assert np.array_equal(enough.failures, first.failures)
    # WHEN it asks for more failures than any track list holds, it widens 4 at a time up to
    # its cap, and the record is the same as one survey of all the tracks it reached
    wide = survey_widening(policy, [policy], base, iter(more), failing_segments=100, batch=4,
                           max_tracks=10)
    assert wide.tracks == tuple(base + more[:6])
    whole = survey_segments(policy, [policy], base + more[:6])
    for field in ("track_of", "start_m", "ticks", "passes", "failures"):
        assert np.array_equal(getattr(wide, field), getattr(whole, field)), field
    assert np.allclose(wide.spread, whole.spread, equal_nan=True)
    assert wide.failing_segments > first.failing_segments
    # and it stops when the tracks run out
    short = survey_widening(policy, [policy], base, iter(more[:2]), failing_segments=100)
    assert len(short.tracks) == 6


def _fails_within(policy: Policy, tracks: list, missions: list, ticks: int = 600) -> np.ndarray:
    """Per mission: does ``policy``, driving by itself from the mission's start (place, speed,
    offset, heading), leave the track or stall within ``ticks``?"""
    return fails_from(policy, tracks, [m.track_index for m in missions],
                      [m.start_s_m for m in missions], [m.speed_mps for m in missions],
                      [m.lateral_m for m in missions], [m.heading_rad for m in missions],
                      max_ticks=ticks)


def test_missions_at_failed_segments_start_on_the_champions_own_approach(initial: tuple) -> None:
    # GIVEN the initial model's record on eight play tracks and a plan aimed at its failures
    policy = Policy(initial[0])
    tracks = [generate_track(s) for s in range(1000, 1008)]
    record = survey_segments(policy, [policy], tracks)
    plan = plan_missions(record, 24, np.random.default_rng(5), RouterConfig(explore=0.0,
                                                                           spread_weight=0.0))
    failed = [m for m in plan if m.reason == "failed"]
    assert len(failed) >= 12
    # WHEN the missions are moved onto the champion's approaches
    met = meet_failures(policy, record, plan)
    # THEN the ones aimed at failures start elsewhere, at another speed, and most of them
    # now meet a failure, as the champion met it; the old starts mostly did not
    moved = [(old, new) for old, new in zip(plan, met, strict=True) if old != new]
    assert len(moved) == len(failed)  # the same runs again: every failure met again
    assert all(old.reason == "failed" for old, _ in moved)
    assert all(new.speed_mps != old.speed_mps for old, new in moved)
    assert all(0 <= new.start_s_m < tracks[new.track_index].length_m for _, new in moved)
    before = _fails_within(policy, tracks, [old for old, _ in moved])
    after = _fails_within(policy, tracks, [new for _, new in moved])
    assert after.mean() >= 0.6 and after.mean() > before.mean() + 0.2, (before.mean(),
                                                                        after.mean())
    # and every other mission is unchanged, and the whole is deterministic
    assert [m for m in met if m.reason != "failed"] == [m for m in plan if m.reason != "failed"]
    assert meet_failures(policy, record, plan) == met


def test_passage_approaches_are_the_policys_own_driving_a_lead_before_each_segment(
        initial: tuple) -> None:
    # GIVEN the initial model on two play tracks, and where it first entered each segment
    policy = Policy(initial[0])
    tracks = [generate_track(s) for s in (1000, 1001)]
    lead = 40
    found = passage_approaches(policy, tracks, lead_ticks=lead)
    record = survey_segments(policy, [policy], tracks)
    for t, per_track in enumerate(found):
        # THEN most segments it drove have an approach, each entered where named
        assert len(per_track) >= 0.5 * int(np.sum(record.visited[record.track_of == t]))
        for local, a in per_track.items():
            assert int(a.failed_at_m // record.segment_m) == local
            assert a.speed_mps > 0.0
    # AND driving on from an approach reaches the segment about ``lead`` ticks later, at speed
    some = [(t, local, a) for t, per in enumerate(found) for local, a in list(per.items())[:6]]
    sim = RaceSim(tracks, len(some), max_steps=3 * lead)
    sim.reset_cars(np.arange(len(some)), track_index=[t for t, _, _ in some],
                   start_s_m=[a.s_m for _, _, a in some], speed_mps=[a.speed_mps for *_, a in some],
                   lateral_m=[a.lateral_m for *_, a in some],
                   heading_offset_rad=[a.heading_rad for *_, a in some])
    reached = np.full(len(some), -1)
    for tick in range(1, 3 * lead):
        sim.step(policy.act(sim.observe()))
        local = np.floor(sim.frenet[:, 0] / record.segment_m).astype(np.int64)
        hit = (reached < 0) & (local == np.array([loc for _, loc, _ in some]))
        reached[hit] = tick
    assert (np.abs(reached - lead) <= 8).mean() >= 0.8, reached


def test_passing_missions_start_on_the_champions_own_driving(initial: tuple) -> None:
    policy = Policy(initial[0])
    tracks = [generate_track(s) for s in range(1000, 1004)]
    record = survey_segments(policy, [policy], tracks)
    plan = plan_missions(record, 16, np.random.default_rng(2), RouterConfig(explore=0.5))
    only_failed = meet_failures(policy, record, plan)
    every = meet_failures(policy, record, plan, passing=True)
    # the failed ones are placed alike; with passing, the others too, at their own speed
    assert [m for m in every if m.reason == "failed"] == \
        [m for m in only_failed if m.reason == "failed"]
    others = [m for m in every if m.reason != "failed"]
    assert others and sum(m.on_approach for m in others) >= 0.75 * len(others)
    assert np.mean([m.speed_mps for m in others if m.on_approach]) > 10.0  # not a standing start
    assert all(m.target_m == p.target_m and m.reason == p.reason
               for m, p in zip(every, plan, strict=True))
