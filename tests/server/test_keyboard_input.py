"""Keyboard input on the server: the message forms, the wheel each run slot steps, what is
recorded (the ramped wheel, the keys) and what the frames show; over the game loop and over
``/ws/play``."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from pydantic import ValidationError

from crowdlearning.learning.device import (
    ANALOG,
    KEY_LEFT,
    KEY_RIGHT,
    KEY_UP,
    WheelParams,
    check_device,
    device_codes,
    rle_encode,
)
from crowdlearning.learning.labels import LabelConfig, extract_labels
from crowdlearning.server.game_loop import FinishedRun, Outbox
from crowdlearning.server.messages import Input, parse_client_message
from tests.server.conftest import TestClient, signup
from tests.server.test_game_loop import make_loop, spec
from tests.server.test_ws import receive_until

STEP = WheelParams().press_step  # 0.1 a tick


# --------------------------------------------------------------------------- messages
def test_the_two_input_forms_parse() -> None:
    analog = parse_client_message('{"type": "input", "tick": 3, "steer": 0.25}')
    assert isinstance(analog, Input) and analog.device == "analog" and analog.keys is None
    pad = parse_client_message(json.dumps({"type": "input", "tick": 3, "device": "gamepad",
                                           "steer": -0.5, "throttle": 0.8}))
    assert pad.device == "gamepad" and pad.steer == -0.5 and pad.keys is None
    keyboard = parse_client_message(json.dumps({"type": "input", "tick": 4,
                                                "device": "keyboard", "left": True,
                                                "up": True, "intervene": True}))
    assert keyboard.keys == KEY_LEFT | KEY_UP and keyboard.steer is None
    released = parse_client_message('{"type": "input", "tick": 5, "device": "keyboard"}')
    assert released.keys == 0


@pytest.mark.parametrize("message", [
    {"device": "keyboard", "steer": 0.5},  # a keyboard sends keys, not values
    {"device": "keyboard", "left": True, "throttle": 1.0},
    {"left": True},  # keys without device keyboard
    {"device": "mouse", "steer": 0.1, "right": False},
    {"device": "joystick", "steer": 0.1},
    {"device": "keyboard", "left": "sideways"},
    {"device": "keyboard", "shift": True},
])
def test_mixed_or_unknown_input_forms_are_refused(message: dict) -> None:
    with pytest.raises(ValidationError):
        parse_client_message(json.dumps({"type": "input", "tick": 1, **message}))


# --------------------------------------------------------------------------- the game loop
def _frames(outbox: Outbox) -> list[dict]:
    return [m for m in map(json.loads, asyncio.run(outbox.take())) if m["type"] == "frame"]


def test_held_keys_ramp_the_recorded_input_and_the_frames_show_it() -> None:
    loop, finished = make_loop(capacity=2, run_ticks=100)
    outbox = Outbox(1000)
    slot = loop.join(spec(0), outbox)
    loop.step()  # frame 0
    for tick in range(8):  # left held, answering each newest frame
        loop.set_input(slot, tick, None, None, False, keys=KEY_LEFT, device="keyboard")
        loop.step()
    for tick in range(8, 20):  # released: the wheel returns to the proposal, then rests
        loop.set_input(slot, tick, None, None, False, keys=0, device="keyboard")
        loop.step()
    loop.stop(slot)
    loop.step()
    c = finished[0].contribution
    steer, proposed = c.player[:, 0], c.proposed[:, 0]
    # tick 0 had no input; from tick 1 the wheel climbs 0.1 a tick from the proposal
    assert np.isnan(steer[0])
    assert steer[1] == pytest.approx(proposed[1] + STEP)
    for t in range(2, 9):  # from the further left of the wheel and the car, 0.1 more
        assert steer[t] == pytest.approx(min(max(steer[t - 1], proposed[t]) + STEP, 1.0))
    assert steer[8] > proposed[8]
    # released it comes back and rests: no input once on the proposal
    rest = np.flatnonzero(np.isnan(steer[9:]))
    assert rest.size and np.isfinite(steer[9:9 + rest[0]]).all()
    assert np.isnan(c.player[:, 1]).all()  # no throttle key: no throttle input
    # the car drove with the wheel (label mode, beta 1), the record reproduces it
    given = np.isfinite(steer)
    np.testing.assert_allclose(c.executed[given, 0], steer[given])
    record = c.meta["device"]
    assert record["name"] == "keyboard" and record["wheel"] == WheelParams().to_meta()
    assert record["keys"] == rle_encode(np.r_[ANALOG, [KEY_LEFT] * 8, [0] * 12])
    assert check_device(c) == ""
    # input ticks: the frame each message answered, -1 once at rest
    np.testing.assert_array_equal(c.input_tick[1:9], np.arange(8))
    assert (c.input_tick[~given] == -1).all()
    # every frame showed the applied input
    frames = _frames(outbox)
    shown = [f["player"][0] for f in frames[: c.num_ticks]]
    for value, recorded in zip(shown, steer, strict=True):
        assert (value is None) if np.isnan(recorded) else value == pytest.approx(recorded,
                                                                                 abs=5e-4)
    assert all(f["player"][1] is None for f in frames)
    # and the labels are the wheel's, shrunk toward the proposal by the default gain
    assert len(extract_labels(c, LabelConfig(keyboard_delay_ticks=0))) == given.sum()
    # without an estimate of its own, a keyboard run's inputs label the states a person's 200 ms
    # (4 ticks) before: the first inputs then answer no recorded state
    assert len(extract_labels(c)) < given.sum()


def test_keyboard_takeover_keeps_control_until_the_wheel_has_returned() -> None:
    loop, finished = make_loop(capacity=2, run_ticks=100)
    slot = loop.join(spec(0, mode="takeover"), Outbox(1000))
    loop.step()
    for tick in range(5):
        loop.set_input(slot, tick, None, None, True, keys=KEY_RIGHT | KEY_UP, device="keyboard")
        loop.step()
    for tick in range(5, 15):
        loop.set_input(slot, tick, None, None, False, keys=0, device="keyboard")
        loop.step()
    loop.stop(slot)
    loop.step()
    c = finished[0].contribution
    held = c.intervention
    assert held[1:6].all()  # keys held, control asked
    returning = np.isfinite(c.player[6:, 0])
    # control stays while the steering wheel returns, and only then
    np.testing.assert_array_equal(held[6:], returning)
    assert returning.any() and not returning.all()
    np.testing.assert_allclose(c.executed[held, 0], c.player[held, 0])
    np.testing.assert_allclose(c.executed[~held, 0], c.proposed[~held, 0])
    assert check_device(c) == ""


def test_switching_devices_in_a_run_is_recorded_per_tick() -> None:
    loop, finished = make_loop(capacity=2, run_ticks=100)
    slot = loop.join(spec(0), Outbox(1000))
    loop.step()
    loop.set_input(slot, 0, None, None, False, keys=KEY_LEFT, device="keyboard")
    loop.step()
    loop.step()
    loop.set_input(slot, 2, -0.4, None, False, device="mouse")
    loop.step()
    loop.set_input(slot, 3, None, None, False, keys=KEY_LEFT, device="keyboard")
    loop.step()
    loop.stop(slot)
    loop.step()
    c = finished[0].contribution
    assert c.meta["device"]["name"] == "keyboard+mouse"
    np.testing.assert_array_equal(device_codes(c), [ANALOG, KEY_LEFT, KEY_LEFT, ANALOG,
                                                    KEY_LEFT])
    assert c.player[3, 0] == -0.4
    # back on the keyboard, the wheel starts again from the proposal
    assert c.player[4, 0] == pytest.approx(c.proposed[4, 0] + STEP)
    assert check_device(c) == ""


# --------------------------------------------------------------------------- over /ws/play
def test_keyboard_inputs_over_the_socket_record_the_ramped_wheel(client: TestClient) -> None:
    signup(client)
    game = client.app.state.runtime.game
    captured: list[FinishedRun] = []
    forward = game.on_finish
    game.on_finish = lambda run: (captured.append(run), forward(run))
    try:
        with client.websocket_connect("/ws/play") as ws:
            hello = ws.receive_json()
            ws.send_json({"type": "start", "mode": "label", "track_seed": hello["tracks"][0]})
            start = receive_until(ws, "start")
            frames = []
            for i in range(24):
                frame = receive_until(ws, "frame")
                frames.append(frame)
                keys = {"left": True} if 2 <= i < 12 else {}
                ws.send_json({"type": "input", "tick": frame["tick"], "device": "keyboard",
                              **keys})
            ws.send_text(json.dumps({"type": "input", "tick": frames[-1]["tick"],
                                     "device": "keyboard", "steer": 1.0}))
            error = receive_until(ws, "error")
            ws.send_json({"type": "stop"})
            end = receive_until(ws, "end")
            receive_until(ws, "verdict")
    finally:
        game.on_finish = forward
    assert error["code"] == "bad_message" and "keyboard" in error["message"]
    assert end["device"]["name"] == "keyboard"
    (run,) = [r for r in captured if r.spec.run_id == start["run_id"]]
    c = run.contribution
    steer, proposed = c.player[:, 0], c.proposed[:, 0]
    codes = device_codes(c)
    held = (codes >= 0) & ((codes & KEY_LEFT) > 0)
    assert held.sum() >= 8
    first = int(np.argmax(held))
    assert steer[first] == pytest.approx(proposed[first] + STEP)
    ramp = steer[held]
    assert (np.diff(ramp) > 0).all() and (np.diff(ramp) <= STEP + 1e-9).all()
    assert ramp[-1] >= proposed[held][-1] + 0.5  # well beyond the car after 0.5 s
    assert check_device(c) == ""
    # frames show what the server applied
    shown = {f["tick"]: f["player"][0] for f in frames}
    for tick in np.flatnonzero(held):
        if int(tick) in shown:
            assert shown[int(tick)] == pytest.approx(steer[tick], abs=5e-4)
