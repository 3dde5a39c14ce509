"""``crowdlearning serve``: the game on http://127.0.0.1:8000 with embedded defaults.

Also the front of ``crowdlearning judge``: its options are read and checked here, so that
``--help`` and a user's mistake answer at once; the judge itself (``judging.remote``) loads after.
Nothing heavy is imported at module level (uvicorn, FastAPI, torch, the Hedera SDK load only
once a command really starts): ``crowdlearning serve --help`` answers in a fraction of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crowdlearning.cli_args import USAGE_ERROR, port_number, usage_error
from crowdlearning.config import Settings, get_settings

__all__ = ["busy_ports", "judge_main", "quiet_loggers", "serve_main", "uvicorn_options",
           "will_train_initial_model", "with_data_dir"]

# libraries whose INFO lines are per request or per poll (the deposit reader asks the mirror node
# every few seconds; alembic narrates each migration step): shown only at DEBUG
CHATTY_LOGGERS = ("httpx", "httpcore", "alembic", "hpack")


def serve_main(argv: Sequence[str]) -> int:
    """Serve until interrupted; returns the exit code."""
    base = get_settings()
    prog = "crowdlearning serve"
    parser = argparse.ArgumentParser(
        prog=prog, description="The game, with embedded defaults (a SQLite ledger, the local "
        "Hedera network in-process, the initial model trained on first start). Open the URL it "
        "prints in a browser.")
    parser.add_argument("--host", default=base.server_host,
                        help="address to listen on (default %(default)s: this machine only; "
                             "0.0.0.0 for every interface; CROWDLEARNING_SERVER_HOST)")
    parser.add_argument("--port", type=port_number, default=base.server_port,
                        help="HTTP port, 0..65535 (default %(default)s; 0 = any free port, "
                             "the one chosen is printed; CROWDLEARNING_SERVER_PORT)")
    parser.add_argument("--data-dir", type=Path, default=base.data_dir,
                        help="models, dataset, SQLite files, local Hedera state "
                             "(default %(default)s; CROWDLEARNING_DATA_DIR)")
    args = parser.parse_args(list(argv))
    problem = unusable_data_dir(args.data_dir) or unknown_host(args.host)
    if problem:
        return usage_error(prog, problem)
    settings = with_data_dir(base, args.data_dir).model_copy(
        update={"server_host": args.host, "server_port": args.port})
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    quiet_loggers(settings.log_level)
    busy = busy_ports(settings)
    if busy:
        print("CrowdLearning cannot start: " + "; ".join(busy), file=sys.stderr)
        return USAGE_ERROR
    first = (" (first start: the initial model is trained first)"
             if will_train_initial_model(settings) else "")
    print(f"CrowdLearning: starting{first}; data in {settings.data_dir}", flush=True)
    return _run(settings)


def _run(settings: Settings) -> int:
    import uvicorn

    from crowdlearning.server.app import create_app

    class AnnouncingServer(uvicorn.Server):
        """Says which URL to open once the port is bound (the real one when asked for 0)."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and self.servers:
                port = self.servers[0].sockets[0].getsockname()[1]
                print(f"CrowdLearning is ready: open {browser_url(settings.server_host, port)} "
                      "in a browser (Ctrl-C stops it)", flush=True)

    server = AnnouncingServer(uvicorn.Config(create_app(settings), **uvicorn_options(settings)))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else 1  # uvicorn has logged why it could not start


