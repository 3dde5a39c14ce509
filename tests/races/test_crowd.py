"""Crowd play: the weighted median, labellers' contributions, the crowd car and its replay."""

from __future__ import annotations

import math

import numpy as np

from crowdlearning.evaluation.screening import Screener
from crowdlearning.learning.device import (
    ANALOG,
    KeyboardWheel,
    check_device,
    device_codes,
    key_code,
)
from crowdlearning.races.crowd import (
    CrowdSeats,
    crowd_input,
    labeller_contribution,
    verdict_weight,
    weighted_median,
)
from crowdlearning.races.field import choose_field
from crowdlearning.races.runner import RacePlan, RaceRules, RaceRunner, replay
from crowdlearning.races.schedule import TrackChoice
from tests.races.conftest import VERSIONS

LEFT = key_code(True, False, False, False)


def crowd_plan(cars: int = 3, seed: int = 11, **rules: object) -> RacePlan:
    entrants = choose_field(range(VERSIONS), 0, cars, seed, crowd=True)
    return RacePlan("r200", seed, 200.0, TrackChoice("named", 0, "oval"), tuple(entrants),
                    RaceRules(laps=1, **rules))  # type: ignore[arg-type]


def test_the_weighted_median() -> None:
    assert weighted_median([0.1, 0.5, 0.9], [1, 1, 1]) == 0.5
    assert weighted_median([0.1, 0.5, 0.9], [1, 1, 5]) == 0.9  # a trusted labeller wins
    assert weighted_median([0.9, 0.1, 0.5], [1, 5, 1]) == 0.1  # order does not matter
    assert weighted_median([-0.2, 0.4], [1, 1]) == 0.1  # exactly half: the midpoint
    assert weighted_median([0.3, math.nan, 0.7], [1, 9, 0]) == 0.3  # no value, no weight
    assert math.isnan(weighted_median([], []))
    agg = crowd_input(np.array([[0.2, np.nan], [0.4, 0.5], [0.9, np.nan]]), np.ones(3))
    assert agg[0] == 0.4 and agg[1] == 0.5  # per control, among those who gave one
    assert verdict_weight([]) == 0.5
    assert verdict_weight(["improved"] * 3 + ["worse"]) == 4 / 6
    assert verdict_weight(["rejected"] * 4) == 1 / 6


def test_the_crowd_car_drives_the_aggregate_and_the_replay_repeats_it(
        oval_policies: dict) -> None:
    plan = crowd_plan(max_lap_s=4.0)
    crowd = plan.crowd_car
    assert crowd is not None and plan.entrants[crowd].role == "crowd"
    assert plan.entrants[crowd].version == 0  # a copy of the champion
    runner = RaceRunner(plan, oval_policies, record=True)
    seats = CrowdSeats(runner, 8)
    runner.crowd_input = seats.tick
    a = seats.join(1, "p1", "ann", crowd, weight=1.0)
    b = seats.join(2, "p2", "bob", crowd, weight=3.0)
    seats.set_input(a, 0, 0.2, None, None, "analog")
    seats.set_input(b, 0, -0.1, 0.6, None, "analog")
    for _ in range(20):
        runner.step()
    executed = runner.recorded(runner.open_segment(crowd))["executed"]
    assert np.all(executed[:, 0] == -0.1)  # bob's weight carries the median
    assert np.all(executed[:, 1] == 0.6)
    assert runner.crowd_driving
    seats.leave(1)
    seats.leave(2)
    runner.step()
    assert not runner.crowd_driving  # nobody steers: the policy drives
    runner.run()
    assert len(runner.crowd_log) == 20 and runner.crowd_log[0] == (0, -100, 600)
    recorded = RacePlan(**{**plan.__dict__, "crowd": tuple(runner.crowd_log)})
    again = RacePlan.from_json(recorded.to_json())
    assert again == recorded
    _, result = replay(again, oval_policies)
    assert result["digest"] == runner.digest  # the replay re-simulates the same race
    _, without = replay(plan, oval_policies)
    assert without["digest"] != runner.digest  # (the crowd's input mattered)


