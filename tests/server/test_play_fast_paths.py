"""The play socket's direct frame writes (issue 13.4) put on the wire what the general path
does: ``direct_writer`` must write the very bytes Starlette / uvicorn / websockets would, in
order with the messages the socket's task sends, on a real uvicorn server (a test client has no
transport: there it is None and frames queue as before).
"""

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

from crowdlearning.server.game_loop import Outbox
from crowdlearning.server.play_socket import direct_writer, pump


def test_no_direct_writer_without_uvicorn() -> None:
    seen: list[object] = []

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        seen.append(direct_writer(ws))
        await ws.send_text("ok")
        await ws.close()

    with TestClient(Starlette(routes=[WebSocketRoute("/ws", endpoint)])) as client, \
            client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "ok"
    assert seen == [None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_direct_frames_reach_a_real_client_in_order() -> None:
    """On uvicorn (the sans-I/O websockets protocol ``serve`` runs), frames written by the
    tick and events sent by the socket's task arrive intact and in order, short and long."""
    texts = [json.dumps({"type": "frame", "tick": i, "pad": "x" * n})
             for i, n in enumerate([0, 10, 200, 70_000, 5])]
    used: list[bool] = []

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        outbox = Outbox(max_frames=64)
        outbox.writer = direct_writer(ws)
        used.append(outbox.writer is not None)
        sender = asyncio.create_task(pump(ws, outbox))
        outbox.event({"type": "hello"})
        await asyncio.sleep(0.05)  # the event is sent by the task first
        for text in texts:
            outbox.frame(text)
        outbox.event({"type": "end"})
        await asyncio.sleep(0.2)
        sender.cancel()
        await ws.close()

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio",
                            ws="websockets-sansio", log_level="warning",
                            ws_per_message_deflate=False)
    server = uvicorn.Server(config)

    async def main() -> list[str]:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        got = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=2**20) as ws:
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    got.append(await ws.recv())
        server.should_exit = True
        await task
        return got

    got = asyncio.run(main())
    assert used == [True]
    assert got == [json.dumps({"type": "hello"}), *texts, json.dumps({"type": "end"})]


def test_inputs_are_applied_on_arrival_and_refusals_still_answered() -> None:
    """On uvicorn, a player's valid inputs are applied by ``InlineInputs`` as they arrive (the
    game loop has them), and an input the game refuses still gets its ``error`` message from the
    socket's task, in order, as before."""
    from types import SimpleNamespace

    from crowdlearning.config import Settings
    from crowdlearning.learning.bootstrap import train_initial_model
    from crowdlearning.policy.network import Policy
    from crowdlearning.server.game_loop import GameLoop
    from crowdlearning.server.play_socket import InlineInputs, PlaySocket
    from crowdlearning.server.runtime import play_tracks

    game = GameLoop(Policy(train_initial_model(0)[0]), 0, play_tracks(1), capacity=2,
                    run_ticks=400, random_starts=False)
    runtime = SimpleNamespace(settings=Settings(), game=game, missions=None, ledger=None,
                              holds=None, track_json=lambda seed: "{}")
    user = SimpleNamespace(username="u", player_id="p")
    applied: list[str] = []
    queues: list[object] = []

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        sock = PlaySocket(ws, runtime, user)  # type: ignore[arg-type]
        inline = sock._apply_input

        def counted(text: str) -> bool:
            done = inline(text)
            if done:
                applied.append(text)
            return done

        sock._apply_input = counted  # type: ignore[method-assign]
        task = asyncio.create_task(sock.serve())
        await asyncio.sleep(0.05)
        queues.append(type(_proto_queue(sock)))
        await task

    def _proto_queue(sock: PlaySocket) -> object:
        from crowdlearning.server.play_socket import _uvicorn_protocol

        return _uvicorn_protocol(sock.ws._send).queue

    async def ticking() -> None:
        while True:
            game.step()
            await asyncio.sleep(0.01)

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio",
                                           ws="websockets-sansio", log_level="warning",
                                           ws_per_message_deflate=False))

    async def main() -> tuple[list[dict], float]:
        serving = asyncio.create_task(server.serve())
        ticker = asyncio.create_task(ticking())
        while not server.started:
            await asyncio.sleep(0.01)
        got: list[dict] = []
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(json.dumps({"type": "start"}))
            steer = 0.0
            for i in range(12):
                while (msg := json.loads(await ws.recv()))["type"] != "frame":
                    got.append(msg)
                steer = round(0.05 * i, 3)
                await ws.send(json.dumps({"type": "input", "tick": msg["tick"], "steer": steer}))
            await ws.send(json.dumps({"type": "input", "tick": 10**6, "steer": 0.5}))
            for _ in range(50):
                msg = json.loads(await ws.recv())
                if msg["type"] == "error":
                    got.append(msg)
                    break
            last = float(game._player[0, 0])
        ticker.cancel()
        server.should_exit = True
        await serving
        return got, last

    got, last = asyncio.run(main())
    assert queues and queues[0] is InlineInputs
    assert len(applied) >= 10  # (a frame or two may race a message into the queue)
    assert last == 0.55  # the last valid input is the one the game holds
    assert [m["code"] for m in got if m["type"] == "error"] == ["future_tick"]