def browser_url(host: str, port: int) -> str:
    """The URL a person on this machine opens (a wildcard address is reached as 127.0.0.1)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def quiet_loggers(level: str) -> None:
    """Per-poll and per-request lines only at DEBUG (``CHATTY_LOGGERS``)."""
    if level != "DEBUG":
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def will_train_initial_model(settings: Settings) -> bool:
    """Whether this start trains the first model: the registry under ``data_dir`` is empty
    (``judging.stack.open_trainer``; ``ModelRegistry`` keeps each version in ``models/v00000``)."""
    models = settings.data_dir / "models"
    return not any(p.is_dir() for p in models.glob("v[0-9]*")) if models.is_dir() else True


def unusable_data_dir(path: Path) -> str | None:
    """Why the server could not keep its files in ``path`` (``None``: it can)."""
    if path.exists() and not path.is_dir():
        return f"--data-dir {path} is a file, not a folder"
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return f"--data-dir {path}: cannot write in {existing} (permission denied)"
    return None


def unknown_host(host: str) -> str | None:
    """Why ``host`` cannot be listened on by name (``None``: it resolves)."""
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return f"--host {host}: no such address on this machine (e.g. 127.0.0.1 or 0.0.0.0)"
    return None


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How ``serve`` runs uvicorn: the protocols named, forwarded headers believed only from
    ``server_trusted_proxies`` (throttles count the real client's address), no line per request
    (``access_log`` only at DEBUG: the pages poll)."""
    from crowdlearning.http_guard import proxy_options

    return {"host": settings.server_host, "port": settings.server_port,
            "loop": "uvloop", "http": "httptools", "ws": ws_protocol(),
            "ws_max_size": 64 * 1024, "ws_per_message_deflate": False,  # frames are tiny
            # every socket counts: players, watchers, a race's spectators (one race at a time),
            # and room for pages and API calls
            "limit_concurrency": (settings.server_max_players + settings.server_max_watchers
                                  + (settings.races_max_spectators if settings.races_enabled
                                     else 0) + 256),
            "log_level": settings.log_level.lower(),
            "access_log": settings.log_level == "DEBUG",
            **proxy_options(settings.server_trusted_proxies)}


def ws_protocol() -> str:
    """uvloop, httptools and the sans-I/O websockets protocol (what "auto" picks with
    uvicorn[standard] >= 0.35), named so that a missing extra fails loudly instead of silently
    falling back to the asyncio loop / h11 / wsproto; the sans-I/O protocol writes each message
    straight to the transport (the legacy "websockets" one goes through its own tasks and
    queues)."""
    import uvicorn.config

    return ("websockets-sansio" if "websockets-sansio" in uvicorn.config.WS_PROTOCOLS
            else "websockets")


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


JUDGE_SCHEMES = ("redis://", "rediss://", "unix://")


def judge_main(argv: Sequence[str]) -> int:
    """``crowdlearning judge``: options checked here, then ``judging.remote.judge_main`` serves."""
    prog = "crowdlearning judge"
    parser = argparse.ArgumentParser(
        prog=prog, description="The one judge that several game servers share, over Redis "
        "(docs/ARCHITECTURE.md, \"Scale\"). Start it before the game servers; on an empty data "
        "directory it first trains the initial model.")
    parser.add_argument("--url", default=get_settings().judge_url,
                        help="Redis URL the game servers reach it on, e.g. "
                             "redis://127.0.0.1:6379/0 (default: CROWDLEARNING_JUDGE_URL)")
    args = parser.parse_args(list(argv))
    if not args.url:
        return usage_error(prog, "set --url or CROWDLEARNING_JUDGE_URL "
                                 "(e.g. redis://127.0.0.1:6379/0)")
    if not args.url.startswith(JUDGE_SCHEMES):
        return usage_error(prog, f"--url must start with {', '.join(JUDGE_SCHEMES)} "
                                 "(e.g. redis://127.0.0.1:6379/0)")
    problem = unreachable_redis(args.url)
    if problem:
        return usage_error(prog, problem)
    quiet_loggers(get_settings().log_level)
    from crowdlearning.judging.remote import judge_main as serve_judge

    return serve_judge(["--url", args.url])


def without_password(url: str) -> str:
    """``url`` as it may be printed: any user and password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@", 0, rest.find("/") if "/" in rest else len(rest))
    return f"{scheme}{sep}***@{rest[at + 1:]}" if sep and at >= 0 else url


def unreachable_redis(url: str) -> str | None:
    """Why Redis at ``url`` does not answer a ping within 5 s (``None``: it does)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5.0, socket_timeout=5.0)
        try:
            client.ping()
        finally:
            client.close()
    except (ValueError, redis.RedisError) as exc:
        return f"cannot reach Redis at {without_password(url)}: {exc}"
    return None
