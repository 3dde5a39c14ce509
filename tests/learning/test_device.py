"""Input devices: the keyboard wheel (ramp, return, both keys, rate), the record it leaves, and
the keyboard label model (gain estimated per run, clamped, reproducible)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crowdlearning.crowd.device_players import make_device_persona
from crowdlearning.crowd.personas import make_persona
from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.device import (
    ANALOG,
    DEFAULT_GAIN,
    GAIN_META_KEY,
    GAIN_MIN,
    KEY_DOWN,
    KEY_LEFT,
    KEY_RIGHT,
    KEY_UP,
    KeyboardWheel,
    WheelParams,
    check_device,
    device_codes,
    device_meta,
    device_targets,
    expert_actions,
    key_code,
    replay_wheel,
    rle_decode,
    rle_encode,
    with_estimated_gain,
)
from crowdlearning.learning.labels import LabelConfig, extract_labels
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play

TRACK = "chicane-park"  # corners early on: keyboard players steer


def _drive(wheel: KeyboardWheel, codes: list[int], proposed: float | list[float] = 0.0,
           intervene: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Step one row through ``codes``; (player values (T, 2), intervention (T,))."""
    props = np.broadcast_to(np.asarray(proposed, float), (len(codes),))
    out, held = [], []
    for code, p in zip(codes, props, strict=True):
        step = wheel.step(np.array([0]), np.array([code]), np.array([[p, p]]),
                          np.array([intervene]))
        out.append(step.player[0])
        held.append(step.intervention[0])
    return np.array(out), np.array(held)


# --------------------------------------------------------------------------- the wheel
def test_a_held_key_ramps_the_wheel_at_the_press_rate_to_full_lock() -> None:
    values, _ = _drive(KeyboardWheel(1), [KEY_LEFT] * 12)
    np.testing.assert_allclose(values[:, 0], np.minimum(0.1 * np.arange(1, 13), 1.0))
    assert np.isnan(values[:, 1]).all()  # throttle untouched: no input
    right, _ = _drive(KeyboardWheel(1), [KEY_RIGHT] * 3, proposed=0.2)
    np.testing.assert_allclose(right[:, 0], [0.1, 0.0, -0.1])


def test_the_press_rate_is_per_second() -> None:
    fast = KeyboardWheel(1, WheelParams(press_rate=4.0))
    values, _ = _drive(fast, [KEY_UP] * 3)
    np.testing.assert_allclose(values[:, 1], [0.2, 0.4, 0.6])
    slow = KeyboardWheel(1, WheelParams(press_rate=1.0, hz=10.0))
    values, _ = _drive(slow, [KEY_DOWN] * 2)
    np.testing.assert_allclose(values[:, 1], [-0.1, -0.2])


def test_released_the_wheel_returns_to_the_proposal_then_rests() -> None:
    values, _ = _drive(KeyboardWheel(1), [KEY_LEFT] * 6 + [0] * 5, proposed=0.1)
    # up to 0.7, then back at 4/s (0.2 a tick) to the proposal 0.1, where it rests (no input)
    np.testing.assert_allclose(values[:6, 0], 0.1 + 0.1 * np.arange(1, 7))
    np.testing.assert_allclose(values[6:8, 0], [0.5, 0.3])
    assert np.isnan(values[8:, 0]).all()  # back on the proposal: at rest


def test_the_return_follows_a_moving_proposal() -> None:
    values, _ = _drive(KeyboardWheel(1), [KEY_RIGHT] * 3 + [0] * 4,
                       proposed=[0.0, 0.0, 0.0, 0.2, 0.2, 0.4, 0.4])
    np.testing.assert_allclose(values[:6, 0], [-0.1, -0.2, -0.3, -0.1, 0.1, 0.3])
    assert np.isnan(values[6, 0])  # reached the proposal: at rest


def test_both_keys_held_return_toward_the_proposal() -> None:
    both = KEY_LEFT | KEY_RIGHT
    values, _ = _drive(KeyboardWheel(1), [KEY_LEFT] * 5 + [both] * 2 + [KEY_UP | KEY_DOWN])
    np.testing.assert_allclose(values[5:7, 0], [0.3, 0.1])
    assert np.isnan(values[:, 1]).all()  # up and down together: no throttle input
    assert np.isnan(values[7, 0])


def test_a_held_key_always_means_more_than_the_car() -> None:
    # the policy already steers further left than the wheel: holding left goes beyond it
    values, _ = _drive(KeyboardWheel(1), [KEY_LEFT] * 4, proposed=[0.0, 0.0, 0.6, 0.6])
    np.testing.assert_allclose(values[:, 0], [0.1, 0.2, 0.7, 0.8])


