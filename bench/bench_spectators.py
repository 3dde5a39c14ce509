"""Spectators of one league race on one game server process, with the bots in their own process.

Issue 13's done-when: "a league race with 8 cars, 200 crowd players steering and 2,000
spectators ...: every spectator receives the race at 10 Hz or more, every crowd player's
contribution gets a verdict". This measures one game server (the balanced pair is two of these).

The server (``crowdlearning serve``, embedded defaults, the judge child under ``SCHED_IDLE`` as in
``bench_players.py``) gets a fresh data directory with the trained initial model of
``--data-dir`` plus perturbed copies of it, so the field is ``--cars`` cars (the champion, the
crowd car and the others); races every ``--interval-s`` seconds, ``--laps`` laps each with 20
resets allowed, so the first race runs through the whole benchmark. The bots run in a child
process (``--bots-child``, uvloop, hand-rolled RFC 6455 client as ``bench_players.py``): each
spectator connects to ``/ws/races/{id}`` of the race being run and only timestamps the frames'
arrival (their JSON is not decoded). Levels of spectators are added one after the other (the
earlier ones stay connected). Per level: frames received per spectator per second over the
measured window (min, p1, median), the share of spectators at 10 Hz or more (at least
``10 x window - 1`` frames in the window: one frame may fall on either edge), the frame interval
p50 / p99 / max (all spectators pooled), CPU of the server, its event-loop thread, the judge and
the bots, and the 1-minute load average.

Then (``--crowd M``) M signed-in crowd players join the race (``join``, round robin over the
ordinary cars: the crowd car is left to its policy, since these bots steer noise), each sends a
gamepad ``steer`` answering the newest frame 20 times a second; the same figures are measured
with them, then every crowd player sends ``leave`` and the bench waits (``--verdict-wait-s``)
for each one's ``contribution`` message (sent at once) and its ``verdict`` (from the judge).

    .venv/bin/python bench/bench_spectators.py --data-dir DIR --levels 100 500 1000 2000 \\
        --crowd 200 --measure-s 10 --rt 10

``--stack 2``: two game servers behind HAProxy instead (``crowdlearning.deploy.Stack``: the local
Hedera node, the shared judge over Redis, PostgreSQL in a schema of its own, dropped at the end),
on one shared data directory, so both run the same race (same id, track and field); the
spectators and crowd players connect through HAProxy and the figures are also given per server
(``X-CrowdLearning-Server`` of each handshake), CPU per server and of HAProxy.

``--profile`` samples the server's event-loop thread as ``bench_players.py`` does.
Bounded: at most 5000 spectators and 500 crowd players, at most 60 s measured per level.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench_players import (
    SERVER_CODE,
    THREADS,
    children,
    cpu_s,
    free_port,
    idle_judge,
    stop,
    threads,
)

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 10.0


# --- the bots (child process) ---------------------------------------------------------------
class Spectator(asyncio.Protocol):
    """One race socket over a hand-rolled WebSocket client; a crowd player if ``token``."""

    def __init__(self, host: str, port: int, race_id: str, token: str = "",
                 car: int = -1, rng: random.Random | None = None) -> None:
        self.host, self.port, self.race_id, self.token, self.car = host, port, race_id, token, car
        self.rng = rng or random.Random(0)
        self.arrivals: list[float] = []
        self.buf = bytearray()
        self.open = self.closed = False
        self.transport: asyncio.Transport | None = None
        self.tick = -1  # newest frame's tick (crowd players)
        self.keep_last = False
        self.server = ""  # the game server HAProxy sent this socket to
        self.last_frame = b""  # the newest frame's text, if ``keep_last``
        self.joined = self.left = self.contributions = self.submitted = self.verdicts = 0
        self.errors: dict[str, int] = {}
        self.decisions: dict[str, int] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        transport.write(  # type: ignore[attr-defined]
            (f"GET /ws/races/{self.race_id} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
             f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()  # arrival, before any parsing
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.errors["handshake"] = self.errors.get("handshake", 0) + 1
                self.transport.close()  # type: ignore[union-attr]
                return
            for line in bytes(buf[:end]).split(b"\r\n"):  # which server (behind HAProxy)
                if line.lower().startswith(b"x-crowdlearning-server:"):
                    self.server = line.split(b":", 1)[1].strip().decode()
            del buf[: end + 4]
            self.open = True
            if self.token:
                self._send(b'{"type":"join","car":%d}' % self.car)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            op, length, head = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if n - pos < head + length:
                break
            if op == 1:
                self._on_text(buf, pos + head, pos + head + length, now)
            elif op == 9:
                self._frame(0xA, bytes(buf[pos + head:pos + head + length]))
            elif op == 8:
                self.transport.close()  # type: ignore[union-attr]
            pos += head + length
        del buf[:pos]

    def _on_text(self, buf: bytearray, start: int, end: int, now: float) -> None:
        if buf.startswith(b'{"type":"frame"', start):
            self.arrivals.append(now)
            if self.keep_last:
                self.last_frame = bytes(buf[start:end])
            if self.token:
                at = buf.index(b'"tick":', start) + 7
                self.tick = int(buf[at:buf.index(b",", at)])
            return
        msg = json.loads(bytes(buf[start:end]))
        kind = msg["type"]
        if kind == "joined":
            self.joined += 1
        elif kind == "left":
            self.left += 1
        elif kind == "contribution":
            self.contributions += 1
            self.submitted += bool(msg["submitted"])
        elif kind == "verdict":
            self.verdicts += 1
            d = str(msg.get("decision"))
            self.decisions[d] = self.decisions.get(d, 0) + 1
        elif kind == "error":
            self.errors[msg["code"]] = self.errors.get(msg["code"], 0) + 1

    def steer(self) -> None:
        if self.open and not self.closed and self.joined and not self.left and self.tick >= 0:
            self._send(b'{"type":"steer","tick":%d,"steer":%.3f,"device":"gamepad"}'
                       % (self.tick, self.rng.uniform(-0.3, 0.3)))

    def _send(self, payload: bytes) -> None:
        self._frame(0x1, payload)

    def _frame(self, op: int, payload: bytes) -> None:
        n = len(payload)  # masked with the all-zero key (RFC 6455 allows it)
        head = (bytes((0x80 | op, 0x80 | n)) if n < 126
                else bytes((0x80 | op, 0x80 | 126)) + n.to_bytes(2, "big"))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + b"\0\0\0\0" + payload)


def bots_child() -> None:
    import uvloop

    gc.freeze()
    uvloop.run(_bots_main())


async def _steering(crowd: list[Spectator], hz: float) -> None:
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        for bot in crowd:
            bot.steer()
        next_at += 1.0 / hz
        await asyncio.sleep(max(0.0, next_at - loop.time()))


async def _connect(loop: asyncio.AbstractEventLoop, bot: Spectator, host: str,
                   port: int) -> None:
    try:
        await loop.create_connection(lambda: bot, host, port)
    except OSError:
        bot.closed = True
        bot.errors["connect"] = 1


async def _bots_main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    watchers: list[Spectator] = []
    crowd: list[Spectator] = []
    steering: asyncio.Task | None = None
    since = cpu0 = 0.0
    while line := await reader.readline():
        cmd = json.loads(line)
        out: dict = {}
        if cmd["cmd"] == "spectators":
            while len(watchers) < cmd["n"]:
                bot = Spectator(cmd["host"], cmd["port"], cmd["race_id"])
                bot.keep_last = not watchers
                await _connect(loop, bot, cmd["host"], cmd["port"])
                watchers.append(bot)
                if len(watchers) % 50 == 0:
                    await asyncio.sleep(0.05)  # connect in waves
            out = {"spectators": len(watchers)}
        elif cmd["cmd"] == "crowd":
            rng = random.Random(cmd["seed"])
            cars = cmd["cars"]
            if watchers and watchers[0].last_frame:  # only the cars still racing
                frame = json.loads(watchers[0].last_frame)
                racing = {c["car"] for c in frame["cars"] if c["state"] == "racing"}
                cars = [c for c in cars if c in racing] or cars
            for i, token in enumerate(cmd["tokens"]):
                bot = Spectator(cmd["host"], cmd["port"], cmd["race_id"], token,
                                cars[i % len(cars)], random.Random(rng.random()))
                await _connect(loop, bot, cmd["host"], cmd["port"])
                crowd.append(bot)
                if len(crowd) % 25 == 0:
                    await asyncio.sleep(0.05)
            steering = asyncio.create_task(_steering(crowd, cmd["hz"]))
            out = {"crowd": len(crowd), "cars": cars}
        elif cmd["cmd"] == "leave":
            if steering is not None:
                steering.cancel()
            for bot in crowd:
                bot._send(b'{"type":"leave"}')
        elif cmd["cmd"] == "crowd_report":
            out = _crowd_report(crowd)
        elif cmd["cmd"] == "mark":
            since, cpu0 = time.perf_counter(), time.process_time()
            for bot in watchers + crowd:
                bot.arrivals = bot.arrivals[-1:]
        elif cmd["cmd"] == "report":
            wall = time.perf_counter() - since
            out = _report(watchers, since, wall) | {
                "bots_cpu_pct": round(100 * (time.process_time() - cpu0) / wall)}
            servers = sorted({b.server for b in watchers + crowd if b.server})
            if servers:
                out["per_server"] = {
                    name: _report([b for b in watchers if b.server == name], since, wall)
                    | {"crowd": sum(b.server == name for b in crowd)} for name in servers}
            if crowd:
                out["crowd_players"] = _report(crowd, since, wall)
        else:  # quit
            for bot in watchers + crowd:
                if bot.transport is not None:
                    bot.transport.close()
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
        if cmd["cmd"] == "quit":
            return


def _report(bots: list[Spectator], since: float, wall: float) -> dict:
    rates, parts = [], []
    for bot in bots:
        t = np.array([a for a in bot.arrivals if a >= since])
        rates.append(len(t) / wall)
        t = np.array([a for a in bot.arrivals if a >= since - 1.0])  # the interval into it
        if len(t) > 1:
            parts.append(np.diff(t) * 1000)
    r = np.array(rates) if rates else np.zeros(1)
    d = np.concatenate(parts) if parts else np.zeros(1)
    full = np.array([len([a for a in b.arrivals if a >= since]) >= RATE_HZ * wall - 1
                     for b in bots]) if bots else np.zeros(1, bool)
    errors: dict[str, int] = {}
    for bot in bots:
        for code, k in bot.errors.items():
            errors[code] = errors.get(code, 0) + k
    return {"n": len(bots), "connected": sum(1 for b in bots if b.open and not b.closed),
            "hz_min": round(float(r.min()), 2), "hz_p1": round(float(np.percentile(r, 1)), 2),
            "hz_median": round(float(np.median(r)), 2),
            "share_10hz": round(float(full.mean()), 4),
            "interval_p50_ms": round(float(np.median(d)), 1),
            "interval_p99_ms": round(float(np.percentile(d, 99)), 1),
            "interval_max_ms": round(float(d.max()), 1), "errors": errors}


def _crowd_report(crowd: list[Spectator]) -> dict:
    errors: dict[str, int] = {}
    decisions: dict[str, int] = {}
    by_car: dict[int, list[int]] = {}  # car -> [players, players with a submitted stretch]
    for bot in crowd:
        car = by_car.setdefault(bot.car, [0, 0])
        car[0] += 1
        car[1] += bot.submitted > 0
        for code, k in bot.errors.items():
            errors[code] = errors.get(code, 0) + k
        for d, k in bot.decisions.items():
            decisions[d] = decisions.get(d, 0) + k
    return {"crowd": len(crowd), "joined": sum(b.joined > 0 for b in crowd),
            "left": sum(b.left > 0 for b in crowd),
            "with_contribution": sum(b.contributions > 0 for b in crowd),
            "with_submitted": sum(b.submitted > 0 for b in crowd),
            "contributions": sum(b.contributions for b in crowd),
            "submitted": sum(b.submitted for b in crowd),
            "verdicts": sum(b.verdicts for b in crowd),
            "with_all_verdicts": sum(b.submitted > 0 and b.verdicts >= b.submitted
                                     for b in crowd),
            "connected": sum(1 for b in crowd if b.open and not b.closed),
            "decisions": decisions, "errors": errors, "by_car": by_car}


# --- the orchestrator -----------------------------------------------------------------------
class BotsProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--bots-child"],
                                     env={**os.environ, **THREADS}, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def ask(self, **cmd: object) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.ask(cmd="quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def prepare_data(seed_dir: str, cars: int) -> str:
    """A fresh data directory: the trained initial model of ``seed_dir`` (the champion) and
    perturbed copies of it, so that the race's field has ``cars`` cars (with the crowd car)."""
    import torch

    from crowdlearning.learning.registry import ModelRegistry

    data = tempfile.mkdtemp(prefix="bench-spectators-")
    for part in ("models", "dataset"):
        if (Path(seed_dir) / part).is_dir():
            shutil.copytree(Path(seed_dir) / part, Path(data) / part)
    registry = ModelRegistry(Path(data) / "models")
    net, _ = registry.load(registry.champion)
    gen = torch.Generator().manual_seed(3)
    for _ in range(max(0, cars - 1 - len(registry.versions()))):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=gen))
        registry.register(net, parent_version=registry.champion, contributions=[])
    return data


