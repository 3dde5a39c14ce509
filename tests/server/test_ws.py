"""/ws/play and /ws/watch: a run end to end, and every way a client can get a message wrong."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from tests.server.conftest import TestClient, signup

HBAR = 100_000_000


def receive_until(ws, kind: str, limit: int = 2000) -> dict:
    """Messages until one of type ``kind`` (frames and others skipped)."""
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind} message in {limit}")


def test_a_run_streams_frames_takes_inputs_and_gets_a_verdict(client: TestClient) -> None:
    # GIVEN a signed-in player
    signup(client)
    with client.websocket_connect("/ws/play") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["tick_hz"] == 20
        # WHEN a run starts and the player steers, answering the frames it sees
        ws.send_json({"type": "start", "mode": "label", "track_seed": hello["tracks"][0]})
        start = receive_until(ws, "start")
        frames = []
        for _ in range(30):
            frame = receive_until(ws, "frame")
            frames.append(frame)
            ws.send_json({"type": "input", "tick": frame["tick"], "steer": frame["policy"][0]})
        ws.send_json({"type": "stop"})
        end = receive_until(ws, "end")
        verdict = receive_until(ws, "verdict")
    # THEN frames carry pose, the policy's action, who drives and rays; the run was judged
    assert start["track"]["seed"] == hello["tracks"][0]
    f = frames[-1]
    assert len(f["pose"]) == 5 and len(f["policy"]) == 2 and len(f["rays"]) == 9
    assert f["driver"] == "player" and frames[0]["driver"] == "policy"
    assert [x["tick"] for x in frames] == sorted(x["tick"] for x in frames)
    assert end["reason"] == "stopped" and end["submitted"] and end["ticks"] >= 30
    assert verdict["decision"] in {"improved", "no_effect", "worse", "rejected"}
    assert verdict["contribution_id"] == start["run_id"] and not verdict["paid_mode"]
    runs = client.get("/api/wallet/runs").json()
    assert runs[0]["run_id"] == start["run_id"] and runs[0]["ticks"] == end["ticks"]


def test_paid_mode_needs_stake_and_holds_it(client: TestClient) -> None:
    signup(client)
    with client.websocket_connect("/ws/play") as ws:
        ws.receive_json()
        ws.send_json({"type": "start", "paid": True})
        assert receive_until(ws, "error")["code"] == "stake_required"
        client.post("/api/wallet/deposit", json={"amount_tinybar": 3 * HBAR})
        client.post("/api/wallet/stake", json={"amount_tinybar": 2 * HBAR})
        ws.send_json({"type": "start", "paid": True})
        receive_until(ws, "start")
        receive_until(ws, "frame")
        ws.send_json({"type": "stop"})
        verdict = receive_until(ws, "verdict")
    assert verdict["paid_mode"]
    wallet = client.get("/api/wallet").json()
    assert wallet["held_tinybar"] == 0  # the hold was settled by the verdict
    assert wallet["stake_tinybar"] + wallet["available_tinybar"] == (
        3 * HBAR + verdict["reward_tinybar"] - verdict["penalty_tinybar"])
    assert verdict["balance_tinybar"] == wallet["available_tinybar"]


@pytest.mark.parametrize(("message", "code"), [
    ("{not json", "bad_message"),
    (json.dumps({"type": "jump"}), "bad_message"),
    (json.dumps({"type": "input", "tick": 0, "steer": 3.0}), "bad_message"),
    (json.dumps({"type": "input", "tick": -1, "steer": 0.1}), "bad_message"),
    (json.dumps({"type": "input", "tick": 0, "steer": 0.1, "extra": 1}), "bad_message"),
    (json.dumps({"type": "input", "tick": 0, "steer": 0.1}), "no_run"),
    (json.dumps({"type": "start", "track_seed": 1_500_000_000}), "unknown_track"),
    ("x" * 5000, "too_large"),
])
def test_malformed_messages_get_a_clear_error_and_the_session_survives(
        client: TestClient, message: str, code: str) -> None:
    signup(client)
    with client.websocket_connect("/ws/play") as ws:
        ws.receive_json()
        ws.send_text(message)
        error = receive_until(ws, "error")
        ws.send_json({"type": "ping"})
        pong = receive_until(ws, "pong")
    assert error["code"] == code and error["message"]
    assert pong["type"] == "pong"


def test_out_of_order_and_future_inputs_are_refused_and_not_recorded(
        client: TestClient) -> None:
    signup(client)
    runtime = client.app.state.runtime
    with client.websocket_connect("/ws/play") as ws:
        ws.receive_json()
        ws.send_json({"type": "start"})
        start = receive_until(ws, "start")
        frames = [receive_until(ws, "frame") for _ in range(6)]
        newest = frames[-1]["tick"]
        ws.send_json({"type": "input", "tick": newest, "steer": 0.5})
        ws.send_json({"type": "input", "tick": newest - 3, "steer": -0.5})  # older: refused
        out_of_order = receive_until(ws, "error")
        ws.send_json({"type": "input", "tick": newest + 500, "steer": -0.5})  # never sent
        future = receive_until(ws, "error")
        ws.send_json({"type": "stop"})
        receive_until(ws, "end")
        receive_until(ws, "verdict")
    assert out_of_order["code"] == "out_of_order" and future["code"] == "future_tick"
    # the run was still judged (its recording is checked in test_game_loop)
    log = runtime.settings.data_dir / "verdicts.jsonl"
    assert start["run_id"] in log.read_text()


def test_too_many_errors_close_the_socket(client: TestClient) -> None:
    signup(client)
    limit = client.app.state.runtime.settings.server_ws_max_errors
    with client.websocket_connect("/ws/play") as ws:
        ws.receive_json()
        for _ in range(limit):
            ws.send_text("nope")
        with pytest.raises(WebSocketDisconnect) as closed:
            for _ in range(limit + 5):
                ws.receive_json()
    assert closed.value.code == 1008


def test_unauthenticated_socket_is_refused(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    with anonymous.websocket_connect("/ws/play") as ws:
        msg = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert msg["code"] == "not_signed_in" and closed.value.code == 4401


def test_bearer_header_or_subprotocol_not_url_and_cross_origin_refused(
        client: TestClient) -> None:
    token = signup(client)["token"]
    bot = TestClient(client.app)  # no cookie
    with bot.websocket_connect("/ws/play", headers={"authorization": f"Bearer {token}"}) as ws:
        assert ws.receive_json()["type"] == "hello"
    with bot.websocket_connect("/ws/play", subprotocols=["json", f"bearer.{token}"]) as ws:
        assert ws.accepted_subprotocol == f"bearer.{token}"
        assert ws.receive_json()["type"] == "hello"
    # a token in the URL (it would end up in access logs) is refused, even a valid one
    with bot.websocket_connect(f"/ws/play?token={token}") as ws, \
            pytest.raises(WebSocketDisconnect) as closed:
        msg = ws.receive_json()
        assert msg["code"] == "token_in_url" and token not in msg["message"]
        ws.receive_json()
    assert closed.value.code == 4400
    with bot.websocket_connect("/ws/play", headers={"authorization": f"Bearer {token}",
                                                    "origin": "http://evil.example"}) as ws, \
            pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 1008


def test_disconnect_mid_run_records_nothing(client: TestClient) -> None:
    signup(client)
    game = client.app.state.runtime.game
    with client.websocket_connect("/ws/play") as ws:
        ws.receive_json()
        ws.send_json({"type": "start"})
        receive_until(ws, "frame")
        assert game.players >= 1
    for _ in range(100):
        if game.players == 0:
            break
        time.sleep(0.02)
    assert game.players == 0
    assert client.get("/api/wallet/runs").json() == []


def test_watch_streams_runs_and_the_champion(client: TestClient) -> None:
    with client.websocket_connect("/ws/watch") as ws:
        snap = ws.receive_json()
    assert snap["type"] == "watch" and len(snap["champion"]["pose"]) == 5


def test_a_full_verdict_queue_refuses_the_run_and_records_nothing(client: TestClient) -> None:
    signup(client)
    referee = client.app.state.referee
    referee.in_flight = client.app.state.runtime.settings.server_verdict_queue
    try:
        with client.websocket_connect("/ws/play") as ws:
            ws.receive_json()
            ws.send_json({"type": "start"})
            receive_until(ws, "frame")
            ws.send_json({"type": "stop"})
            receive_until(ws, "end")
            error = receive_until(ws, "error")
    finally:
        referee.in_flight = 0
    assert error["code"] == "verdict_queue_full"
    assert client.get("/api/wallet/runs").json() == []


def test_spectators_are_bounded(client: TestClient) -> None:
    client.app.state.watchers = client.app.state.runtime.settings.server_max_watchers
    try:
        with client.websocket_connect("/ws/watch") as ws, \
                pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    finally:
        client.app.state.watchers = 0
    assert closed.value.code == 1013


def test_label_runs_blend_the_players_input_with_the_policy(client: TestClient) -> None:
    """Label mode executes ``server_label_beta`` x input + the rest x the policy (DAgger's
    mixture): the run's record says so, and the car did so (steering less the run's gusts)."""
    runtime = client.app.state.runtime
    finished = []
    chained = runtime.game.on_finish
    runtime.game.on_finish = lambda run: (finished.append(run), chained(run))
    try:
        signup(client)
        with client.websocket_connect("/ws/play") as ws:
            hello = ws.receive_json()
            ws.send_json({"type": "start", "mode": "label", "track_seed": hello["tracks"][0]})
            receive_until(ws, "start")
            for _ in range(20):
                frame = receive_until(ws, "frame")
                ws.send_json({"type": "input", "tick": frame["tick"], "steer": 0.6,
                              "throttle": 0.4})
            ws.send_json({"type": "stop"})
            receive_until(ws, "end")
    finally:
        runtime.game.on_finish = chained
    c = finished[-1].contribution
    beta = runtime.settings.server_label_beta
    assert c.beta == beta == 0.5
    given = np.isfinite(c.player[:, 1])
    assert given.sum() >= 10
    # throttle carries no disturbance: exactly the blend
    np.testing.assert_allclose(c.executed[given, 1],
                               beta * c.player[given, 1] + (1 - beta) * c.proposed[given, 1],
                               atol=1e-6)
