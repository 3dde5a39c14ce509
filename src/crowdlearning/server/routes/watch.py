"""Spectating: live runs and the champion, as JSON (``/api/watch``) or streamed (``/ws/watch``)."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from crowdlearning.server.deps import RuntimeDep
from crowdlearning.server.runtime import Runtime

router = APIRouter(tags=["watch"])


@router.get("/api/watch")
def snapshot(runtime: RuntimeDep) -> dict:
    return runtime.game.snapshot(runtime.settings.server_watch_max_runs)


@router.websocket("/ws/watch")
async def watch(ws: WebSocket) -> None:
    """Snapshots at ``server_watch_hz``; anything the spectator sends is ignored."""
    runtime: Runtime = ws.app.state.runtime
    state = ws.app.state
    await ws.accept()
    if state.watchers >= runtime.settings.server_max_watchers:
        await ws.close(code=1013, reason="too many spectators; try again later")
        return
    state.watchers += 1
    listener = asyncio.create_task(_drain(ws))
    period = 1.0 / runtime.settings.server_watch_hz
    try:
        while not listener.done():
            snap = runtime.game.snapshot(runtime.settings.server_watch_max_runs)
            await ws.send_text(json.dumps(snap, separators=(",", ":")))
            await asyncio.sleep(period)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        state.watchers -= 1
        listener.cancel()


async def _drain(ws: WebSocket) -> None:
    try:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        pass