def test_rows_are_independent_and_analog_rows_rest() -> None:
    wheel = KeyboardWheel(3)
    rows = np.array([0, 1, 2])
    for _ in range(3):
        step = wheel.step(rows, np.array([KEY_LEFT, ANALOG, KEY_RIGHT | KEY_UP]),
                          np.zeros((3, 2)))
    np.testing.assert_allclose(step.player[0], [0.3, np.nan])
    assert np.isnan(step.player[1]).all() and not step.active[1].any()
    np.testing.assert_allclose(step.player[2], [-0.3, 0.3])
    # a row that stops sending keys starts again at rest when it comes back
    wheel.step(rows, np.array([ANALOG, ANALOG, ANALOG]), np.zeros((3, 2)))
    again = wheel.step(rows, np.array([KEY_LEFT, ANALOG, ANALOG]), np.zeros((3, 2)))
    np.testing.assert_allclose(again.player[0, 0], 0.1)


def test_takeover_control_is_held_until_the_wheel_has_returned() -> None:
    wheel = KeyboardWheel(1)
    asks = [True] * 3 + [False] * 4
    held = []
    for code, ask in zip([KEY_LEFT] * 3 + [0] * 4, asks, strict=True):
        step = wheel.step(np.array([0]), np.array([code]), np.zeros((1, 2)), np.array([ask]))
        held.append(bool(step.intervention[0]))
    # 0.3 returns in two ticks (0.1, then at rest): control back on the tick it rests
    assert held == [True, True, True, True, False, False, False]
    # without asking, pressing a key does not take control
    _, never = _drive(KeyboardWheel(1), [KEY_LEFT] * 3, intervene=False)
    assert not never.any()


def test_wheel_params_are_validated_and_round_trip() -> None:
    with pytest.raises(ValueError, match="press_rate"):
        WheelParams(press_rate=0.0)
    params = WheelParams(press_rate=3.0, return_rate=5.0)
    assert WheelParams.from_meta(params.to_meta()) == params
    assert WheelParams.from_meta("nonsense") == WheelParams()


def test_key_codes_and_run_length_encoding() -> None:
    assert key_code(True, False, False, True) == KEY_LEFT | KEY_DOWN
    assert key_code(False, False, False, False) == 0
    codes = np.array([-1, -1, 1, 1, 1, 0, 5, -1])
    assert rle_encode(codes) == [[-1, 2], [1, 3], [0, 1], [5, 1], [-1, 1]]
    np.testing.assert_array_equal(rle_decode(rle_encode(codes)), codes)
    for bad in ([[1, 0]], [[16, 2]], [[1, 2, 3]], "1x2", [[-2, 1]]):
        with pytest.raises(ValueError):
            rle_decode(bad)


# --------------------------------------------------------------------------- runs and labels
@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(train_initial_model(0)[0])


def _keyboard_run(policy: Policy, name: str, ticks: int = 300, mode: str = "label",
                  seed: int = 1) -> Contribution:
    persona = make_device_persona(name, np.random.default_rng(seed))
    assert persona is not None
    return play(policy, persona, ticks=ticks, track_name=TRACK, mode=mode)


def test_a_keyboard_run_records_its_keys_and_the_wheel_replays_exactly(policy: Policy) -> None:
    c = _keyboard_run(policy, "keyboard-200")
    record = c.meta["device"]
    assert record["name"] == "keyboard" and record["wheel"] == WheelParams().to_meta()
    codes = device_codes(c)
    assert len(codes) == c.num_ticks and (codes >= 0).all()
    assert np.isfinite(c.player[:, 0]).sum() > 20  # it steered
    assert check_device(c) == ""
    keyboard = codes >= 0
    np.testing.assert_array_equal(replay_wheel(c)[keyboard], c.player[keyboard])
    # the record survives serialization
    again = Contribution.from_bytes(c.to_bytes())
    np.testing.assert_array_equal(device_codes(again), codes)
    # a player column that does not follow from the keys is named
    forged = c.player.copy()
    row = int(np.flatnonzero(np.isfinite(forged[:, 0]))[0])
    forged[row, 0] = np.clip(forged[row, 0] + 0.5, -1, 1) if forged[row, 0] < 0.5 else -0.9
    assert "keyboard input at tick" in check_device(dataclasses.replace(c, player=forged))


def test_analog_runs_keep_their_values_as_labels(policy: Policy) -> None:
    c = play(policy, make_persona("noisy-0.1", np.random.default_rng(0)), ticks=100,
             track_name=TRACK)
    assert "device" not in c.meta
    assert device_targets(c) is c.player
    tagged = dataclasses.replace(c, meta={**c.meta, "device": device_meta(
        np.full(c.num_ticks, ANALOG), ["gamepad"], WheelParams())})
    np.testing.assert_array_equal(device_targets(tagged), c.player)
    assert with_estimated_gain(tagged, named_track(TRACK)).meta.get(GAIN_META_KEY) is None


