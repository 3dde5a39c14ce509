"""The game: play tracks, loop figures, and the ``/ws/play`` WebSocket."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, WebSocket
from pydantic import BaseModel, Field

from crowdlearning.server.deps import COOKIE, RuntimeDep
from crowdlearning.server.errors import NotFoundError, documented
from crowdlearning.server.play_socket import PlaySocket
from crowdlearning.server.runtime import Runtime
from crowdlearning.server.security import hash_token
from crowdlearning.server.store import User

router = APIRouter(tags=["game"])


@router.get("/api/game/tracks")
def tracks(runtime: RuntimeDep) -> list[int]:
    """The play seeds served (every one a play seed, never a hidden one)."""
    return runtime.game.seeds


@router.get("/api/game/tracks/{seed}", responses=documented("invalid_input", "not_found"))
def track(seed: int, runtime: RuntimeDep) -> dict:
    """A play track as canonical JSON (``Track.to_dict``)."""
    if seed not in runtime.tracks:
        raise NotFoundError(f"track {seed} is not served; see /api/game/tracks")
    return runtime.tracks[seed].to_dict()


class MissionPublic(BaseModel):
    id: str = Field(description="send it as the start message's `mission`")
    track_seed: int
    track_name: str
    start_s_m: float = Field(description="where the run starts, along the centreline [m]")
    target_m: float = Field(description="where the segment aimed at starts [m]")
    segment_m: float = Field(description="the segment's length [m]")
    reason: Literal["failed", "unsure", "explore"] = Field(
        description="the champion failed there, its ensemble disagrees there, or a random place")
    value: float = Field(description="how much help is worth there: the segment's relative "
                         "steering spread plus 4 x its failure rate (0 for an unscored place)")
    model_version: int


class MissionsPublic(BaseModel):
    ready: bool = Field(description="false while the board is being computed: ask again")
    model_version: int = Field(description="the champion the missions were planned for")
    missions: list[MissionPublic]


_MISSIONS_ANSWER = {200: {"description": "The missions; an empty list with `ready` false while "
                          "the board for a new champion is being computed (a few seconds)."}}


@router.get("/api/game/missions", responses=_MISSIONS_ANSWER)
def missions(runtime: RuntimeDep) -> MissionsPublic:
    """The missions offered for the current champion (``server/missions.py``): runs started
    just before the segments where it is unsure or failed. Never waits for the computation."""
    game = runtime.game
    board = runtime.missions
    if board is None:
        return MissionsPublic(ready=True, model_version=game.model_version, missions=[])
    tracks = {seed: runtime.tracks[seed] for seed in game.seeds if seed in runtime.tracks}
    return MissionsPublic.model_validate(board.offer(game.model_version, tracks))


@router.get("/api/game/stats")
def stats(runtime: RuntimeDep, request: Request) -> dict:
    game = runtime.game
    referee = getattr(request.app.state, "referee", None)
    return {"players": game.players, "capacity": game.capacity, "tick": game.tick_count,
            "tick_hz": runtime.settings.server_tick_hz, "tick_ms": game.tick_ms(),
            "model_version": game.model_version,
            # finished runs not answered yet: how far behind the verdicts are
            "verdicts_waiting": referee.in_flight if referee is not None else 0}


BEARER_SUBPROTOCOL = "bearer."  # Sec-WebSocket-Protocol: bearer.<token>


def bearer_subprotocol(ws: WebSocket) -> str | None:
    """The offered ``bearer.<token>`` subprotocol, if any (for clients that can set neither a
    header nor a cookie: a browser's ``new WebSocket(url, ["bearer." + token])``)."""
    offered = ws.headers.get("sec-websocket-protocol", "")
    for name in (p.strip() for p in offered.split(",")):
        if name.startswith(BEARER_SUBPROTOCOL) and len(name) > len(BEARER_SUBPROTOCOL):
            return name
    return None


def socket_user(ws: WebSocket, runtime: Runtime) -> User | None:
    """The user behind a socket: ``Authorization: Bearer``, the session cookie, or the
    ``bearer.<token>`` subprotocol. Never a token in the URL: URLs end up in access logs."""
    header = ws.headers.get("authorization", "")
    sub = bearer_subprotocol(ws)
    token = (header[7:] if header.lower().startswith("bearer ") else None) or \
        ws.cookies.get(COOKIE) or (sub[len(BEARER_SUBPROTOCOL):] if sub else None)
    return runtime.store.user_of_token(hash_token(token)) if token else None


def same_origin(ws: WebSocket) -> bool:
    """Browsers send Origin: refuse pages from other sites (bots send none)."""
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host")


@router.websocket("/ws/play")
async def play(ws: WebSocket) -> None:
    runtime: Runtime = ws.app.state.runtime
    user = socket_user(ws, runtime)
    await ws.accept(subprotocol=bearer_subprotocol(ws))  # a client offering one needs it back
    if not same_origin(ws):
        await ws.close(code=1008, reason="cross-origin WebSocket refused")
        return
    if "token" in ws.query_params:
        await ws.send_json({"type": "error", "code": "token_in_url",
                            "message": "a token in the URL ends up in logs and is not accepted: "
                                       "send Authorization: Bearer <token>, the session cookie, "
                                       "or the subprotocol bearer.<token>"})
        await ws.close(code=4400, reason="token in URL")
        return
    if user is None:
        await ws.send_json({"type": "error", "code": "not_signed_in",
                            "message": "sign in first (session cookie, Authorization: Bearer "
                                       "<token>, or the subprotocol bearer.<token>)"})
        await ws.close(code=4401, reason="not signed in")
        return
    await PlaySocket(ws, runtime, user).serve()
