"""A property-based fuzzer for /ws/play and /ws/watch over a real uvicorn on 127.0.0.1 (issue 14).

Hypothesis sends sequences of messages: valid ones, malformed JSON, wrong types and values,
oversized and binary frames, and floods. Every answer must be a documented message (an ``error``
with a documented code), every close a documented code, uvicorn must log no "Exception in ASGI
application", and the game loop must keep running: another player connected throughout keeps
getting frames. Bounded: ``MAX_EXAMPLES`` sequences per socket, a few seconds each at most.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from crowdlearning.server.app import create_app
from crowdlearning.server.cli import uvicorn_options
from crowdlearning.server.runtime import Runtime
from crowdlearning.server.security import hash_token, new_token

MAX_EXAMPLES = 25
WS_MAX_SIZE = 64 * 1024  # uvicorn's frame limit (``serve``): beyond it, close 1009
SERVER_TYPES = {"hello", "start", "frame", "end", "queued", "verdict", "settled", "error", "pong"}
ERROR_CODES = {"bad_message", "binary_not_supported", "too_large", "rate_limited", "no_run",
               "already_playing", "unknown_track", "stake_required", "future_tick",
               "out_of_order", "verdict_failed", "full", "verdict_queue_full"}
CLOSE_TOO_MANY_ERRORS = 1008  # also: a client too slow to read its messages
CLOSE_TOO_BIG = 1009
# the client reads whatever comes (max_queue None: a flood's answers left unread must not stop it
# from reading the server's close frame)
CLIENT: dict = {"open_timeout": 10, "close_timeout": 3, "max_size": None, "max_queue": None}
# oversized messages are the point: hypothesis warns that printing such an example is costly
pytestmark = pytest.mark.filterwarnings(
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")


class _Errors(logging.Handler):
    """ERROR records of uvicorn's logger ("Exception in ASGI application", ...)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Served:
    url: str
    runtime: Runtime
    errors: _Errors
    frames: list[float] = field(default_factory=list)  # when the observer got each frame

    def token(self, name: str) -> str:
        user = self.runtime.store.user_by_name(name) or self.runtime.store.add_user(
            name, "not-a-real-hash")
        assert user is not None
        self.runtime.ledger.open_player(user.player_id)
        token = new_token()
        self.runtime.store.add_token(hash_token(token), user.id, 3600)
        return token

    def play(self, name: str = "fuzzer") -> ClientConnection:
        return connect(f"{self.url}/ws/play", **CLIENT,
                       additional_headers={"Authorization": f"Bearer {self.token(name)}"})


def _observe(served: Served, stop: threading.Event) -> None:
    """Another player: plays run after run, reading every frame, until ``stop``."""
    with served.play("observer") as ws:
        while not stop.is_set():
            ws.send(json.dumps({"type": "start", "mode": "label"}))
            while not stop.is_set():
                try:
                    msg = json.loads(ws.recv(timeout=1.0))
                except TimeoutError:
                    continue
                if msg["type"] == "frame":
                    served.frames.append(time.monotonic())
                elif msg["type"] in ("end", "error"):
                    break


@pytest.fixture(scope="module")
def served(runtime: Runtime) -> Iterator[Served]:
    """The app on uvicorn (as ``serve`` runs it) on 127.0.0.1, a player observing throughout."""
    options = {**uvicorn_options(runtime.settings), "host": "127.0.0.1", "port": 0,
               "log_level": "warning"}
    server = uvicorn.Server(uvicorn.Config(create_app(runtime.settings, runtime), **options))
    errors = _Errors()  # after uvicorn's Config: it sets up its loggers anew
    logging.getLogger("uvicorn.error").addHandler(errors)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    s = Served(f"ws://127.0.0.1:{port}", runtime, errors)
    stop = threading.Event()
    observer = threading.Thread(target=_observe, args=(s, stop), daemon=True)
    observer.start()
    try:
        yield s
    finally:
        stop.set()
        observer.join(10)
        server.should_exit = True
        thread.join(20)
        logging.getLogger("uvicorn.error").removeHandler(errors)


# --- what a client may send ---------------------------------------------------------------------
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)  # UTF-8 encodable
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=10)
_unit = st.floats(-1, 1) | st.none()
_valid = st.one_of(
    st.builds(lambda mode, paid, seed: {"type": "start", "mode": mode, "paid": paid,
                                        "track_seed": seed},
              st.sampled_from(["label", "takeover"]), st.booleans(),
              st.none() | st.integers(-5, 10**6)),
    st.builds(lambda tick, steer, throttle, intervene: {
        "type": "input", "tick": tick, "steer": steer, "throttle": throttle,
        "intervene": intervene}, st.integers(0, 400) | st.integers(), _unit, _unit, st.booleans()),
    st.builds(lambda tick, keys: {"type": "input", "tick": tick, "device": "keyboard", **keys},
              st.integers(0, 400), st.fixed_dictionaries({}, optional={
                  k: st.booleans() for k in ("left", "right", "up", "down")})),
    st.just({"type": "stop"}),
    st.just({"type": "ping"}),
).map(json.dumps)
_wrong = st.builds(
    lambda kind, extra: json.dumps({"type": kind, **extra}),
    st.sampled_from(["start", "input", "stop", "ping"]) | _json_values,
    st.dictionaries(st.sampled_from(["mode", "paid", "track_seed", "tick", "steer", "throttle",
                                     "device", "left", "intervene", "other"]), _json_values,
                    max_size=4))
