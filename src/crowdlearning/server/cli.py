"""``crowdlearning serve``: the game on http://127.0.0.1:8000 with embedded defaults."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from crowdlearning.config import Settings, get_settings
from crowdlearning.http_guard import proxy_options
from crowdlearning.server.app import create_app

__all__ = ["WS_PROTOCOL", "serve_main", "uvicorn_options"]

# uvloop, httptools and the sans-I/O websockets protocol (what "auto" picks with
# uvicorn[standard] >= 0.35), named so that a missing extra fails loudly instead of silently
# falling back to the asyncio loop / h11 / wsproto; the sans-I/O protocol writes each message
# straight to the transport (the legacy "websockets" one goes through its own tasks and queues)
WS_PROTOCOL = ("websockets-sansio" if "websockets-sansio" in uvicorn.config.WS_PROTOCOLS
               else "websockets")


def serve_main(argv: Sequence[str]) -> int:
    """Serve until interrupted; returns the exit code."""
    base = get_settings()
    parser = argparse.ArgumentParser(prog="crowdlearning serve", description=__doc__)
    parser.add_argument("--host", default=base.server_host)
    parser.add_argument("--port", type=int, default=base.server_port)
    parser.add_argument("--data-dir", type=Path, default=base.data_dir,
                        help="models, dataset, SQLite files, local Hedera state")
    args = parser.parse_args(list(argv))
    settings = with_data_dir(base, args.data_dir).model_copy(
        update={"server_host": args.host, "server_port": args.port})
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    busy = busy_ports(settings)
    if busy:
        print("CrowdLearning cannot start: " + "; ".join(busy), file=sys.stderr)
        return 2
    print(f"CrowdLearning: starting (first start trains the initial model) on "
          f"http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(settings), **uvicorn_options(settings))
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How ``serve`` runs uvicorn: the protocols named, forwarded headers believed only from
    ``server_trusted_proxies`` (throttles count the real client's address)."""
    return {"host": settings.server_host, "port": settings.server_port,
            "loop": "uvloop", "http": "httptools", "ws": WS_PROTOCOL,
            "ws_max_size": 64 * 1024, "ws_per_message_deflate": False,  # frames are tiny
            "limit_concurrency": (settings.server_max_players + settings.server_max_watchers
                                  + 256),
            "log_level": settings.log_level.lower(),
            **proxy_options(settings.server_trusted_proxies)}


def busy_ports(settings: Settings) -> list[str]:
    """What the server would listen on but another program already does (one line each, with
    the setting that moves it), checked before anything starts."""
    wanted = [(settings.server_port, "the web server", "--port / CROWDLEARNING_SERVER_PORT")]
    embedded = settings.hedera_network == "local" and not settings.hedera_operator_id
    if embedded:
        wanted += [(settings.hedera_local_port, "the embedded Hedera network",
                    "CROWDLEARNING_HEDERA_LOCAL_PORT"),
                   (settings.hedera_local_mirror_port, "its mirror view (deposits)",
                    "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT")]
    busy = []
    for port, what, setting in wanted:
        if port == 0:
            continue
        host = settings.hedera_local_host if port != settings.server_port else settings.server_host
        with socket.socket() as probe:
            # as the servers do: a port left in TIME_WAIT by a stopped server is free to them
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(f"port {port} for {what} is in use (another crowdlearning serve?); "
                            f"stop it or choose another port with {setting} (0 = any free one)")
    return busy


def with_data_dir(settings: Settings, data_dir: Path) -> Settings:
    """Settings whose default SQLite files live under ``data_dir`` (explicit URLs are kept)."""
    update: dict[str, object] = {"data_dir": data_dir}
    defaults = Settings.model_fields
    if settings.database_url == defaults["database_url"].default:
        update["database_url"] = f"sqlite:///{data_dir / 'crowdlearning.db'}"
    if settings.server_database_url == defaults["server_database_url"].default:
        update["server_database_url"] = f"sqlite:///{data_dir / 'server.db'}"
    return settings.model_copy(update=update)