def server_env(args: argparse.Namespace) -> dict[str, str]:
    """The game server's environment: the race settings of the module docstring."""
    env = {**os.environ, **THREADS, "CROWDLEARNING_HEDERA_LOCAL_PORT": "0",
           "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT": "0", "CROWDLEARNING_LOG_LEVEL": "WARNING",
           "CROWDLEARNING_RACES_INTERVAL_S": str(args.interval_s),
           "CROWDLEARNING_RACES_LAPS": str(args.laps), "CROWDLEARNING_RACES_RESETS": "20",
           "CROWDLEARNING_RACES_MAX_LAP_S": "600", "CROWDLEARNING_RACES_MAX_CARS": str(args.cars),
           "CROWDLEARNING_RACES_MAX_SPECTATORS": "10000",
           "CROWDLEARNING_RACES_MAX_LABELLERS": str(max(args.crowd, 1)),
           "CROWDLEARNING_SERVER_AUTH_PER_IP_PER_MIN": "100000",
           # uvicorn's limit_concurrency is max_players + max_watchers + 256 (server/cli.py):
           # race spectators are not counted in it, so it is raised here through max_watchers
           "CROWDLEARNING_SERVER_MAX_WATCHERS": str(max(args.levels) + args.crowd + 256),
           "CROWDLEARNING_SERVER_PASSWORD_HASH_QUEUE": "1000"}
    for kv in args.env:
        name, _, value = kv.partition("=")
        env[name] = value
    return env