_malformed = st.text(st.characters(exclude_categories=("Cs",)), max_size=60) | st.sampled_from(
    ['{"type": "input", "tick": 1, "steer": NaN}', '{"type": "input", "steer": Infinity}',
     '{"type": "ping"', "[" * 500 + "]" * 500, '{"type": "ping"}{"type": "ping"}',
     '{"tick": 1e400, "type": "input"}', '{"type": "input", "tick": ' + "9" * 900 + "}"])
_oversized = st.sampled_from([1025, 4096, 60_000, WS_MAX_SIZE + 1]).map(
    lambda n: '{"type": "ping", "x": "' + "x" * n + '"}')
_binary = st.binary(max_size=200)
_flood = st.integers(20, 120).map(lambda n: ["FLOOD", n])
_message = st.one_of(_valid, _wrong, _malformed, _oversized, _binary, _flood)


def _send(ws: ClientConnection, message: str | bytes | list) -> None:
    if isinstance(message, list):  # a flood: pings as fast as the socket takes them
        for _ in range(message[1]):
            ws.send('{"type": "ping"}')
    else:
        ws.send(message)


def _check_answer(raw: str | bytes) -> dict:
    assert isinstance(raw, str), raw
    msg = json.loads(raw)
    assert isinstance(msg, dict) and msg.get("type") in SERVER_TYPES, msg
    if msg["type"] == "error":
        assert msg["code"] in ERROR_CODES, msg
        assert isinstance(msg["message"], str) and len(msg["message"]) < 500, msg
    return msg


def _close_code(closed: ConnectionClosed) -> int:
    """The server's close code (-1: the connection was dropped without a close frame)."""
    return closed.rcvd.code if closed.rcvd is not None else -1


def _drain(ws: ClientConnection, until: float) -> tuple[list[dict], int | None]:
    """Answers until a pong after one last ping, or the close: (answers, close code or None)."""
    answers: list[dict] = []
    try:
        time.sleep(0.15)  # the rate limit's bucket refills a little
        ws.send('{"type": "ping"}')
        while time.monotonic() < until:
            try:
                answers.append(_check_answer(ws.recv(timeout=until - time.monotonic())))
            except TimeoutError:
                break
            if answers[-1]["type"] == "pong" or answers[-1].get("code") == "rate_limited":
                break
    except ConnectionClosed as closed:
        return answers, _close_code(closed)
    return answers, None


def _assert_game_runs(served: Served) -> None:
    """The observer got frames in the last 2 s: the loop ticks and its socket lives."""
    deadline = time.monotonic() + 5
    while not (served.frames and time.monotonic() - served.frames[-1] < 2.0):
        assert time.monotonic() < deadline, "the other player stopped getting frames"
        time.sleep(0.05)


@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages=st.lists(_message, min_size=1, max_size=8))
def test_play_socket_answers_every_message_as_documented(served: Served,
                                                         messages: list) -> None:
    too_big = any(isinstance(m, str | bytes) and len(m) > WS_MAX_SIZE for m in messages)
    with served.play() as ws:
        assert _check_answer(ws.recv(timeout=5))["type"] == "hello"
        code = None
        try:
            for message in messages:
                _send(ws, message)
        except ConnectionClosed as closed:
            code = _close_code(closed)
        answers: list[dict] = []
        if code is None:
            answers, code = _drain(ws, time.monotonic() + 3)
    # an oversized message is refused with 1009; while the client is still writing it the
    # server may close the TCP connection before the client reads that close frame (-1)
    oversized = [CLOSE_TOO_BIG, -1] if too_big else []
    assert code in (None, CLOSE_TOO_MANY_ERRORS, *oversized), code
    if code is None:  # still open: it answered the last ping (or refused it, rate-limited)
        assert answers and answers[-1]["type"] in ("pong", "error"), answers
    assert not served.errors.records, [r.getMessage() for r in served.errors.records]
    _assert_game_runs(served)


@settings(max_examples=MAX_EXAMPLES // 2, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(messages=st.lists(_message, min_size=1, max_size=6))
def test_watch_socket_ignores_what_spectators_send(served: Served, messages: list) -> None:
    too_big = any(isinstance(m, str | bytes) and len(m) > WS_MAX_SIZE for m in messages)
    snapshots: list[dict] = []
    with connect(f"{served.url}/ws/watch", **CLIENT) as ws:
        code = None
        try:
            for message in messages:
                _send(ws, message)
            snapshots = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
        except ConnectionClosed as closed:
            code = _close_code(closed)
    if code is None:
        assert all(s["type"] == "watch" and isinstance(s["runs"], list) for s in snapshots)
    else:
        assert too_big and code == CLOSE_TOO_BIG, code
    assert not served.errors.records, [r.getMessage() for r in served.errors.records]
    _assert_game_runs(served)
