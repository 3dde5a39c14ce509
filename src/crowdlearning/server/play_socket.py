"""One player's WebSocket (``/ws/play``): an explicit state machine over the game loop.

States: ``IDLE`` (connected, no run) -> ``PLAYING`` (a slot in the game loop) -> ``IDLE`` again
when the run ends (the verdict follows on its own) -> ``CLOSED``. Every client message is bounded
(size, rate); a bad one gets an ``error`` message with a code and changes nothing; after
``server_ws_max_errors`` errors the socket closes with 1008.

A paid run holds the player's stake from its start (``run_holds.py``): if the stake cannot be
held, the start is refused (``stake_required``) and no run starts; it never silently becomes
practice. A disconnect during a practice run abandons it (nothing is recorded or judged); during
a paid run it ends the run as a stop would ("disconnected"): what was played is judged, so
leaving cannot dodge a penalty.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocketState

from crowdlearning.config import Settings
from crowdlearning.ledger import StakeRequiredError
from crowdlearning.server.game_loop import GameFullError, InputRejectedError, Outbox, RunSpec
from crowdlearning.server.messages import Input, Ping, Start, Stop
from crowdlearning.server.runtime import Runtime
from crowdlearning.server.store import User

__all__ = ["PlaySocket", "SessionState", "close_once", "pump"]


class MissionStart(Start):
    """``start``, optionally on a mission of ``GET /api/game/missions`` (its ``id``): the run
    starts at the mission's place on its track."""

    mission: str | None = Field(default=None, min_length=1, max_length=64,
                                pattern=r"^[A-Za-z0-9_.-]+$")


_PlayMessage = Annotated[MissionStart | Input | Stop | Ping, Field(discriminator="type")]
_play_adapter: TypeAdapter[MissionStart | Input | Stop | Ping] = TypeAdapter(_PlayMessage)


def parse_play_message(text: str) -> MissionStart | Input | Stop | Ping:
    """One ``/ws/play`` client message (``messages.py``'s, the start with its ``mission``);
    raises ``pydantic.ValidationError`` naming the bad field."""
    return _play_adapter.validate_json(text)


class SessionState(enum.Enum):
    IDLE = "idle"
    PLAYING = "playing"
    CLOSED = "closed"


class _TooManyErrorsError(Exception):
    pass


class TokenBucket:
    """``rate_per_s`` messages a second, bursts up to one second's worth."""

    def __init__(self, rate_per_s: float) -> None:
        self.rate, self.tokens, self.at = rate_per_s, rate_per_s, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


async def close_once(ws: WebSocket, code: int, reason: str) -> None:
    """Close the socket unless it is closed already: the sender (a client too slow) and the
    receiver (too many errors) may both decide to, and the client may be gone; a second close
    is an ASGI error ("Exception in ASGI application"), not a second close frame."""
    if ws.application_state is not WebSocketState.CONNECTED or \
            ws.client_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await ws.close(code=code, reason=reason)


async def pump(ws: WebSocket, outbox: Outbox) -> None:
    """Send whatever the outbox holds, in order, until the socket goes away."""
    try:
        while True:
            items = await outbox.take()
            outbox.sending = True  # no frame may overtake these (``Outbox.frame``)
            for text in items:
                await ws.send_text(text)
            outbox.sending = False
            if outbox.overflowed:
                await close_once(ws, 1008, "client too slow to read its messages")
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return  # the client went away; the receiving side cleans up


def _uvicorn_protocol(send: object, depth: int = 0) -> Any:
    """The uvicorn sans-I/O WebSocket protocol object behind an ASGI ``send`` callable (found
    through the bound method or the closures of the middlewares wrapping it), or None."""
    owner = getattr(send, "__self__", None)
    if owner is not None and type(owner).__name__ == "WebSocketsSansIOProtocol":
        return owner
    if depth >= 12:
        return None
    for cell in getattr(send, "__closure__", None) or ():
        try:
            inner = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(inner):
            found = _uvicorn_protocol(inner, depth + 1)
            if found is not None:
                return found
    return None


