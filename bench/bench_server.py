"""Concurrent players one server process holds at 20 Hz: bot players over loopback WebSockets.

Starts ``crowdlearning serve`` (one process, embedded defaults, a temporary data dir), signs up a
few accounts (bots share them: Argon2 hashing is deliberately slow), then ramps up bot players
level by level. The bots run in this process, on the same 2 cores: their CPU share is printed
next to the server's (judge process included). They are lean clients (``Bot``: uvloop and the
sans-I/O WebSocket core of ``websockets``) so that their own scheduling delays, which a real
player's machine would not add, count as little as possible. Each bot plays like a person would
over ``/ws/play`` (docs/protocol.md): it starts a practice run, parses every message, answers
about every other frame with the policy's steering plus noise (tagged with the frame's tick),
and starts a new run when one ends (ended runs are judged by the server, as in real play). Per
level, after a warm-up, it measures the interval between consecutive frames at each bot (every
frame, timed when its bytes are read; all bots pooled) and reads the server's own tick time. A
level passes when the 99th-percentile interval is <= 75 ms (20 Hz = 50 ms). Run:

    .venv/bin/python bench/bench_server.py --levels 100 200 300 400 500 --measure-s 10

Bounded: at most 1000 bots, at most 60 s of measurement per level.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import httpx
import numpy as np
import uvloop
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

P99_LIMIT_MS = 75.0


@dataclass(frozen=True)
class Args:
    """Benchmark arguments."""

    levels: list[int] = field(default_factory=lambda: [100, 200, 300, 400, 500])  # bots [count]
    warmup_s: float = 3.0  # per level, before measuring [s]
    measure_s: float = 10.0  # per level [s], at most 60
    accounts: int = 10  # accounts the bots share [count]
    answer_prob: float = 0.5  # share of frames a bot answers with an input
    run_ticks: int = 2400  # server's longest run [ticks]
    seed: int = 0

    def __post_init__(self) -> None:
        if max(self.levels) > 1000 or min(self.levels) < 1:
            raise ValueError(f"levels must be in [1, 1000], got {self.levels}")
        if not 0 < self.measure_s <= 60:
            raise ValueError(f"measure_s must be in (0, 60], got {self.measure_s}")


class Bot(asyncio.Protocol):
    """One player: plays runs back to back, records when each frame arrived.

    A lean client, so that 500 of them fit beside the server on 2 cores without their own
    scheduling delays counting as server jitter: an asyncio protocol (uvloop) over the WebSocket
    state machine of ``websockets`` (the sans-I/O core its clients use). Each frame is timed when
    its bytes are read from the socket, before anything else is done with them, then parsed
    (every message, JSON) and answered as a player would.
    """

    def __init__(self, url: str, token: str, rng: random.Random, answer_prob: float) -> None:
        self.url, self.token, self.rng, self.answer_prob = url, token, rng, answer_prob
        self.arrivals: list[float] = []
        self.runs = self.verdicts = 0
        self.errors: dict[str, int] = {}
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.conn = ClientProtocol(parse_uri(f"{url}/ws/play"), max_size=2**20)
        self.task: asyncio.Task | None = None

    async def play(self) -> None:
        uri = self.conn.uri
        await asyncio.get_running_loop().create_connection(lambda: self, uri.host, uri.port)
        await asyncio.shield(self.closed)

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        request = self.conn.connect()
        request.headers["Authorization"] = f"Bearer {self.token}"  # never in the URL
        self.conn.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()  # arrival, before any parsing
        self.conn.receive_data(data)
        for event in self.conn.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:
                    self._on(json.loads(event.data), now)
            elif event.status_code == 101:  # the handshake's response
                self._send({"type": "start"})
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    # --- playing ----------------------------------------------------------------------------
    def _on(self, msg: dict, now: float) -> None:
        kind = msg["type"]
        if kind == "frame":
            self.arrivals.append(now)
            if self.rng.random() < self.answer_prob:
                steer = max(-1.0, min(1.0, msg["policy"][0] + self.rng.gauss(0, 0.1)))
                self._send({"type": "input", "tick": msg["tick"], "steer": round(steer, 3)})
        elif kind == "end":
            self.runs += 1
            self.arrivals.append(float("nan"))  # no interval across runs
            self._send({"type": "start"})
        elif kind == "verdict":
            self.verdicts += 1
        elif kind == "error":
            self.errors[msg["code"]] = self.errors.get(msg["code"], 0) + 1

    def _send(self, msg: dict) -> None:
        self.conn.send_text(json.dumps(msg).encode())

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))
        if self.conn.close_expected() and self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def intervals_ms(bots: list[Bot], since: float) -> np.ndarray:
    parts = []
    for bot in bots:
        t = np.array([a for a in bot.arrivals if not a >= 0 or a >= since])
        if len(t) > 1:
            d = np.diff(t) * 1000
            parts.append(d[np.isfinite(d)])
    return np.concatenate(parts) if parts else np.zeros(0)


def start_server(run_ticks: int, max_players: int) -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="bench-server-")
    env = {**os.environ, "CROWDLEARNING_HEDERA_LOCAL_PORT": "0",
           "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT": "0",
           "CROWDLEARNING_SERVER_MAX_PLAYERS": str(max_players),
           "CROWDLEARNING_SERVER_RUN_TICKS": str(run_ticks), "CROWDLEARNING_LOG_LEVEL": "WARNING"}
    code = ("import sys; from crowdlearning.server.cli import serve_main; "
            "sys.exit(serve_main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", str(port), "--data-dir", data],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/api/game/stats", timeout=1).status_code == 200:
                return proc, url, data
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not start")


def sign_up(url: str, n: int) -> list[str]:
    tokens = []
    for i in range(n):
        r = httpx.post(f"{url}/api/auth/signup", json={"username": f"bot{i}",
                                                       "password": "bench-password"})
        r.raise_for_status()
        tokens.append(r.json()["token"])
    return tokens


def cpu_s(pids: list[int]) -> float:
    """CPU time [s] of processes, from /proc."""
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


async def run_levels(args: Args, url: str, tokens: list[str], server_pid: int) -> list[dict]:
    rng = random.Random(args.seed)
    ws_url = url.replace("http", "ws")
    bots: list[Bot] = []
    results = []
    for level in args.levels:
        while len(bots) < level:
            bot = Bot(ws_url, tokens[len(bots) % len(tokens)], random.Random(rng.random()),
                      args.answer_prob)
            bot.task = asyncio.create_task(bot.play())
            bots.append(bot)
            if len(bots) % 25 == 0:
                await asyncio.sleep(0.1)  # connect in waves
        await asyncio.sleep(args.warmup_s)
        since = time.perf_counter()
        judge = _children(server_pid)
        cpu0 = (cpu_s([server_pid]), cpu_s(judge), time.process_time())
        await asyncio.sleep(args.measure_s)
        wall = time.perf_counter() - since
        cpu = {"server_cpu_pct": round(100 * (cpu_s([server_pid]) - cpu0[0]) / wall),
               "judge_cpu_pct": round(100 * (cpu_s(judge) - cpu0[1]) / wall),
               "bots_cpu_pct": round(100 * (time.process_time() - cpu0[2]) / wall)}
        results.append(await _measure(url, bots, since, level) | cpu)
        print(json.dumps(results[-1]), flush=True)
    for bot in bots:
        bot.close()
    await asyncio.gather(*(b.task for b in bots), return_exceptions=True)
    return results


async def _measure(url: str, bots: list[Bot], since: float, level: int) -> dict:
    d = intervals_ms(bots, since)
    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"{url}/api/game/stats")).json()
    dead = sum(1 for b in bots if b.task is not None and b.task.done())
    p99 = float(np.percentile(d, 99)) if len(d) else float("inf")
    return {"bots": level, "connected": level - dead, "players_on_server": stats["players"],
            "frames": len(d), "interval_ms_p50": round(float(np.median(d)), 1),
            "interval_ms_p99": round(p99, 1), "interval_ms_max": round(float(d.max()), 1),
            "server_tick_ms": stats["tick_ms"], "runs_ended": sum(b.runs for b in bots),
            "verdicts": sum(b.verdicts for b in bots), "errors": _count(b.errors for b in bots),
            "pass": p99 <= P99_LIMIT_MS}


def _count(parts: object) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:  # type: ignore[attr-defined]
        for code, n in part.items():
            total[code] = total.get(code, 0) + n
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Args()
    parser.add_argument("--levels", type=int, nargs="+", default=defaults.levels)
    parser.add_argument("--warmup-s", type=float, default=defaults.warmup_s)
    parser.add_argument("--measure-s", type=float, default=defaults.measure_s)
    parser.add_argument("--accounts", type=int, default=defaults.accounts)
    parser.add_argument("--answer-prob", type=float, default=defaults.answer_prob)
    parser.add_argument("--run-ticks", type=int, default=defaults.run_ticks)
    args = Args(**{k.replace("-", "_"): v for k, v in vars(parser.parse_args()).items()})
    print(json.dumps({"args": asdict(args), "cpus": os.cpu_count()}), flush=True)
    proc, url, data = start_server(args.run_ticks, max(args.levels) + 8)
    gc.freeze()  # the bots' own collector pauses would count as server jitter
    try:
        results = uvloop.run(run_levels(args, url, sign_up(url, args.accounts), proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    held = [r["bots"] for r in results if r["pass"]]
    print(f"held at 20 Hz with p99 interval <= {P99_LIMIT_MS:.0f} ms: "
          f"{max(held) if held else 0} players (data dir {data})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
