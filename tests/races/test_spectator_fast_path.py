"""The race socket's direct frame writes (``SpectatorBox.wire``, ``routes/races.wire_writer``)
put on the wire what the general path does, in order with the events the socket's sending task
sends, on a real uvicorn server; a spectator that does not read gets frames through the queue
(the oldest dropped) and the race never waits for it. A test client has no transport: there the
writer is None and every frame is queued as before."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from crowdlearning.races.spectators import SpectatorBox, Spectators, ws_text_frame
from crowdlearning.server.routes.races import _send_all, wire_writer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(app: Starlette, port: int) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio",
                                         ws="websockets-sansio", log_level="warning",
                                         ws_per_message_deflate=False))


def test_ws_text_frame_lengths() -> None:
    assert ws_text_frame("ab") == b"\x81\x02ab"
    assert ws_text_frame("é" * 100)[:4] == b"\x81\x7e\x00\xc8"  # 200 UTF-8 bytes
    assert ws_text_frame("x" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")


def test_no_wire_writer_without_uvicorn() -> None:
    seen: list[object] = []

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        seen.append(wire_writer(ws))
        await ws.send_text("ok")
        await ws.close()

    with TestClient(Starlette(routes=[WebSocketRoute("/ws", endpoint)])) as client, \
            client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "ok"
    assert seen == [None]


def test_direct_race_frames_reach_a_real_client_in_order_then_the_socket_closes() -> None:
    """Frames (short, medium, long) written by the race, events and the final result sent by
    the socket's task: all arrive intact and in order; the socket closes (1000) after the
    final message."""
    frames = [{"type": "frame", "tick": i, "pad": "x" * n}
              for i, n in enumerate([0, 10, 200, 70_000, 5])]
    boxes: list[SpectatorBox] = []

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        channel = Spectators(max_spectators=4, queue=8, reactions=None)
        box = channel.join()
        assert box is not None
        box.wire = wire_writer(ws)
        boxes.append(box)
        sender = asyncio.create_task(_send_all(ws, box))
        channel.event({"type": "hello"})
        await asyncio.sleep(0.05)  # the event is sent by the task first
        for frame in frames[:3]:
            channel.frame(dict(frame))
        channel.event({"type": "grid"})  # queued: the next frame waits behind it
        for frame in frames[3:]:
            channel.frame(dict(frame))
        channel.close({"type": "result"})
        await asyncio.wait_for(sender, 10)

    port = _free_port()
    server = _serve(Starlette(routes=[WebSocketRoute("/ws", endpoint)]), port)

    async def main() -> tuple[list[str], int | None]:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        got: list[str] = []
        code = None
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=2**20) as ws:
            try:
                while True:
                    got.append(await asyncio.wait_for(ws.recv(), 10))
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
        server.should_exit = True
        await task
        return got, code

    got, code = asyncio.run(main())
    messages = [json.loads(t) for t in got]
    assert [m["type"] for m in messages] == ["hello", "frame", "frame", "frame", "grid",
                                             "frame", "frame", "result"]
    assert [m["tick"] for m in messages if m["type"] == "frame"] == [0, 1, 2, 3, 4]
    assert messages[4 + 1]["pad"] == "x" * 70_000 and messages[-1]["final"] is True
    assert all(m["spectators"] == 1 for m in messages if m["type"] == "frame")
    assert code == 1000
    assert boxes[0].direct_frames == 3  # the ones with nothing queued before them


def test_a_spectator_not_reading_gets_queued_frames_and_never_holds_the_race() -> None:
    """A client that stops reading: once its transport's buffer is full, frames go to the
    queue (bounded, oldest dropped); the race's ``frame`` calls return at once; when the
    client reads again it gets ever newer frames in order, up to the last one."""
    n, pad = 200, "y" * 100_000  # 20 MB: more than the loopback socket buffers hold
    stats: dict[str, int] = {}

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        channel = Spectators(max_spectators=4, queue=4, reactions=None)
        box = channel.join()
        assert box is not None
        box.wire = wire_writer(ws)
        sender = asyncio.create_task(_send_all(ws, box))
        await asyncio.sleep(0.05)
        for tick in range(n):
            channel.frame({"type": "frame", "tick": tick, "pad": pad})
            await asyncio.sleep(0)
        stats.update(direct=box.direct_frames, dropped=box.dropped_frames)
        channel.close({"type": "result"})
        await asyncio.wait_for(sender, 30)

    port = _free_port()
    server = _serve(Starlette(routes=[WebSocketRoute("/ws", endpoint)]), port)

    async def main() -> list[int]:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        ticks: list[int] = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=2**21,
                                      max_queue=1) as ws:
            await asyncio.sleep(1.0)  # not reading: the server's writes pile up
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    if message["type"] == "frame":
                        ticks.append(message["tick"])
        server.should_exit = True
        await task
        return ticks

    ticks = asyncio.run(main())
    assert stats["direct"] < n and stats["dropped"] > 0
    assert ticks == sorted(set(ticks)) and ticks[-1] == n - 1
    assert len(ticks) == n - stats["dropped"]
