"""Scripted keyboard and gamepad players behave as their names say, through the players'
interface, and their keys go through the same wheel as on the server."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.crowd.device_players import (
    DEVICE_PERSONAS,
    GamepadPlayer,
    KeyboardPlayer,
    make_device_persona,
)
from crowdlearning.crowd.simulation import CrowdMember, play_round
from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.learning.device import (
    KEY_LEFT,
    KEY_RIGHT,
    KEY_UP,
    WheelParams,
    check_device,
    device_codes,
    expert_actions,
)
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play

TRACK = "chicane-park"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(train_initial_model(0)[0])


def _run(policy: Policy, name: str, mode: str = "label", ticks: int = 300):
    persona = make_device_persona(name, np.random.default_rng(3))
    assert persona is not None
    return play(policy, persona, ticks=ticks, track_name=TRACK, mode=mode)


def test_names() -> None:
    rng = np.random.default_rng(0)
    for name in DEVICE_PERSONAS:
        assert make_device_persona(name, rng) is not None
    k = make_device_persona("keyboard-350", rng)
    assert isinstance(k, KeyboardPlayer) and k.delay_ticks == 7 and k.style == "track"
    g = make_device_persona("gamepad-100", rng)
    assert isinstance(g, GamepadPlayer) and g.delay_ticks == 2
    for other in ("expert", "keyboard", "keyboard-fast", "gamepad-x", "mouse-200"):
        assert make_device_persona(other, rng) is None


def test_the_threshold_player_holds_keys_where_the_expert_steers_hard(policy: Policy) -> None:
    c = _run(policy, "keyboard-threshold")
    codes = device_codes(c)
    wanted = expert_actions(named_track(TRACK), c.states)
    late = np.r_[np.full(4, np.nan), wanted[:-4, 0]]  # what it saw 200 ms (4 ticks) earlier
    left, right = (codes & KEY_LEFT) > 0, (codes & KEY_RIGHT) > 0
    seen = np.isfinite(late)
    np.testing.assert_array_equal(left[seen], late[seen] > 0.25)
    np.testing.assert_array_equal(right[seen], late[seen] < -0.25)
    assert left.any() or right.any()
    assert ((codes & KEY_UP) > 0).any()  # it throttles too
    # its keys moved the wheel, at most 0.1 a tick while held, as the server's would
    assert check_device(c) == ""
    step = WheelParams().press_step
    held = (left | right)[1:] & np.isfinite(c.player[1:, 0]) & np.isfinite(c.player[:-1, 0])
    assert (np.abs(np.diff(c.player[:, 0]))[held] <= step + 1e-9).all()


def test_a_tracking_keyboard_player_follows_the_expert(policy: Policy) -> None:
    c = _run(policy, "keyboard-0", ticks=400)
    wanted = expert_actions(named_track(TRACK), c.states)
    steer = np.isfinite(c.player[:, 0])
    assert steer.sum() > 20
    # where it steers, its wheel is closer to the expert than the policy is
    err_wheel = np.abs(c.player[steer, 0] - wanted[steer, 0]).mean()
    err_policy = np.abs(c.proposed[steer, 0] - wanted[steer, 0]).mean()
    assert err_wheel < err_policy


def test_the_wrong_way_player_steers_against_the_expert(policy: Policy) -> None:
    c = _run(policy, "keyboard-wrong", ticks=200)
    wanted = expert_actions(named_track(TRACK), c.states)
    steer = np.isfinite(c.player[:, 0])
    assert steer.any()
    assert np.mean(np.sign(c.player[steer, 0] - c.proposed[steer, 0])
                   == -np.sign(wanted[steer, 0])) > 0.8


def test_takeover_keyboard_control_lasts_while_the_wheel_is_off(policy: Policy) -> None:
    c = _run(policy, "keyboard-threshold", mode="takeover", ticks=300)
    codes = device_codes(c)
    steering_key = (codes & (KEY_LEFT | KEY_RIGHT)) > 0
    assert c.intervention.any()
    assert (c.intervention <= np.isfinite(c.player[:, 0])).all()
    # every tick a steering key is held is in control; some ticks after release are too
    assert (c.intervention[steering_key]).all()
    assert (c.intervention & ~steering_key).any()
    np.testing.assert_array_equal(c.executed[c.intervention, 0], c.player[c.intervention, 0])


def test_random_keys_and_gamepads(policy: Policy) -> None:
    c = _run(policy, "keyboard-random", ticks=100)
    codes = device_codes(c)
    assert len(np.unique(codes)) > 3
    pad = _run(policy, "gamepad-200", ticks=100)
    assert "device" not in pad.meta and np.isfinite(pad.player).all()


def test_a_simulated_round_mixes_devices(policy: Policy) -> None:
    rng = np.random.default_rng(0)
    crowd = [CrowdMember(f"{name}-{mode}", make_device_persona(name, rng), mode=mode)
             for name in DEVICE_PERSONAS for mode in ("label", "takeover")]
    contributions = play_round(policy, 0, crowd, rng, round_id="r", max_ticks=120)
    assert len(contributions) == len(crowd)
    by_name = {c.contributor_id: c for c in contributions}
    assert (device_codes(by_name["keyboard-threshold-takeover"]) >= 0).all()
    assert "device" not in by_name["gamepad-200-label"].meta
    assert all(check_device(c) == "" for c in contributions)
