"""``crowdlearning stack``: several game servers behind HAProxy, the whole stack on this machine.

Starts the local Hedera node (when the network is local), the shared judge, N game servers and
HAProxy in front (least connections, WebSockets, a sticky cookie, health checks), prints the URL
and runs until Ctrl-C or SIGTERM, which stop every process. PostgreSQL and Redis must already run:
they are checked first, and a missing one is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crowdlearning.cli_args import USAGE_ERROR, at_least, port_number, usage_error

if TYPE_CHECKING:
    from crowdlearning.deploy.stack import Stack

__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_REDIS_URL", "stack_main"]

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/crowdlearning"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _parser() -> argparse.ArgumentParser:
    env = os.environ
    database = env.get("CROWDLEARNING_DATABASE_URL", "")
    data_dir = Path(env.get("CROWDLEARNING_DATA_DIR", "var")) / "cluster"
    parser = argparse.ArgumentParser(prog="crowdlearning stack", description=__doc__)
    parser.add_argument("--servers", type=at_least(1), default=2,
                        help="game servers behind the balancer (default %(default)s)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address HAProxy listens on (default %(default)s; 0.0.0.0 for "
                             "every interface); the game servers listen on loopback only")
    parser.add_argument("--port", type=port_number, default=8080,
                        help="HAProxy's port, the one players open (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=data_dir,
                        help="shared data directory: the model registry; logs and haproxy.cfg "
                             "in its stack/ folder (default %(default)s)")
    parser.add_argument("--database-url",
                        default=database if database.startswith("postgresql")
                        else DEFAULT_DATABASE_URL,
                        help="PostgreSQL for the ledger and the users (default "
                             "CROWDLEARNING_DATABASE_URL if PostgreSQL, else %(default)s)")
    parser.add_argument("--redis-url", default=env.get("CROWDLEARNING_JUDGE_URL")
                        or DEFAULT_REDIS_URL,
                        help="Redis between the judge and the game servers (default "
                             "CROWDLEARNING_JUDGE_URL, else %(default)s)")
    parser.add_argument("--haproxy", default="",
                        help="the haproxy executable (default: on PATH or in /usr/sbin)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the HAProxy configuration for --servers game servers on "
                             "ports 8001, 8002, ... and exit")
    return parser


def stack_main(argv: Sequence[str]) -> int:
    """Run the stack until interrupted; returns the exit code."""
    args = _parser().parse_args(list(argv))
    prog = "crowdlearning stack"
    if args.print_config:
        from crowdlearning.deploy.haproxy import Backend, render_haproxy_config

        print(render_haproxy_config(
            [Backend(f"game{i}", "127.0.0.1", 8000 + i) for i in range(1, args.servers + 1)],
            bind_host=args.host, bind_port=args.port), end="")
        return 0
    from crowdlearning.deploy.stack import Stack, StackError, StackOptions, preflight

    options = StackOptions(database_url=args.database_url, redis_url=args.redis_url,
                           data_dir=args.data_dir, servers=args.servers, host=args.host,
                           port=args.port, haproxy=args.haproxy)
    problems = preflight(options)
    if problems:
        for problem in problems:
            usage_error(prog, problem)
        return USAGE_ERROR

    def say(line: str) -> None:
        print(f"CrowdLearning stack: {line}", flush=True)

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    stack = Stack(options, say)
    try:
        stack.start()
        print(f"CrowdLearning is ready: open {stack.url} in a browser ({args.servers} game "
              f"servers behind HAProxy; logs in {stack.run_dir}; Ctrl-C stops it)", flush=True)
        return _watch(stack, say)
    except StackError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping")
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
        say("stopped")


def _watch(stack: Stack, say: Callable[[str], None]) -> int:
    """Until interrupted: a game server that exits is reported (HAProxy routes around it); the
    judge, the Hedera node or HAProxy exiting stops the stack (exit code 1)."""
    reported: set[str] = set()
    servers = {p.name for p in stack.game_servers}
    while True:
        time.sleep(0.5)
        for proc in stack.exited():
            if proc.name in reported:
                continue
            reported.add(proc.name)
            code = proc.popen.returncode
            if proc.name in servers:
                say(f"game server {proc.name} exited with code {code} (log {proc.log}); "
                    "HAProxy sends new players to the others")
                if reported >= servers:
                    say("no game server is left")
                    return 1
            else:
                say(f"{proc.name} exited with code {code} (log {proc.log}): stopping the stack")
                return 1
