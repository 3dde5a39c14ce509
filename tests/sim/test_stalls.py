"""A car that stops advancing stops being simulated once ``stall_ticks`` say so."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.errors import SimulationError
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track_gen import generate_track


def _sim(stall_ticks: int) -> RaceSim:
    sim = RaceSim([generate_track(0)], 2, max_steps=500, stall_ticks=stall_ticks)
    sim.reset_cars(np.arange(2), speed_mps=8.0)
    return sim


def test_a_braking_car_stalls_a_driving_car_does_not() -> None:
    sim = _sim(stall_ticks=40)
    expert = ExpertDriver()
    ticks = 0
    while sim.alive[0] and ticks < 500:
        actions = expert.act(sim)
        actions[0] = (0.0, -1.0)  # car 0 brakes to a stop and stays there
        sim.step(actions)
        ticks += 1
    assert sim.stalled.tolist() == [True, False]
    assert sim.alive[1]
    assert sim.pose[0, 3] == 0.0
    # stopped within about 2 s from 8 m/s, then 40 ticks without a metre of progress
    assert 40 < ticks < 40 + 60


def test_reset_clears_a_stall_and_zero_switches_it_off() -> None:
    sim = _sim(stall_ticks=10)
    for _ in range(100):
        sim.step(np.tile([0.0, -1.0], (2, 1)))
    assert sim.stalled.all() and not sim.alive.any()
    sim.reset_cars(np.array([0]), speed_mps=8.0)
    assert sim.alive[0] and not sim.stalled[0]
    off = _sim(stall_ticks=0)
    for _ in range(100):
        off.step(np.tile([0.0, -1.0], (2, 1)))
    assert off.alive.all() and not off.stalled.any()


def test_bad_stall_settings_are_refused() -> None:
    with pytest.raises(SimulationError):
        RaceSim([generate_track(0)], 1, stall_ticks=-1)
    with pytest.raises(SimulationError):
        RaceSim([generate_track(0)], 1, stall_ticks=5, stall_progress_m=0.0)
