"""Spectating: live runs and the champion, as JSON (``/api/watch``) or streamed (``/ws/watch``);
``/watch`` is the Watch page (``/watch?race=<id>``: a race's share link, ``routes/races.py``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse

from crowdlearning.server.deps import RuntimeDep
from crowdlearning.server.runtime import Runtime
from crowdlearning.server.watch_feed import WatchFeed

router = APIRouter(tags=["watch"])
WATCH_PAGE = Path(__file__).resolve().parents[2] / "web" / "watch.html"


@router.get("/watch", include_in_schema=False)
def watch_page() -> FileResponse:
    """The Watch page at a short address: ``/watch?race=<id>`` is a race's link to share."""
    return FileResponse(WATCH_PAGE, media_type="text/html")


@router.get("/api/watch")
def snapshot(runtime: RuntimeDep, request: Request) -> dict:
    """The newest spectator snapshot (every game server's runs when several share a judge)."""
    feed: WatchFeed = request.app.state.feed
    return feed.snapshot or runtime.game.snapshot(runtime.settings.server_watch_max_runs)


@router.websocket("/ws/watch")
async def watch(ws: WebSocket) -> None:
    """Snapshots at ``server_watch_hz`` (the feed's, built once for all spectators); anything
    the spectator sends is ignored; a slow spectator skips to the newest snapshot."""
    runtime: Runtime = ws.app.state.runtime
    state = ws.app.state
    await ws.accept()
    if state.watchers >= runtime.settings.server_max_watchers:
        await ws.close(code=1013, reason="too many spectators; try again later")
        return
    state.watchers += 1
    listener = asyncio.create_task(_drain(ws))
    feed: WatchFeed = state.feed
    version = 0
    nxt: asyncio.Future | None = None
    try:
        while not listener.done():
            nxt = asyncio.ensure_future(feed.next(version))
            await asyncio.wait({nxt, listener}, return_when=asyncio.FIRST_COMPLETED)
            if not nxt.done():
                nxt.cancel()
                break
            version, text = nxt.result()
            await ws.send_text(text)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        state.watchers -= 1
        listener.cancel()
        if nxt is not None:
            nxt.cancel()


async def _drain(ws: WebSocket) -> None:
    try:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    except (WebSocketDisconnect, RuntimeError):
        pass
