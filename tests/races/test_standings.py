from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.races.standings import (
    DNF,
    FINISHED,
    RACING,
    GapClock,
    line_crossings,
    race_order,
)


def test_lap_lines_crossed_are_timed_within_the_tick() -> None:
    before = np.array([95.0, -5.0, 50.0, 195.0])
    after = np.array([105.0, 1.0, 60.0, 205.0])
    crossings = line_crossings(before, after, 100.0, 2, t_before=10.0, dt=0.05)
    assert crossings == [(0, 1, pytest.approx(10.025)), (3, 2, pytest.approx(10.025))]
    assert line_crossings(np.array([150.0]), np.array([160.0]), 100.0, 2, 0.0, 0.05) == []
    # past the last lap nothing more is timed
    assert line_crossings(np.array([295.0]), np.array([305.0]), 100.0, 2, 0.0, 0.05) == []


def test_finished_cars_lead_by_time_then_racing_by_distance_then_out() -> None:
    state = np.array([RACING, FINISHED, DNF, RACING, FINISHED])
    distance = np.array([150.0, 200.0, 180.0, 170.0, 200.0])
    finish = np.array([np.nan, 31.0, np.nan, np.nan, 30.5])
    assert race_order(state, distance, finish) == [4, 1, 3, 0, 2]


def test_the_gap_is_the_time_since_the_leader_was_here() -> None:
    clock = GapClock(capacity=2)  # grows
    for tick in range(11):
        clock.record(tick * 0.1, tick * 2.0)  # the leader at 20 m/s
    gaps = clock.gaps(np.array([20.0, 10.0, 0.0]), 1.0)
    assert gaps == pytest.approx([0.0, 0.5, 1.0])
    assert np.isnan(clock.gaps(np.array([-5.0]), 1.0)[0])  # behind where the leader started
    clock.record(1.1, 5.0)  # the leader's front never goes back
    assert clock.gaps(np.array([20.0]), 1.1) == pytest.approx([0.1])