def start_server(data: str, args: argparse.Namespace, profile_out: str,
                 ) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = server_env(args)
    if args.src:
        env["PYTHONPATH"] = args.src
    if profile_out:
        env["BENCH_PROFILE_OUT"] = profile_out
    log = open(os.path.join(data, "server.log"), "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-c", SERVER_CODE, "--port", str(port),
                             "--data-dir", data], env=env, stdout=log, stderr=log)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/races", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(proc)
    raise RuntimeError("the server did not start")


def signup(url: str, n: int) -> list[str]:
    def one(i: int) -> str:
        r = httpx.post(f"{url}/api/auth/signup", timeout=120,
                       json={"username": f"crowd{i}x{os.getpid()}",
                             "password": "bench-password-long"})
        r.raise_for_status()
        return r.json()["token"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(n)))


def racing(urls: list[str], timeout_s: float) -> dict:
    """The race being run by every server of ``urls`` (waits for one to start on all: a server
    started after a race's start does not run that race)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        live = []
        for url in urls:
            timetable = httpx.get(f"{url}/api/races", timeout=10).json()["timetable"]
            live.append(timetable[0] if timetable and timetable[0]["status"] == "racing"
                        else None)
        if all(live) and len({r["race_id"] for r in live}) == 1:  # type: ignore[index]
            return live[0]  # type: ignore[return-value]
        time.sleep(1.0)
    raise RuntimeError("no race started")


@dataclass
class Servers:
    """What serves the race: one game server (``start_server``) or a balanced stack."""

    url: str
    port: int
    servers: dict[str, int]  # game server name -> pid
    judge: list[int]
    others: dict[str, int] = field(default_factory=dict)  # e.g. haproxy -> pid
    close: Callable[[], None] = lambda: None
    direct: list[str] = field(default_factory=list)  # each game server's own URL


def measure(args: argparse.Namespace, srv: Servers, bots: BotsProcess, label: dict) -> dict:
    time.sleep(args.warmup_s)
    judge = sorted(set(srv.judge) | {c for pid in srv.servers.values() for c in children(pid)})
    bots.ask(cmd="mark")
    if args.profile_out:
        Path(args.profile_out + ".on").touch()
    names = list(srv.servers)

    def pids() -> list[float]:
        out = [cpu_s(list(srv.servers.values())), cpu_s(list(srv.servers.values()), (12,)),
               cpu_s(judge), cpu_s([bots.proc.pid])]
        out += [cpu_s([srv.servers[n]]) for n in names]
        out += [cpu_s([srv.servers[n]], task=True) for n in names]
        return out + [cpu_s([pid]) for pid in srv.others.values()]

    t0, cpu0 = time.perf_counter(), pids()
    time.sleep(args.measure_s)
    wall, cpu1 = time.perf_counter() - t0, pids()
    if args.profile_out:
        Path(args.profile_out + ".on").unlink()
    rep = bots.ask(cmd="report")
    pct = [round(100 * (b - a) / wall) for a, b in zip(cpu0, cpu1, strict=True)]
    try:
        status = httpx.get(f"{srv.url}/api/races/{label['race_id']}",
                           timeout=30).json()["status"]
    except (httpx.HTTPError, ValueError, KeyError):  # the server too busy to answer
        status = None
    try:  # the game loop's own tick interval meanwhile (no players: what races cost it)
        recent = httpx.get(f"{srv.url}/api/game/stats", timeout=30).json()["tick_ms"]["recent"]
    except (httpx.HTTPError, ValueError, KeyError):
        recent = {}
    k = len(names)
    row = {**label, "race_status": status, **{key: v for key, v in rep.items()
                                             if key not in ("crowd_players",)},
           "server_cpu_pct": pct[0], "server_sys_pct": pct[1],
           "server_loop_thread_cpu_pct": sum(pct[4 + k:4 + 2 * k]),
           "per_server_cpu_pct": {n: {"process": pct[4 + i], "loop_thread": pct[4 + k + i]}
                                  for i, n in enumerate(names)},
           "judge_cpu_pct": pct[2], "bots_proc_cpu_pct": pct[3],
           **{f"{n}_cpu_pct": pct[4 + 2 * k + i] for i, n in enumerate(srv.others)},
           "game_tick_interval_p99_ms": recent.get("interval_p99"),
           "load": os.getloadavg()[0]}
    if "crowd_players" in rep:
        row["crowd_frames"] = rep["crowd_players"]
    row["pass"] = rep["share_10hz"] == 1.0 and rep["connected"] == rep["n"]
    print(json.dumps(row), flush=True)
    return row


def single_server(data: str, args: argparse.Namespace) -> Servers:
    proc, port = start_server(data, args, args.profile_out)
    judge = idle_judge(proc.pid) if args.judge == "idle" else children(proc.pid)
    return Servers(f"http://127.0.0.1:{port}", port, {"server": proc.pid}, judge,
                   close=lambda: stop(proc))


def balanced_stack(data: str, args: argparse.Namespace) -> Servers:
    """``--stack N``: a local Hedera node, the shared judge (Redis), N game servers (PostgreSQL
    in a schema of its own) and HAProxy in front (``crowdlearning.deploy.Stack``), all on the
    shared data directory ``data``: every server runs the same races from the same registry."""
    import sqlalchemy as sa

    from crowdlearning.deploy.stack import Stack, StackOptions

    schema = f"bench_{os.getpid()}"
    admin = sa.create_engine(args.postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    env = {k: v for k, v in server_env(args).items() if k.startswith("CROWDLEARNING_")
           and "HEDERA_LOCAL" not in k}
    stack = Stack(StackOptions(
        database_url=f"{args.postgres_url}?options=-csearch_path%3D{schema}",
        redis_url=args.redis_url, data_dir=Path(data), servers=args.stack, port=0, env=env,
        check_interval_ms=1000, judge_timeout_s=300.0, server_timeout_s=300.0))

    def close() -> None:
        stack.stop()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()

    try:
        stack.start()
    except BaseException:
        close()
        raise
    judge = [p.popen.pid for p in stack.processes if p.name == "judge"]
    if args.judge == "idle":
        for pid in judge:
            with contextlib.suppress(OSError):
                os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    assert stack.balancer is not None
    return Servers(stack.url, stack.port, {p.name: p.popen.pid for p in stack.game_servers},
                   judge, {"haproxy": stack.balancer.popen.pid}, close,
                   [p.url for p in stack.game_servers])


def main() -> int:
    if "--bots-child" in sys.argv:
        bots_child()
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True,
                        help="a data directory with a trained initial model (models/, dataset/)")
    parser.add_argument("--levels", type=int, nargs="+", default=[100, 500, 1000, 2000])
    parser.add_argument("--crowd", type=int, default=0, help="crowd players (after the levels)")
    parser.add_argument("--crowd-hz", type=float, default=20.0)
    parser.add_argument("--cars", type=int, default=8)
    parser.add_argument("--laps", type=int, default=50)
    parser.add_argument("--interval-s", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--measure-s", type=float, default=10.0)
    parser.add_argument("--verdict-wait-s", type=float, default=120.0)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--src", default="",
                        help="run the server from another source tree (PYTHONPATH), e.g. the "
                             "code before a change")
    parser.add_argument("--judge", choices=["idle", "normal"], default="idle",
                        help="the server's judge child under SCHED_IDLE (a judge elsewhere: "
                             "CPU nobody else wants) or at normal priority (so that verdicts "
                             "come while the spectators are served)")
    parser.add_argument("--stack", type=int, default=0,
                        help="N game servers behind HAProxy (crowdlearning.deploy.Stack, with "
                             "the shared judge, PostgreSQL and Redis) instead of one server")
    parser.add_argument("--postgres-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--rt", type=int, default=0,
                        help="real-time priority (SCHED_RR, 1-99) of the server's and bots' "
                             "threads: stands in for a quiet machine (needs root; the judge "
                             "stays SCHED_IDLE)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if max(args.levels) > 5000 or min(args.levels) < 1 or not 0 < args.measure_s <= 60 \
            or not 0 <= args.crowd <= 500 or not 0 <= args.verdict_wait_s <= 900:
        parser.error("levels in [1, 5000], crowd in [0, 500], measure-s in (0, 60], "
                     "verdict-wait-s in [0, 900]")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # inherited by server and bots
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(json.dumps({"args": vars(args), "cpus": os.cpu_count(), "load": os.getloadavg()}),
          flush=True)
    data = prepare_data(args.data_dir, args.cars)
    args.profile_out = (tempfile.mktemp(prefix="bench-spect-prof-", suffix=".json")
                        if args.profile else "")
    srv = balanced_stack(data, args) if args.stack else single_server(data, args)
    url, port = srv.url, srv.port
    bots = BotsProcess()
    rows: list[dict] = []
    try:
        tokens = signup(url, args.crowd) if args.crowd else []
        if args.rt:
            for pid in [*srv.servers.values(), *srv.others.values(), bots.proc.pid]:
                for tid in threads(pid):
                    os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(args.rt))
        race = racing(srv.direct or [url], 3 * args.interval_s + 60)
        race_id = race["race_id"]
        print(json.dumps({"race": race_id, "cars": len(race["cars"]),
                          "track": race["track"], "data_dir": data}), flush=True)
        for level in args.levels:
            bots.ask(cmd="spectators", n=level, host="127.0.0.1", port=port, race_id=race_id)
            rows.append(measure(args, srv, bots,
                                {"race_id": race_id, "spectators": level, "crowd": 0}))
        if args.crowd:
            cars = [i for i, c in enumerate(race["cars"]) if c["role"] != "crowd"]
            seated = bots.ask(cmd="crowd", tokens=tokens, cars=cars, host="127.0.0.1",
                              port=port, race_id=race_id, hz=args.crowd_hz, seed=args.seed)
            print(json.dumps({"crowd_on_cars": seated["cars"]}), flush=True)
            row = measure(args, srv, bots,
                          {"race_id": race_id, "spectators": max(args.levels),
                           "crowd": args.crowd})
            row["crowd_before_leave"] = bots.ask(cmd="crowd_report")
            bots.ask(cmd="leave")
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.verdict_wait_s:
                time.sleep(5.0)
                rep = bots.ask(cmd="crowd_report")
                if rep["with_all_verdicts"] >= args.crowd:
                    break
            rep = bots.ask(cmd="crowd_report") | {
                "waited_s": round(time.monotonic() - t0, 1), "load": os.getloadavg()[0]}
            row["crowd_after_leave"] = rep
            print(json.dumps({"crowd_after_leave": rep}), flush=True)
            rows.append(row)
    finally:
        bots.close()
        srv.close()
    if args.profile_out and os.path.exists(args.profile_out):
        prof = json.loads(Path(args.profile_out).read_text())
        n = max(prof["samples"], 1)
        print(f"profile: {prof['samples']} samples of the event-loop thread (all levels)")
        for key, k in prof["self"][:25]:
            print(f"  self {100 * k / n:5.1f}  {key}")
        for key, k in prof["total"][:40]:
            print(f"  total {100 * k / n:5.1f}  {key}")
    print(f"\n{'spect':>6}{'crowd':>6}{'Hz min/p1/med':>18}{'>=10Hz':>8}{'p99 ms':>8}"
          f"{'srv cpu':>8}{'loop':>6}{'bots':>6}{'judge':>6}{'load':>6}  pass")
    for r in rows:
        print(f"{r['spectators']:>6}{r['crowd']:>6}"
              f"{r['hz_min']:>6}/{r['hz_p1']}/{r['hz_median']:<6}{100 * r['share_10hz']:>7.1f}%"
              f"{r['interval_p99_ms']:>8}{r['server_cpu_pct']:>7}%"
              f"{r['server_loop_thread_cpu_pct']:>5}%{r['bots_proc_cpu_pct']:>5}%"
              f"{r['judge_cpu_pct']:>5}%{r['load']:>6.2f}  {r['pass']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
