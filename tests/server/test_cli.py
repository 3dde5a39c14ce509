"""`crowdlearning serve`: a taken port is named before anything starts; forwarded headers are
believed only from the proxies the operator names."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from crowdlearning.config import Settings
from crowdlearning.server.cli import busy_ports, uvicorn_options
from tests.server.conftest import server_settings


def test_a_taken_port_is_named_with_the_setting_that_moves_it(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        settings = server_settings(tmp_path).model_copy(update={
            "server_port": 0, "hedera_local_port": 0, "hedera_local_mirror_port": taken})
        [message] = busy_ports(settings)
        assert str(taken) in message and "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT" in message
    assert busy_ports(settings) == []  # once the other program is gone


async def _client_address(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """An ASGI app answering the client address it was given."""
    if scope["type"] != "http":
        return
    host = scope["client"][0].encode() if scope.get("client") else b"?"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": host})


def _seen_address(settings: Settings, forwarded_for: str) -> str:
    """The client address an app sees when served as `serve` serves it, given the header."""
    server = uvicorn.Server(uvicorn.Config(_client_address, **{
        **uvicorn_options(settings), "port": 0, "log_level": "warning"}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        return httpx.get(f"http://127.0.0.1:{port}/",
                         headers={"X-Forwarded-For": forwarded_for}).text
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    # a client on this machine (or behind a proxy passing the header on) cannot pick the
    # address that sign-in limits count, unless the operator names the proxies
    settings = server_settings(tmp_path)
    assert _seen_address(settings, "203.0.113.7") == "127.0.0.1"
    trusted = settings.model_copy(update={"server_trusted_proxies": "127.0.0.1"})
    assert _seen_address(trusted, "203.0.113.7") == "203.0.113.7"


def test_the_connection_limit_counts_race_spectators() -> None:
    """uvicorn refuses connections beyond ``limit_concurrency``: a race's spectators are sockets
    too (found by ``bench/bench_spectators.py``: 2,000 spectators were refused at 1,024)."""
    base = Settings(server_max_players=100, server_max_watchers=50, races_max_spectators=2000)
    assert uvicorn_options(base)["limit_concurrency"] == 100 + 50 + 2000 + 256
    off = Settings(server_max_players=100, server_max_watchers=50, races_enabled=False)
    assert uvicorn_options(off)["limit_concurrency"] == 100 + 50 + 256
