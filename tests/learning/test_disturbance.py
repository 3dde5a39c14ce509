"""Server-chosen steering disturbances: drawn from the run's seed, applied to what the car
executes and never to the label, and replayable by the screen."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.screening import ScreenConfig, Screener
from crowdlearning.learning.disturbance import Disturbance, apply_disturbance
from crowdlearning.learning.labels import mix_actions
from crowdlearning.learning.session import PlayerInputs, SessionBatch, SessionSpec
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.sim.track_gen import named_track


def test_a_disturbance_follows_from_its_seed_alone() -> None:
    a, b = Disturbance.draw(42, 0.1, 0.2), Disturbance.draw(42, 0.1, 0.2)
    assert a == b and 0.1 <= a.std <= 0.2
    assert np.array_equal(a.steering(300), b.steering(300))
    assert np.array_equal(a.steering(300)[:100], a.steering(100))  # any run length, same ticks
    other = Disturbance.draw(43, 0.1, 0.2)
    assert not np.array_equal(a.steering(100), other.steering(100))
    noise = Disturbance(7, 0.15).steering(20_000)
    assert abs(noise.std() - 0.15) < 0.01 and abs(noise.mean()) < 0.01
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.05  # independent tick to tick
    assert not Disturbance.draw(1, 0.0, 0.0).steering(50).any()
    with pytest.raises(ValueError, match="low <= high"):
        Disturbance.draw(1, 0.3, 0.2)


def test_the_disturbance_moves_the_car_but_never_the_label() -> None:
    track = named_track("kidney")
    policy = Policy(PolicyNet())
    wind = Disturbance(5, 0.2)
    specs = [SessionSpec("p", f"s{i}", track, mode="label", beta=1.0,
                         disturbance=wind if i else None) for i in range(2)]
    batch = SessionBatch(policy, specs, model_version=0, max_ticks=80)
    expert = make_persona("expert", np.random.default_rng(0))
    rows = np.arange(2)
    while not batch.done:
        inputs = PlayerInputs.none(2)
        inputs.set_rows(rows, expert.act(batch.frame(), rows))
        batch.advance(inputs)
    calm, gusty = batch.contributions()
    for c in (calm, gusty):
        mixed = mix_actions(np.zeros(c.num_ticks, bool), c.proposed, c.player,
                            c.intervention, np.ones(c.num_ticks))
        offsets = (wind.steering(c.num_ticks) if c is gusty else np.zeros(c.num_ticks))
        assert np.array_equal(c.executed, apply_disturbance(mixed, offsets))
        assert np.array_equal(c.executed[:, 1], c.player[:, 1])  # throttle untouched
    assert not np.array_equal(calm.states, gusty.states)  # the car went elsewhere
    assert np.abs(gusty.player[:, 0] - calm.player[:, 0]).max() > 0  # answers to other states
    screen = Screener({track.digest: track}.__getitem__, config=ScreenConfig())
    assert screen.check(gusty) == ""  # the recorded actions re-simulate the run bit for bit
