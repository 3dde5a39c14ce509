from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.races.runner import POINTS, RacePlan, RaceRunner, replay
from tests.races.conftest import oval_plan


class Constant:
    """A policy that always does the same thing."""

    def __init__(self, steer: float, throttle: float) -> None:
        self.action = np.array([steer, throttle])

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.tile(self.action, (len(obs), 1))


def test_a_short_race_finishes_with_a_classification(oval_policies: dict) -> None:
    plan = oval_plan(cars=3, laps=1)
    runner = RaceRunner(plan, oval_policies)
    first = runner.frame()
    assert first["status"] == "racing" and len(first["cars"]) == 3
    assert [c["dist_m"] for c in first["cars"]] == [0.0, -10.0, -20.0]  # the staggered grid
    runner.run()
    result = runner.result()
    cars = result["cars"]
    assert [c["position"] for c in cars] == [1, 2, 3]
    assert sorted(c["car"] for c in cars) == [0, 1, 2]
    assert {c["version"] for c in cars} == {e.version for e in plan.entrants}
    finished = [c for c in cars if c["state"] == "finished"]
    assert finished, "the initial model drives a lap of the oval"
    times = [c["race_time_s"] for c in finished]
    assert times == sorted(times)
    for c in finished:
        assert c["lap_times_s"] == [c["race_time_s"]] and c["best_lap_s"] == c["race_time_s"]
        assert c["points"] == POINTS[c["position"] - 1]
    for c in cars:
        if c["state"] == "out":
            assert c["reason"] in {"left_track", "stalled", "time_up"} and c["points"] == 0
    frame = runner.frame()
    assert frame["status"] == "finished"
    assert frame["order"] == [c["car"] for c in cars]
    winner = frame["cars"][cars[0]["car"]]
    assert winner["pos"] == 1 and winner["gap_s"] == 0.0


def test_the_replay_equals_the_live_race(oval_policies: dict) -> None:
    plan = oval_plan(cars=3, laps=1, seed=12)
    live = RaceRunner(plan, oval_policies)
    frames = [live.frame()]
    while not live.finished:
        live.step()
        if live.tick % 2 == 0 or live.finished:
            frames.append(live.frame())
    again = RacePlan.from_json(plan.to_json())
    assert again == plan
    replayed, result = replay(again, oval_policies, frame_every=2)
    assert result == live.result()
    assert result["digest"] == live.digest
    assert replayed == frames


def test_a_car_that_leaves_the_track_is_reset_then_out(oval_policies: dict) -> None:
    plan = oval_plan(cars=2, laps=1, resets=2)
    policies = {**oval_policies, plan.entrants[0].version: Constant(1.0, 1.0)}
    runner = RaceRunner(plan, policies)
    runner.run()
    car = runner.frame()["cars"][0]
    assert (car["state"], car["reason"], car["resets"]) == ("out", "left_track", 2)
    assert car["gap_s"] is None


def test_a_car_that_stops_is_out_stalled_and_a_slow_race_times_out(oval_policies: dict) -> None:
    plan = oval_plan(cars=1, laps=1)
    runner = RaceRunner(plan, {plan.entrants[0].version: Constant(0.0, -1.0)})
    runner.run()
    assert runner.result()["cars"][0]["reason"] == "stalled"
    plan = oval_plan(cars=2, laps=1, max_lap_s=3.0)
    runner = RaceRunner(plan, oval_policies)
    runner.run()
    assert runner.tick == 60
    assert [c["reason"] for c in runner.result()["cars"]] == ["time_up", "time_up"]


def test_every_entrant_needs_a_policy(oval_policies: dict) -> None:
    plan = oval_plan(cars=3)
    with pytest.raises(ValueError, match="no policy"):
        RaceRunner(plan, {0: oval_policies[0]})
