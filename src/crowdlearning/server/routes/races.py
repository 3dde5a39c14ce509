"""The race league's races: timetable, results, tracks, replays (HTTP) and ``/ws/races/{id}``."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from crowdlearning.races.chat import ChatRefusal
from crowdlearning.races.schemas import RacePublic, RacesPublic, ReplayPublic
from crowdlearning.races.service import RaceService
from crowdlearning.races.spectators import SpectatorBox, Spectators
from crowdlearning.server.errors import NotFoundError, documented
from crowdlearning.server.messages import Input
from crowdlearning.server.play_socket import TokenBucket, close_once, wire_writer
from crowdlearning.server.routes.game import bearer_subprotocol, same_origin, socket_user
from crowdlearning.server.runtime import Runtime
from crowdlearning.server.store import User

log = logging.getLogger(__name__)
router = APIRouter(tags=["races"])
FINAL = '"final":true}'  # the last message of a race's channel (``Spectators.close``)
VERDICT_WAIT_S = 120.0  # after the race, a labeller's socket waits this long for verdicts


def service_of(request: Request | WebSocket) -> RaceService:
    races = getattr(request.app.state, "races", None)
    if races is None:
        raise NotFoundError("races are off on this server (CROWDLEARNING_RACES_ENABLED)")
    return races


@router.get("/api/races", responses=documented("invalid_input", "not_found"))
def races(request: Request, recent: int = Query(default=10, ge=0, le=50)) -> RacesPublic:
    """The timetable (the race being run first) and the latest results."""
    service = service_of(request)
    return RacesPublic(now=service.clock(), interval_s=service.timetable.interval_s,
                       timetable=service.timetable_public(),
                       recent=service.recent_public(recent))


@router.get("/api/races/{race_id}", responses=documented("not_found"))
def race(race_id: str, request: Request) -> RacePublic:
    """One race: scheduled, on the grid, racing, or finished with its result."""
    public = service_of(request).public(race_id)
    if public is None:
        raise NotFoundError(f"no race {race_id} (finished races and the next ones are known)")
    return RacePublic(**public)


@router.get("/api/races/{race_id}/track", responses=documented("not_found"))
def race_track(race_id: str, request: Request) -> dict:
    """The race's track, as ``/api/game/tracks/{seed}`` answers a play track."""
    track = service_of(request).track(race_id)
    if track is None:
        raise NotFoundError(f"no race {race_id}")
    return track.to_dict()


@router.get("/api/races/{race_id}/replay", responses=documented("not_found"))
async def race_replay(race_id: str, request: Request) -> ReplayPublic:
    """A finished race re-simulated from its plan (the same poses as live: ``verified``)."""
    service = service_of(request)
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(service.worker, service.replay, race_id)
    public = await loop.run_in_executor(service.worker, service.public, race_id)
    if found is None or public is None:
        raise NotFoundError(f"no finished race {race_id}")
    frames, result = found
    recorded = public["result"]["digest"]
    return ReplayPublic(race=RacePublic(**public), frame_hz=10.0, frames=frames,
                        digest=result["digest"], verified=result["digest"] == recorded)


