"""The multi-server stack on one machine: ``Stack(StackOptions(...))``.

Separate processes, started in this order and each waited for (bounded) before the next:

1. the local Hedera node (``crowdlearning hedera-node``), only when the network is ``local`` with
   no operator configured (the embedded network cannot be shared: each process would run its
   own); its development operator is handed to every other process;
2. the shared judge (``crowdlearning judge``, over Redis; on an empty data directory it first
   trains the initial model);
3. N game servers (``crowdlearning serve``) on free loopback ports, one after the other (the first
   opens the books), ready when ``GET /healthz`` answers 200;
4. HAProxy in front (``haproxy.py``), ready when ``/healthz`` answers through it.

PostgreSQL (ledger and users) and Redis (judge and spectators) are not started here: they are
checked first (``preflight``: one line per problem). Every process gets its own process group
and, on Linux, dies with the process that started it; ``stop`` ends them in reverse order
(SIGTERM, then SIGKILL for the group after ``stop_timeout_s``). Logs, the rendered
``haproxy.cfg`` and the Hedera node's state are under ``<data_dir>/stack``; the model registry
is ``data_dir`` itself (shared by the judge and the game servers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crowdlearning.deploy.haproxy import Backend, render_haproxy_config

__all__ = ["ManagedProcess", "Stack", "StackError", "StackOptions", "find_haproxy", "preflight"]

HAPROXY_PLACES = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")  # often not on a user's PATH
BALANCER_ADDRESS = "127.0.0.1"  # where HAProxy reaches the game servers from (loopback)


class StackError(RuntimeError):
    """A process of the stack did not come up (the message ends with its log's last lines)."""


@dataclass(frozen=True)
class StackOptions:
    """What to start. ``env``: extra environment for every process (``CROWDLEARNING_*``)."""

    database_url: str
    redis_url: str
    data_dir: Path
    servers: int = 2
    host: str = "127.0.0.1"
    port: int = 8080
    haproxy: str = ""  # path; empty = found on PATH or in HAPROXY_PLACES
    env: Mapping[str, str] = field(default_factory=dict)
    check_interval_ms: int = 1000
    judge_timeout_s: float = 1800.0  # the first start trains the initial model
    server_timeout_s: float = 300.0
    stop_timeout_s: float = 20.0


@dataclass
class ManagedProcess:
    """One process of the stack."""

    name: str
    popen: subprocess.Popen
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def find_haproxy(explicit: str = "") -> str | None:
    """The haproxy executable: ``explicit``, else on PATH, else in ``HAPROXY_PLACES``."""
    if explicit:
        return shutil.which(explicit)
    found = shutil.which("haproxy")
    if found:
        return found
    return next((p for p in HAPROXY_PLACES if os.access(p, os.X_OK)), None)


def preflight(options: StackOptions) -> list[str]:
    """What keeps the stack from starting, one line each (empty: nothing)."""
    from crowdlearning.server.cli import unreachable_redis, without_password

    problems = []
    if find_haproxy(options.haproxy) is None:
        where = options.haproxy or "haproxy (on PATH, /usr/sbin or /usr/local/sbin)"
        problems.append(f"HAProxy not found: {where}; install it (Debian/Ubuntu: apt-get install "
                        "haproxy) or name it with --haproxy")
    if not options.database_url.startswith("postgresql"):
        problems.append(f"the database must be PostgreSQL (the game servers share the ledger and "
                        f"the users), got {without_password(options.database_url)}: set "
                        "--database-url or CROWDLEARNING_DATABASE_URL to postgresql+psycopg://...")
    else:
        problem = unreachable_postgres(options.database_url)
        if problem:
            problems.append(problem + " (start PostgreSQL and create the database, or name "
                            "another with --database-url / CROWDLEARNING_DATABASE_URL)")
    problem = unreachable_redis(options.redis_url)
    if problem:
        problems.append(problem + " (start Redis, or name another with --redis-url / "
                        "CROWDLEARNING_JUDGE_URL)")
    if not _port_free(options.host, options.port):
        problems.append(f"port {options.port} on {options.host} is in use: choose another with "
                        "--port")
    return problems


def unreachable_postgres(url: str) -> str | None:
    """Why PostgreSQL at ``url`` does not answer within 5 s (``None``: it does)."""
    import sqlalchemy as sa

    from crowdlearning.server.cli import without_password

    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    except Exception as exc:  # a malformed URL, a missing driver
        return f"cannot use PostgreSQL URL {without_password(url)}: {_one_line(exc)}"
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:
        cause = getattr(exc, "orig", None) or exc
        return f"cannot reach PostgreSQL at {without_password(url)}: {_one_line(cause)}"
    finally:
        engine.dispose()
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _port_free(host: str, port: int) -> bool:
    if port == 0:
        return True
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Stack:
    """See the module docstring. ``with Stack(options) as stack:`` starts and stops it. Start it
    from a thread that lives as long as the stack (the main one): on Linux its processes are
    told to end when the thread that started them does."""

    def __init__(self, options: StackOptions, say: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.say = say or (lambda _line: None)
        self.run_dir = options.data_dir / "stack"
        self.processes: list[ManagedProcess] = []
        self.game_servers: list[ManagedProcess] = []
        self.balancer: ManagedProcess | None = None
        self.env: dict[str, str] = {}
        self.port = options.port

    @property
    def url(self) -> str:
        shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(self.options.host, self.options.host)
        if ":" in shown and not shown.startswith("["):
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}"

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- starting ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start every process, each waited for; raises ``StackError`` (the caller stops)."""
        opts = self.options
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **opts.env,
                    "CROWDLEARNING_DATA_DIR": str(opts.data_dir),
                    "CROWDLEARNING_DATABASE_URL": opts.database_url,
                    "CROWDLEARNING_SERVER_DATABASE_URL": opts.database_url,
                    "CROWDLEARNING_JUDGE_URL": opts.redis_url,
                    "CROWDLEARNING_SERVER_TRUSTED_PROXIES": BALANCER_ADDRESS}
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            self.env.setdefault(name, "1")
        if self._embedded_hedera():
            self._start_hedera_node()
        self._start_judge()
        for index in range(1, opts.servers + 1):
            self._start_game_server(f"game{index}")
        self._start_balancer()

    def _embedded_hedera(self) -> bool:
        return (self.env.get("CROWDLEARNING_HEDERA_NETWORK", "local") == "local"
                and not self.env.get("CROWDLEARNING_HEDERA_OPERATOR_ID"))

    def _spawn(self, name: str, args: list[str], port: int | None = None) -> ManagedProcess:
        log = self.run_dir / f"{name}.log"
        with log.open("wb") as out:  # the child keeps its own handle
            popen = subprocess.Popen(args, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        proc = ManagedProcess(name, popen, log, port)
        self.processes.append(proc)
        return proc

    def _crowdlearning(self, name: str, args: list[str], port: int | None = None
                       ) -> ManagedProcess:
        return self._spawn(name, [sys.executable, "-m", "crowdlearning.cli", *args], port)

    def _wait(self, proc: ManagedProcess, ready: Callable[[], bool], what: str,
              timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not proc.alive():
                raise StackError(f"{what} exited with code {proc.popen.returncode} (log "
                                 f"{proc.log}):\n{proc.log_tail()}")
            with contextlib.suppress(OSError):
                if ready():
                    return
            time.sleep(0.3)
        raise StackError(f"{what} was not ready after {timeout_s:.0f} s (log {proc.log}):\n"
                         f"{proc.log_tail()}")

    def _start_hedera_node(self) -> None:
        port, mirror = free_port(), free_port()
        self.say(f"starting the local Hedera node on 127.0.0.1:{port}")
        proc = self._crowdlearning("hedera-node", [
            "hedera-node", "--host", "127.0.0.1", "--port", str(port), "--mirror-port",
            str(mirror), "--state", str(self.run_dir / "hedera-local.json")], port)
        self._wait(proc, lambda: "OPERATOR_KEY=" in proc.log.read_text(errors="replace"),
                   "the local Hedera node", 60.0)
        for line in proc.log.read_text(errors="replace").splitlines():
            for word in line.split():
                key, sep, value = word.partition("=")
                if sep and key.startswith("CROWDLEARNING_HEDERA_"):
                    self.env[key] = value
        self.env.update({"CROWDLEARNING_HEDERA_NETWORK": "local",
                         "CROWDLEARNING_HEDERA_LOCAL_HOST": "127.0.0.1",
                         "CROWDLEARNING_HEDERA_LOCAL_PORT": str(port),
                         "CROWDLEARNING_HEDERA_MIRROR_URL": f"http://127.0.0.1:{mirror}/api/v1"})

    def _start_judge(self) -> None:
        first = not any(p.is_dir() for p in (self.options.data_dir / "models").glob("v[0-9]*"))
        self.say("starting the shared judge" + (" (first start: it trains the initial model "
                                                "first, which takes a while)" if first else ""))
        proc = self._crowdlearning("judge", ["judge", "--url", self.options.redis_url])
        self._wait(proc, lambda: "serving game servers" in proc.log.read_text(errors="replace"),
                   "the judge", self.options.judge_timeout_s)

    def _start_game_server(self, name: str) -> None:
        port = free_port()
        self.say(f"starting game server {name} on 127.0.0.1:{port}")
        proc = self._crowdlearning(name, ["serve", "--host", "127.0.0.1", "--port", str(port),
                                          "--data-dir", str(self.options.data_dir)], port)
        self._wait(proc, lambda: _answers(f"{proc.url}/healthz"), f"game server {name}",
                   self.options.server_timeout_s)
        self.game_servers.append(proc)

    def haproxy_config(self) -> str:
        """The configuration for the game servers started so far."""
        return render_haproxy_config(
            [Backend(p.name, "127.0.0.1", p.port or 0) for p in self.game_servers],
            bind_host=self.options.host, bind_port=self.port,
            check_interval_ms=self.options.check_interval_ms)

    def _start_balancer(self) -> None:
        haproxy = find_haproxy(self.options.haproxy)
        if haproxy is None:
            raise StackError("HAProxy not found (install it: apt-get install haproxy)")
        if self.port == 0:
            self.port = free_port(self.options.host)
        config = self.run_dir / "haproxy.cfg"
        config.write_text(self.haproxy_config())
        checked = subprocess.run([haproxy, "-c", "-q", "-f", str(config)], capture_output=True,
                                 text=True, timeout=30, check=False)
        if checked.returncode != 0:
            raise StackError(f"HAProxy refused {config}:\n{checked.stdout}{checked.stderr}")
        self.say(f"starting HAProxy on {self.url}")
        self.balancer = self._spawn("haproxy", [haproxy, "-db", "-f", str(config)], self.port)
        url = f"http://127.0.0.1:{self.port}" if self.options.host in ("0.0.0.0", "") \
            else self.url
        self._wait(self.balancer, lambda: _answers(f"{url}/healthz"), "HAProxy", 30.0)

    # --- running and stopping ---------------------------------------------------------------
    def exited(self) -> list[ManagedProcess]:
        """The processes that have exited."""
        return [p for p in self.processes if not p.alive()]

    def stop(self) -> None:
        """End every process, the balancer first and the Hedera node last; idempotent."""
        for proc in reversed(self.processes):
            if proc.alive():
                began = time.monotonic()
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGTERM)
                try:
                    proc.popen.wait(timeout=self.options.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    self.say(f"{proc.name} did not stop in {self.options.stop_timeout_s:.0f} s: "
                             "killed")
                else:
                    if time.monotonic() - began > 5:
                        self.say(f"{proc.name} took {time.monotonic() - began:.0f} s to stop")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)  # it and anything it left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)

    def kill(self, name: str) -> None:
        """Kill one process of the stack at once (its whole group), as a crash would."""
        proc = next(p for p in self.processes if p.name == name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False