def _exaggerating(c: Contribution, gain: float) -> Contribution:
    """``c`` re-labelled as a keyboard player whose wheel says ``(expert - proposal) / gain``
    beyond the proposal on every tick (so ``gain`` is the true gain)."""
    wanted = expert_actions(named_track(TRACK), c.states)
    player = np.clip(c.proposed + (wanted - c.proposed) / gain, -1.0, 1.0)
    meta = {**c.meta, "device": device_meta(np.zeros(c.num_ticks, np.int64), ["keyboard"],
                                            WheelParams())}
    return dataclasses.replace(c, player=player, input_tick=c.ticks.copy(), meta=meta)


@pytest.mark.parametrize("gain", [0.3, 0.5, 0.8])
def test_the_gain_of_a_keyboard_player_is_estimated(policy: Policy, gain: float) -> None:
    c = _exaggerating(play(policy, make_persona("expert", np.random.default_rng(0)),
                           ticks=300, track_name=TRACK), gain)
    estimated = with_estimated_gain(c, named_track(TRACK), delay=0)
    record = estimated.meta[GAIN_META_KEY]
    assert record["estimated"] == [True, True] and record["delay_ticks"] == 0
    assert record["steer"] == pytest.approx(gain, abs=0.05)
    # and the labels then are what the expert wanted (up to the clipped ticks)
    labels = extract_labels(estimated, LabelConfig(estimate_delay=False, keyboard_delay_ticks=0))
    wanted = expert_actions(named_track(TRACK), c.states)
    close = np.abs(labels.targets[:, 0] - wanted[:, 0]) < 0.05
    assert close.mean() > 0.9


def test_a_wrong_way_keyboard_player_gets_the_least_gain(policy: Policy) -> None:
    c = _keyboard_run(policy, "keyboard-wrong", ticks=200)
    estimated = with_estimated_gain(c, named_track(TRACK), delay=0)
    record = estimated.meta[GAIN_META_KEY]
    if record["estimated"][0]:
        assert record["steer"] == GAIN_MIN
    # a synthetic player steering against the expert, estimated for sure
    base = play(policy, make_persona("expert", np.random.default_rng(0)), ticks=300,
                track_name=TRACK)
    against = _exaggerating(base, 0.5)
    against = dataclasses.replace(against, player=np.clip(
        2 * against.proposed - against.player, -1, 1))
    assert with_estimated_gain(against, named_track(TRACK), delay=0).meta[
        GAIN_META_KEY]["steer"] == GAIN_MIN


def test_keyboard_labels_are_the_proposal_plus_gain_times_the_wheel(policy: Policy) -> None:
    c = with_estimated_gain(_keyboard_run(policy, "keyboard-threshold"), named_track(TRACK))
    g = c.meta[GAIN_META_KEY]
    gain = np.array([g["steer"], g["throttle"]])
    assert ((gain >= GAIN_MIN) & (gain <= 1.0)).all()
    targets = device_targets(c)
    expected = c.proposed + gain * (c.player - c.proposed)
    np.testing.assert_allclose(targets, expected)  # NaN where no input, on both sides
    # the label never points the other way from the wheel, seen from the car
    given = np.isfinite(c.player)
    assert (np.sign(targets - c.proposed)[given] == np.sign(c.player - c.proposed)[given]).all()
    # extract_labels uses them
    labels = extract_labels(c, LabelConfig(estimate_delay=False, keyboard_delay_ticks=0))
    rows = np.flatnonzero(c.has_input)
    np.testing.assert_allclose(labels.targets[:, 0], np.nan_to_num(targets[rows, 0]), atol=1e-6)


def test_the_estimate_is_reproducible_and_never_trusted_from_the_run(policy: Policy) -> None:
    c = _keyboard_run(policy, "keyboard-200")
    track = named_track(TRACK)
    a, b = with_estimated_gain(c, track), with_estimated_gain(c, track)
    assert a.meta[GAIN_META_KEY] == b.meta[GAIN_META_KEY]
    again = Contribution.from_bytes(a.to_bytes())
    np.testing.assert_array_equal(extract_labels(again).targets, extract_labels(a).targets)
    # a gain the run brings with it is replaced by the estimate; out-of-range ones are clamped
    claimed = dataclasses.replace(c, meta={**c.meta, GAIN_META_KEY: {"steer": 5.0}})
    assert with_estimated_gain(claimed, track).meta[GAIN_META_KEY] == a.meta[GAIN_META_KEY]
    np.testing.assert_allclose(device_targets(claimed), device_targets(dataclasses.replace(
        c, meta={**c.meta, GAIN_META_KEY: {"steer": 1.0, "throttle": DEFAULT_GAIN}})))


def test_too_little_keyboard_input_gets_the_default_gain(policy: Policy) -> None:
    c = _keyboard_run(policy, "keyboard-threshold", ticks=15)
    record = with_estimated_gain(c, named_track(TRACK)).meta[GAIN_META_KEY]
    assert record["estimated"] == [False, False]
    assert record["steer"] == record["throttle"] == DEFAULT_GAIN