def ws_text_frame(text: str) -> bytes:
    """``text`` as one WebSocket text message from a server (RFC 6455: FIN and opcode 1, no
    mask, the payload length, the UTF-8 payload; no extension): the very bytes ``websockets``
    writes for it."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = b"\x81\x7e" + n.to_bytes(2, "big")
    else:
        head = b"\x81\x7f" + n.to_bytes(8, "big")
    return head + data


def wire_writer(ws: WebSocket) -> Callable[[bytes], bool] | None:
    """A function writing framed bytes (``ws_text_frame``) straight to this socket's
    transport, or None where that cannot be done safely (another ASGI server or protocol, a
    test client, a negotiated extension such as compression).

    It skips the per-message path of Starlette's and uvicorn's ``send`` and the wake-up of this
    socket's sending task. It refuses (returns False: the message is queued and sent the usual
    way) unless the connection is open and the transport is writable (not paused by flow
    control, buffer below ``WRITE_LIMIT_BYTES``). The race socket's spectators use it with
    frames framed once for all of them (``races.spectators``).
    """
    proto = _uvicorn_protocol(ws._send)  # the ASGI send chain, read only
    if proto is None:
        return None
    conn = getattr(proto, "conn", None)
    transport = getattr(proto, "transport", None)
    writable = getattr(proto, "writable", None)
    if conn is None or transport is None or writable is None or getattr(conn, "extensions",
                                                                         None):
        return None
    from websockets.protocol import State

    open_state = State.OPEN

    def write(data: bytes) -> bool:
        if (conn.state is not open_state or proto.close_sent or not writable.is_set()
                or transport.is_closing()
                or transport.get_write_buffer_size() > WRITE_LIMIT_BYTES):
            return False
        transport.write(data)
        return True

    return write


def direct_writer(ws: WebSocket) -> Callable[[str], bool] | None:
    """A function writing one text message straight to this socket's transport, for the game
    loop's frames (``Outbox.writer``): ``wire_writer`` with each message framed as
    ``websockets`` would frame it (``ws_text_frame``); None where ``wire_writer`` is."""
    wire = wire_writer(ws)
    if wire is None:
        return None

    def write(text: str) -> bool:
        return wire(ws_text_frame(text))

    return write


WRITE_LIMIT_BYTES = 64 * 1024  # past this much unsent, frames queue (and drop) in the Outbox


class InlineInputs:
    """Stands in for the receive queue of one uvicorn sans-I/O WebSocket connection so that a
    player's ``input`` is applied as it arrives (in the connection's ``data_received``) instead
    of being queued, pausing the reads, waking the socket's task and resuming the reads: that
    path cost ~40 us per input, 40% of a core at 1,000 players sending 10 inputs a second
    (``docs/benchmarks.md``, "1,000 players per node").

    ``apply(text)`` applies one message and says whether it did; it only does when nothing is
    queued before it and the message is an input that would be accepted as it is (otherwise it
    goes to the queue and the socket's task handles it as before, errors included). Every other
    use of the queue goes to the queue.
    """

    def __init__(self, proto: Any, queue: asyncio.Queue, apply: Callable[[str], bool]) -> None:
        self._proto, self._queue, self._apply = proto, queue, apply

    def put_nowait(self, message: dict) -> None:
        if (message.get("type") == "websocket.receive" and self._queue.empty()
                and isinstance(message.get("text"), str) and self._apply(message["text"])):
            if not self._proto.read_paused:
                # uvicorn pauses reading after queueing a message, until the app takes it:
                # nothing was queued, so keep reading (the flag is cleared right after)
                self._proto.read_paused = True
                asyncio.get_running_loop().call_soon(self._reading)
            return
        self._queue.put_nowait(message)

    def _reading(self) -> None:
        self._proto.read_paused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


class PlaySocket:
    """See the module docstring."""

    def __init__(self, ws: WebSocket, runtime: Runtime, user: User) -> None:
        self.ws, self.runtime, self.user = ws, runtime, user
        self.settings: Settings = runtime.settings
        self.outbox = Outbox(self.settings.server_ws_send_queue)
        self.bucket = TokenBucket(self.settings.server_ws_max_inputs_per_s)
        self.state = SessionState.IDLE
        self.slot: int | None = None
        self.run_id: str | None = None
        self.errors = 0
        self._busy = False  # the socket's task is handling a message (``_apply_input``)
        self._limit = self.settings.server_ws_max_message_bytes

    async def serve(self) -> None:
        if self.settings.server_ws_fast_paths:  # uvicorn's internals: off switch in Settings
            self.outbox.writer = direct_writer(self.ws)
            proto = _uvicorn_protocol(self.ws._send)
            if proto is not None and isinstance(getattr(proto, "queue", None), asyncio.Queue) \
                    and hasattr(proto, "read_paused"):
                proto.queue = InlineInputs(proto, proto.queue, self._apply_input)
        sender = asyncio.create_task(pump(self.ws, self.outbox))
        self.outbox.event({"type": "hello", "user": self.user.username,
                           "tracks": self.runtime.game.seeds,
                           "tick_hz": self.settings.server_tick_hz,
                           "run_ticks": self.settings.server_run_ticks,
                           "model_version": self.runtime.game.model_version})
        try:
            await self._receive_all()
        except _TooManyErrorsError:
            await asyncio.sleep(0.05)  # let the last error message go out
            await close_once(self.ws, 1008, "too many protocol errors")
        except WebSocketDisconnect:
            pass
        finally:
            self._leave()
            sender.cancel()

    async def _receive_all(self) -> None:
        limit = self.settings.server_ws_max_message_bytes
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self._error("binary_not_supported", "send JSON text messages")
            elif len(text) > limit // 4 and len(text.encode()) > limit:
                self._error("too_large", f"messages are at most {limit} bytes")
            elif not self.bucket.take():
                self._error("rate_limited", f"at most {self.bucket.rate:g} messages a second")
            else:
                self._busy = True
                try:
                    await self._handle(text)
                finally:
                    self._busy = False

    def _apply_input(self, text: str) -> bool:
        """Apply ``text`` now if it is an input the normal path would apply without a word
        (``InlineInputs``); True if it was applied, False to leave it to the normal path."""
        if self._busy or self.state is not SessionState.PLAYING or self.slot is None:
            return False
        if len(text) > self._limit // 4 and len(text.encode()) > self._limit:
            return False
        try:
            msg = parse_play_message(text)
        except ValidationError:
            return False
        if not isinstance(msg, Input):
            return False
        self._sync_state()
        game = self.runtime.game
        if self.state is not SessionState.PLAYING or self.slot is None or \
                game.input_problem(self.slot, msg.tick) is not None or not self.bucket.take():
            return False
        game.set_input(self.slot, msg.tick, msg.steer, msg.throttle, msg.intervene,
                       keys=msg.keys, device=msg.device)
        return True

    async def _handle(self, text: str) -> None:
        try:
            msg = parse_play_message(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            self._error("bad_message", f"{where}: {first['msg']}" if where else first["msg"])
            return
        self._sync_state()
        if isinstance(msg, MissionStart):
            await self._start(msg)
        elif isinstance(msg, Input):
            self._input(msg)
        elif isinstance(msg, Stop):
            self._stop()
        else:
            self.outbox.event({"type": "pong", "tick": self.runtime.game.tick_count})

    def _sync_state(self) -> None:
        """A run the game loop has finished puts the socket back to IDLE."""
        if self.state is SessionState.PLAYING and self.slot is not None:
            spec = self.runtime.game.run_at(self.slot)
            if spec is None or spec.run_id != self.run_id:
                self.state, self.slot, self.run_id = SessionState.IDLE, None, None

    async def _start(self, msg: MissionStart) -> None:
        game = self.runtime.game
        if self.state is not SessionState.IDLE:
            return self._error("already_playing", "a run is in progress; send stop first")
        seed, start_s_m, motion = msg.track_seed, None, None
        if msg.mission is not None:
            board = self.runtime.missions
            mission = board.find(msg.mission, game.model_version) if board else None
            if mission is None:
                return self._error("unknown_mission", f"mission {msg.mission} is not offered "
                                   "(unknown, or planned for an earlier champion): get "
                                   "/api/game/missions again")
            if msg.track_seed is not None and msg.track_seed != mission.track_seed:
                return self._error("unknown_mission", f"mission {msg.mission} is on track "
                                   f"{mission.track_seed}, not {msg.track_seed}")
            seed, start_s_m = mission.track_seed, mission.start_s_m
            if mission.speed_mps is not None:  # on the champion's approach to a failure
                motion = (mission.speed_mps, mission.lateral_m or 0.0, mission.heading_rad or 0.0)
        if seed is None:
            seed = game.seeds[int(time.time_ns()) % len(game.seeds)]
        if seed not in game.seeds:
            return self._error("unknown_track", f"track_seed must be one of {game.seeds}")
        spec = RunSpec(f"run-{uuid.uuid4().hex[:20]}", self.user.player_id, self.user.username,
                       seed, msg.mode, msg.paid, beta=self.settings.server_label_beta)
        if spec.paid:  # the stake is held from now until the run's verdict
            try:
                await asyncio.to_thread(self.runtime.holds.open, spec)
            except StakeRequiredError as exc:
                return self._error("stake_required", f"no run started: {exc}; lock stake on "
                                   "the Wallet page, or start with paid false to practise")
        if self.state is not SessionState.IDLE:  # a second start raced the stake hold
            await self._give_back(spec, "a second start raced this one")
            return self._error("already_playing", "a run is in progress; send stop first")
        try:
            self.slot = game.join(spec, self.outbox, start_s_m=start_s_m, mission=msg.mission,
                                  motion=motion)
        except GameFullError as exc:
            await self._give_back(spec, "the game was full")
            return self._error("full", str(exc))
        self.state, self.run_id = SessionState.PLAYING, spec.run_id
        ledger = self.runtime.ledger
        head = json.dumps({"type": "start", "run_id": spec.run_id, "track_seed": seed,
                           "mode": spec.mode, "paid": spec.paid,
                           "held_tinybar": ledger.hold_tinybar if spec.paid else 0,
                           "model_version": game.model_version, "mission": msg.mission})
        self.outbox.event(f'{head[:-1]}, "track": {self.runtime.track_json(seed)}}}')
        return None

    async def _give_back(self, spec: RunSpec, why: str) -> None:
        if spec.paid:
            await asyncio.to_thread(self.runtime.holds.void, spec.run_id, why)

    def _input(self, msg: Input) -> None:
        if self.state is not SessionState.PLAYING or self.slot is None:
            # inputs in flight when a run ends are normal: reported, not held against the client
            self.outbox.event({"type": "error", "code": "no_run",
                               "message": "no run is in progress; input ignored"})
            return None
        try:
            self.runtime.game.set_input(self.slot, msg.tick, msg.steer, msg.throttle,
                                        msg.intervene, keys=msg.keys, device=msg.device)
        except InputRejectedError as exc:
            self._error(exc.code, str(exc))
        return None

    def _stop(self) -> None:
        if self.state is not SessionState.PLAYING or self.slot is None:
            return self._error("no_run", "no run is in progress")
        self.runtime.game.stop(self.slot)
        return None

    def _leave(self) -> None:
        self._sync_state()
        if self.state is SessionState.PLAYING and self.slot is not None:
            spec = self.runtime.game.run_at(self.slot)
            if spec is not None and spec.paid:  # judged on what was played: no free exit
                self.runtime.game.stop(self.slot, "disconnected")
            else:
                self.runtime.game.abandon(self.slot)
        self.state = SessionState.CLOSED

    def _error(self, code: str, message: str) -> None:
        self.errors += 1
        self.outbox.event({"type": "error", "code": code, "message": message})
        if self.errors >= self.settings.server_ws_max_errors:
            raise _TooManyErrorsError