@router.websocket("/ws/races/{race_id}")
async def race_socket(ws: WebSocket, race_id: str) -> None:
    """A race live: ``hello``, then frames, then ``result`` (``docs/protocol.md``, "Races")."""
    runtime: Runtime = ws.app.state.runtime
    user = socket_user(ws, runtime)
    await ws.accept(subprotocol=bearer_subprotocol(ws))
    if not same_origin(ws):
        await ws.close(code=1008, reason="cross-origin WebSocket refused")
        return
    service: RaceService | None = getattr(ws.app.state, "races", None)
    if service is None:
        await _refuse(ws, "races_off", "races are off on this server", 4404)
        return
    channel, why = service.subscribe(race_id)
    if channel is None:
        if why == "finished":
            await ws.send_json({"type": "result", "race": service.public(race_id),
                                "result": (service.public(race_id) or {}).get("result")})
            await ws.close(code=1000, reason="race finished: see its replay")
        elif why == "not_yet":
            await _refuse(ws, why, "that race is too far ahead: watch a race of the timetable",
                          4404)
        else:
            await _refuse(ws, why, f"no race {race_id}", 4404)
        return
    box = channel.join()
    if box is None:
        await ws.close(code=1013, reason="too many spectators; try again later")
        return
    try:
        if user is not None:
            await service.chat.fresh_mutes()  # the hello says if they are muted
        await ws.send_json({"type": "hello", "race": service.public(race_id),
                            "frame_hz": service.settings.races_frame_hz,
                            "signed_in": user is not None, "now": time.time(),
                            "chat": _chat_hello(service, channel, user)})
        if service.settings.server_ws_fast_paths:  # uvicorn's internals: off switch
            box.wire = wire_writer(ws)
        if channel.last_frame:
            box.frame(channel.last_frame)
        listener = asyncio.create_task(_listen(ws, service, race_id, channel, box, user))
        sender = asyncio.create_task(_send_all(ws, box))
        try:
            await asyncio.wait({listener, sender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            listener.cancel()
            sender.cancel()
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        channel.leave(box)
        if user is not None:  # a labeller who goes hands in what they labelled
            service.leave(race_id, user.id, box)


async def _send_all(ws: WebSocket, box: SpectatorBox) -> None:
    """Send what the box queues (events; frames the direct path could not write), in order,
    until the socket is to close: the spectator too slow (1008), or the race over (1000) once
    the final message is out and the labeller's verdicts too (at most ``VERDICT_WAIT_S``)."""
    final_at: float | None = None
    try:
        while True:
            if final_at is None:
                items = await box.take()
            else:
                try:
                    items = await asyncio.wait_for(
                        box.take(), max(0.0, final_at + VERDICT_WAIT_S - time.monotonic()))
                except TimeoutError:
                    await close_once(ws, 1000, "race over")
                    return
            box.sending = True  # no frame may overtake these (``SpectatorBox.frame``)
            for text in items:
                await ws.send_text(text)
                if text.endswith(FINAL) and final_at is None:
                    final_at = time.monotonic()
            box.sending = False
            if box.overflowed:
                await close_once(ws, 1008, "too slow")
                return
            # the result (or why the race did not run) is out, and the labeller's verdicts
            # (``races/crowd.py``) too
            if final_at is not None and box.awaiting <= 0:
                await close_once(ws, 1000, "race over")
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return


async def _listen(ws: WebSocket, service: RaceService, race_id: str, channel: Spectators,
                  box: SpectatorBox, user: User | None) -> None:
    """Reactions, chat (``races/chat.py``) and crowd play (``join``, ``steer``, ``leave``) from
    a signed-in spectator (rate limited); anything else is refused."""
    errors = 0
    bucket = TokenBucket(service.settings.server_ws_max_inputs_per_s)
    longest = max(256, 6 * service.settings.races_chat_max_chars + 64)  # a chat line, escaped
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            answer: dict | None = _error("bad_message")
            text = message.get("text")
            if text is not None and len(text) <= longest:
                try:
                    data = json.loads(text)
                except ValueError:
                    data = None
                kind = data.get("type") if isinstance(data, dict) else None
                if kind in CHAT_KINDS:
                    answer = await _chat(service, race_id, channel, user, data,  # type: ignore
                                         bucket)
                elif kind in ("react", "join", "steer", "leave") and user is None:
                    answer = _error("not_signed_in")
                elif kind in ("join", "steer", "leave") and not bucket.take():
                    answer = _error("rate_limited")
                elif kind == "react":
                    code = channel.react(user.id, str(data.get("emoji", "")))  # type: ignore
                    answer = _error(code) if code else None
                elif kind in ("join", "steer", "leave"):
                    answer = await _crowd_play(service, race_id, box, user, data)  # type: ignore
            if answer is not None:
                box.event(answer)
                # a signed-in chatter refused (too fast, a blocked word, ...) keeps the socket
                if answer["type"] == "error" and not (user is not None
                                                      and answer.get("about") == "chat"):
                    errors += 1
                    if errors >= 20:
                        return
    except (WebSocketDisconnect, RuntimeError):
        return


async def _crowd_play(service: RaceService, race_id: str, box: SpectatorBox, user: User,
                      data: dict) -> dict | None:
    """A labeller's message (``docs/protocol.md``, races: "Take the wheel"); the answer."""
    kind = data["type"]
    if kind == "join":
        car = data.get("car")
        if set(data) - {"type", "car"} or not isinstance(car, int) or isinstance(car, bool):
            return _error("bad_message", 'send {"type": "join", "car": <car number>}')
        return await service.join(race_id, user, car, box)
    if kind == "leave":
        if set(data) - {"type"}:
            return _error("bad_message", 'send {"type": "leave"}')
        return {"type": "left", "submitted": service.leave(race_id, user.id, box)}
    if data.get("intervene"):
        return _error("bad_message", "labellers label: intervene is not for races")
    try:
        msg = Input.model_validate({**data, "type": "input"})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error("bad_message", f"{where}: {first['msg']}" if where else first["msg"])
    return service.steer(race_id, user.id, msg.tick, msg.steer, msg.throttle, msg.keys,
                         msg.device)


CHAT_KINDS = ("chat", "chat_delete", "chat_mute", "chat_report")


def _chat_hello(service: RaceService, channel: Spectators, user: User | None) -> dict | None:
    """What the ``hello`` says of the race's chat (None: chat off): the recent messages."""
    chat = service.chat
    if not chat.enabled or channel.chat is None:
        return None
    return {"history": channel.chat.history(), "max_chars": chat.max_chars,
            "per_min": chat.per_min, "can_write": user is not None,
            "moderator": user is not None and chat.is_moderator(user.id),
            "max_mute_s": chat.max_mute_s,
            "muted_until": None if user is None else chat.mutes.until(user.id, chat.clock())}


async def _chat(service: RaceService, race_id: str, channel: Spectators, user: User | None,
                data: dict, bucket: TokenBucket) -> dict | None:
    """A chat message, or a moderator's deletion or mute, or a report (``docs/protocol.md``,
    races: "Chat"); the answer to the sender (deletions go to everyone)."""
    room, kind = channel.chat, data["type"]
    if room is None or not service.chat.enabled:
        return ChatRefusal("chat_off", "chat is off on this server").to_message()
    if user is None:
        return ChatRefusal("not_signed_in", "sign in to chat").to_message()
    if not bucket.take():
        return ChatRefusal("rate_limited", "too many messages: wait a little").to_message()
    if kind == "chat":
        await service.chat.fresh_mutes()
        line = room.post(user.id, user.username, data.get("text"))
        if isinstance(line, ChatRefusal):
            return line.to_message()
        channel.chat_posted()
        if service.chat_relay is not None:  # the race's spectators on the other servers
            service.chat_relay.publish(race_id, "line", line=line, author=user.id)
        return {"type": "chat_sent", "id": line["id"]}
    message_id = data.get("id")
    if kind == "chat_report":
        reports = room.report(user.id, message_id)
        if isinstance(reports, ChatRefusal):
            return reports.to_message()
        return {"type": "chat_reported", "id": message_id}
    if kind == "chat_delete":
        refused = room.remove(user.id, message_id)
        if refused is not None:
            return refused.to_message()
        channel.event({"type": "chat_removed", "id": message_id})
        if service.chat_relay is not None:
            service.chat_relay.publish(race_id, "removed", id=message_id)
        return None
    target = room.mute_target(user.id, message_id, data.get("seconds"))
    if isinstance(target, ChatRefusal):
        return target.to_message()
    muted, until = target
    try:
        await asyncio.to_thread(service.chat.mutes.mute, muted, until, user.id,
                                service.clock())
    except Exception:  # the database away: say so, keep the socket
        log.exception("race chat: storing the mute of user %d failed", muted)
        return ChatRefusal("unavailable", "the mute could not be stored: try again").to_message()
    return {"type": "chat_muted", "id": message_id, "until": round(until, 3)}


def _error(code: str, message: str | None = None) -> dict:
    return {"type": "error", "code": code, "message": message or _WHY[code]}


_WHY = {"bad_message": "send {\"type\": \"react\", \"emoji\": <one of the race's reactions>}, "
                       "or chat, join, steer, leave (docs/protocol.md)",
        "not_signed_in": "sign in to react",
        "rate_limited": "too many messages: wait a little",
        "reactions_off": "reactions are off on this server"}


async def _refuse(ws: WebSocket, code: str, message: str, close: int) -> None:
    await ws.send_json({"type": "error", "code": code, "message": message})
    await ws.close(code=close, reason=code)