def test_a_labellers_contribution_is_the_cars_states_with_their_labels(
        oval_policies: dict, oval: object) -> None:
    plan = crowd_plan(max_lap_s=5.0)
    car = next(e.car for e in plan.entrants if e.role == "champion")
    runner = RaceRunner(plan, oval_policies, record=True)
    seats = CrowdSeats(runner, 8)
    runner.crowd_input = seats.tick
    for _ in range(5):
        runner.step()
    keys = seats.join(1, "p1", "ann", car, weight=0.5)  # joins at tick 5, on a keyboard
    pad = seats.join(2, "p2", "bob", car, weight=0.5)  # an analog device
    wheel, expected = KeyboardWheel(1), []
    for t in range(5, 40):
        held = LEFT if t < 20 else 0
        seats.set_input(keys, t, None, None, held, "keyboard")
        seats.set_input(pad, t, 0.25, None, None, "gamepad")
        runner.step()
        expected.append(wheel.step([0], [held], runner.proposed[car:car + 1]).player[0])
    runner.close_all()
    [segment] = [s for s in runner.closed if s.car == car]
    assert (segment.first, segment.end, segment.reason) == (0, 40, "race_over")
    mine = labeller_contribution("race-a", keys, segment, runner.recorded(segment),
                                 seats.inputs(keys, segment), model_version=0, race_id="r200")
    theirs = labeller_contribution("race-b", pad, segment, runner.recorded(segment),
                                   seats.inputs(pad, segment), model_version=0, race_id="r200")
    assert mine is not None and theirs is not None
    # the very same live states, the car's own recording, for both
    np.testing.assert_array_equal(mine.states, theirs.states)
    np.testing.assert_array_equal(mine.states, runner._rec["states"][car, :40])
    np.testing.assert_array_equal(mine.executed, runner._rec["executed"][car, :40])
    assert list(mine.ticks) == list(range(40)) and mine.mode == "label"
    # labels follow each player's input through the device model
    assert np.isnan(mine.player[:5]).all() and (mine.input_tick[:5] == -1).all()
    np.testing.assert_array_equal(mine.player[5:], np.array(expected))
    assert mine.player[19, 0] > mine.proposed[19, 0]  # left held: more left than the car
    assert (device_codes(mine)[5:20] == LEFT).all() and device_codes(mine)[0] == ANALOG
    assert check_device(mine) == ""  # the keys replay to the recorded labels
    assert (theirs.player[5:, 0] == 0.25).all() and np.isnan(theirs.player[5:, 1]).all()
    assert (theirs.input_tick[5:] == np.arange(5, 40)).all()
    # the screen replays the states from the segment's start, bit for bit
    screen = Screener(lambda digest: oval)
    assert screen._replay(mine) == ""
    assert mine.start.lateral_m != 0.0 or car == 1  # a staggered grid slot


def test_a_reset_ends_a_segment_and_the_next_one_replays_too(oval_policies: dict,
                                                              oval: object) -> None:
    plan = crowd_plan(max_lap_s=20.0, resets=1)
    car = next(e.car for e in plan.entrants if e.role == "champion")
    runner = RaceRunner(plan, oval_policies, record=True)
    seats = CrowdSeats(runner, 8)
    runner.crowd_input = seats.tick

    class Wild:  # the champion's car steers hard left: off the track, reset, off again
        def act(self, obs: np.ndarray) -> np.ndarray:
            out = oval_policies[0].act(obs)
            out[:, 0] = 1.0
            return out

    runner.policies = {**oval_policies, 0: Wild()}
    seat = seats.join(1, "p1", "ann", car, weight=0.5)
    keys = seats.join(2, "p2", "bob", car, weight=0.5)
    seats.set_input(seat, 0, -0.5, None, None, "analog")
    seats.set_input(keys, 0, None, None, LEFT, "keyboard")
    while not runner.finished:
        runner.step()
        if any(s.reason == "reset" for s in runner.closed):
            seats.rest_wheels(car)  # as the service does when a segment ends
    segments = [s for s in runner.closed if s.car == car]
    assert [s.reason for s in segments] == ["reset", "out"]
    screen = Screener(lambda digest: oval)
    for segment in segments:
        for who in (seat, keys):
            c = labeller_contribution(f"race-{segment.first}", who, segment,
                                      runner.recorded(segment), seats.inputs(who, segment),
                                      model_version=0, race_id="r200")
            assert c is not None and screen._replay(c) == ""
            assert check_device(c) == ""  # the wheel restarted at rest with the segment
    assert segments[1].start.speed_mps == plan.rules.start_speed_mps / 2


def test_the_crowd_car_scores_no_season_points() -> None:
    import sqlalchemy as sa

    from crowdlearning.races.records import RaceRecords, season_of

    records = RaceRecords(sa.create_engine("sqlite://"))
    plan = crowd_plan()
    rows = [{"car": e.car, "version": e.version, "role": e.role, "position": e.car + 1,
             "state": "finished", "race_time_s": 10.0 + e.car, "best_lap_s": 10.0,
             "points": 25 - e.car} for e in plan.entrants]
    records.add(plan, {"digest": "x", "cars": rows}, 300.0)
    models = records.season_models(season_of(plan.starts_at))
    champion = next(m for m in models if m["version"] == 0)
    own = next(r for r in rows if r["role"] == "champion")
    assert champion["races"] == 1 and champion["points"] == own["points"]  # not the crowd's
