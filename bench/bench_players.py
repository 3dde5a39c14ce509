"""Players one game server process holds at 20 Hz, with the bots in their own process.

``bench_server.py`` runs its bots in the measuring process on the same 2 cores; here the bots run
in a child process of their own (``--bots-child``) and are as cheap as a client can be: a raw
WebSocket over an asyncio protocol (uvloop), frames parsed by hand, a frame's JSON not decoded
at all (its ``tick`` and the policy's steering are cut out of the text), control messages
decoded. Each bot plays like ``bench_server.Bot``: starts a practice run, answers about every
other frame with the policy's steering plus noise (tagged with the frame's tick), starts a new
run when one ends. The server's judge child runs under ``SCHED_IDLE`` (``--judge idle``, the
default): it only gets CPU nobody else wants, standing in for a judge elsewhere (a remote
``crowdlearning judge``); its CPU is printed anyway.

Several servers can be compared in one run (``--variant NAME[:ENV=VALUE,...][@SRC]``, each a
fresh server process on the same data directory, levels interleaved variant by variant):
``SRC`` is another source tree (for the code before a change, e.g. ``git archive HEAD src``
unpacked in /tmp), ``ENV`` extra environment (``OPENBLAS_NUM_THREADS=2``). Per level and
variant it prints: the bots' frame interval p50 / p99 / max (each frame timed when its bytes are
read; all bots pooled), the server's own tick interval and tick duration over the same window
(``/api/game/stats``, last 200 ticks), the CPU of the server, judge and bot processes, and the
load average. A level passes when both the bots' and the server's p99 interval are <= 75 ms.

    .venv/bin/python bench/bench_players.py --levels 100 500 1000 --measure-s 10

``--profile`` samples the server's game thread (``sys._current_frames``, every 2 ms) and prints
the functions it was found in (self and total), per variant, over all levels.

Bounded: at most 1000 bots, at most 60 s of measurement per level, 4 variants.
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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

P99_LIMIT_MS = 75.0
ROOT = Path(__file__).resolve().parents[1]
THREADS = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                            "NUMBA_NUM_THREADS")}

# the server, optionally with a sampling profiler of its main (event loop) thread
SERVER_CODE = """
import os, sys, signal, threading, time, collections, json
prof = os.environ.get("BENCH_PROFILE_OUT")
if prof:
    main_id = threading.main_thread().ident
    selfc, totc = collections.Counter(), collections.Counter()
    n = [0]
    def dump():
        with open(prof + ".tmp", "w") as out:
            json.dump({"samples": n[0], "self": selfc.most_common(40),
                       "total": totc.most_common(60)}, out)
        os.replace(prof + ".tmp", prof)
    def sample():  # uvicorn owns SIGTERM: the counts are written every 2 s instead
        last = time.monotonic()
        while True:
            time.sleep(0.002)
            f = sys._current_frames().get(main_id)
            if time.monotonic() - last > 2:
                dump()
                last = time.monotonic()
            if f is None or not os.path.exists(prof + ".on"):
                continue
            n[0] += 1
            seen = set()
            leaf = True
            while f is not None:
                c = f.f_code
                key = f"{c.co_filename.split('site-packages/')[-1]}:{c.co_name}"
                if leaf:
                    selfc[key] += 1
                    leaf = False
                if key not in seen:
                    totc[key] += 1
                    seen.add(key)
                f = f.f_back
    threading.Thread(target=sample, daemon=True).start()
from crowdlearning.server.cli import serve_main
sys.exit(serve_main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    src: str = ""

    @classmethod
    def parse(cls, text: str) -> Variant:
        head, _, src = text.partition("@")
        name, _, envs = head.partition(":")
        env = dict(kv.split("=", 1) for kv in envs.split(",") if kv)
        return cls(name, env, src)


# --- the bots (child process) ---------------------------------------------------------------
class RawBot(asyncio.Protocol):
    """One player over a hand-rolled WebSocket client (RFC 6455, client side, no extensions)."""

    def __init__(self, host: str, port: int, token: str, rng: random.Random,
                 answer_prob: float) -> None:
        self.host, self.port, self.token = host, port, token
        self.rng, self.answer_prob = rng, answer_prob
        self.arrivals: list[float] = []
        self.runs = self.verdicts = self.run_ticks = 0
        self.errors: dict[str, int] = {}
        self.ends: dict[str, int] = {}  # end reason -> runs
        self.buf = bytearray()
        self.open = False
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(  # type: ignore[attr-defined]
            (f"GET /ws/play HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
             f"Authorization: Bearer {self.token}\r\n\r\n").encode())

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
            del buf[: end + 4]
            self.open = True
            self._send(b'{"type":"start"}')
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
            payload = bytes(buf[pos + head:pos + head + length])
            pos += head + length
            if op == 1:
                self._on_text(payload, now)
            elif op == 9:
                self._frame(0xA, payload)  # pong
            elif op == 8:
                self.transport.close()  # type: ignore[union-attr]
        del buf[:pos]

    def _on_text(self, text: bytes, now: float) -> None:
        if text.startswith(b'{"type":"frame"'):
            self.arrivals.append(now)
            if self.rng.random() < self.answer_prob:
                tick = text[23:text.index(b",", 23)]  # after '{"type":"frame","tick":'
                at = text.index(b'"policy":[') + 10
                steer = float(text[at:text.index(b",", at)]) + self.rng.gauss(0, 0.1)
                steer = max(-1.0, min(1.0, steer))
                self._send(b'{"type":"input","tick":%s,"steer":%.3f}' % (tick, steer))
            return
        msg = json.loads(text)
        kind = msg["type"]
        if kind == "end":
            self.runs += 1
            self.ends[msg["reason"]] = self.ends.get(msg["reason"], 0) + 1
            self.run_ticks += msg["ticks"]
            self.arrivals.append(float("nan"))  # no interval across runs
            self._send(b'{"type":"start"}')
        elif kind == "verdict":
            self.verdicts += 1
        elif kind == "error":
            self.errors[msg["code"]] = self.errors.get(msg["code"], 0) + 1

    def _send(self, payload: bytes) -> None:
        self._frame(0x1, payload)

    def _frame(self, op: int, payload: bytes) -> None:
        # masked with the all-zero key (allowed by RFC 6455: the payload is then unchanged)
        n = len(payload)
        head = (bytes((0x80 | op, 0x80 | n)) if n < 126
                else bytes((0x80 | op, 0x80 | 126)) + n.to_bytes(2, "big"))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + b"\0\0\0\0" + payload)


def bots_child() -> None:
    """Reads commands (JSON lines) on stdin, answers on stdout."""
    import uvloop

    gc.freeze()
    uvloop.run(_bots_main())


async def _bots_main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    bots: list[RawBot] = []
    since = 0.0
    cpu0 = 0.0
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "level":
            rng = random.Random(cmd["seed"])
            tokens = cmd["tokens"]
            while len(bots) < cmd["n"]:
                bot = RawBot(cmd["host"], cmd["port"], tokens[len(bots) % len(tokens)],
                             random.Random(rng.random()), cmd["answer_prob"])
                await loop.create_connection(lambda b=bot: b, cmd["host"], cmd["port"])
                bots.append(bot)
                if len(bots) % 25 == 0:
                    await asyncio.sleep(0.05)  # connect in waves
            out = {"bots": len(bots)}
        elif cmd["cmd"] == "mark":
            since, cpu0 = time.perf_counter(), time.process_time()
            for bot in bots:  # counts are per measured window
                bot.arrivals = [a for a in bot.arrivals[-1:]]
                bot.runs = bot.verdicts = bot.run_ticks = 0
                bot.ends, bot.errors = {}, {}
            out = {}
        elif cmd["cmd"] == "report":
            wall = time.perf_counter() - since
            out = _report(bots, since) | {
                "bots_cpu_pct": round(100 * (time.process_time() - cpu0) / wall)}
        else:  # "quit"
            for bot in bots:
                if bot.transport is not None:
                    bot.transport.close()
            out = {}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
        if cmd["cmd"] == "quit":
            return


def _report(bots: list[RawBot], since: float) -> dict:
    parts = []
    for bot in bots:
        t = np.array([a for a in bot.arrivals if not a >= 0 or a >= since])
        if len(t) > 1:
            d = np.diff(t) * 1000
            parts.append(d[np.isfinite(d)])
    d = np.concatenate(parts) if parts else np.zeros(1)
    errors: dict[str, int] = {}
    ends: dict[str, int] = {}
    for bot in bots:
        for code, k in bot.errors.items():
            errors[code] = errors.get(code, 0) + k
        for reason, k in bot.ends.items():
            ends[reason] = ends.get(reason, 0) + k
    runs = sum(b.runs for b in bots)
    return {"frames": int(d.size), "p50": round(float(np.median(d)), 1),
            "p99": round(float(np.percentile(d, 99)), 1), "max": round(float(d.max()), 1),
            "connected": sum(1 for b in bots if b.open and not b.closed),
            "runs_ended": runs, "verdicts": sum(b.verdicts for b in bots),
            "ticks_per_run": round(sum(b.run_ticks for b in bots) / max(runs, 1)),
            "ends": ends, "errors": errors}


# --- the orchestrator -----------------------------------------------------------------------
def cpu_s(pids: list[int], kinds: tuple[int, ...] = (11, 12), task: bool = False) -> float:
    """CPU time [s] of processes, from /proc (user and system; ``(12,)``: system only;
    ``task``: of the main thread only)."""
    total = 0.0
    for p in pids:
        try:
            with open(f"/proc/{p}/task/{p}/stat" if task else f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(fields[k]) for k in kinds) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    """All descendants of ``pid``."""
    out: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(c) for c in f.read().split()]
    except OSError:
        return out
    for k in kids:
        out += [k, *children(k)]
    return out


def threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(variant: Variant, data: str, max_players: int, run_ticks: int,
                 profile_out: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    # a fresh verdict backlog: runs left by earlier levels and variants (the judge idles)
    # would be read at start and judged meanwhile
    shutil.rmtree(Path(data) / "verdict-backlog", ignore_errors=True)
    env = {**os.environ, **THREADS, "CROWDLEARNING_HEDERA_LOCAL_PORT": "0",
           "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT": "0",
           "CROWDLEARNING_SERVER_MAX_PLAYERS": str(max_players),
           "CROWDLEARNING_SERVER_RUN_TICKS": str(run_ticks), "CROWDLEARNING_LOG_LEVEL": "WARNING",
           **variant.env}
    for name, value in variant.env.items():
        if value == "":
            env.pop(name, None)  # NAME= unsets
    if variant.src:
        env["PYTHONPATH"] = variant.src
    if profile_out:
        env["BENCH_PROFILE_OUT"] = profile_out
    log = open(os.path.join(data, f"server-{variant.name}.log"), "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-c", SERVER_CODE, "--port", str(port),
                             "--data-dir", data], env=env, stdout=log, stderr=log)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/game/stats", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"server {variant.name} did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def idle_judge(server_pid: int) -> list[int]:
    """Put the server's children (the judge) under SCHED_IDLE: CPU nobody else wants."""
    kids = children(server_pid)
    for k in kids:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(k, os.SCHED_IDLE, os.sched_param(0))
    return kids


class BotsProcess:
    def __init__(self) -> None:
        env = {**os.environ, **THREADS}
        self.proc = subprocess.Popen([sys.executable, __file__, "--bots-child"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

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


def fresh_data_dir(seed_dir: str) -> str:
    """A new data directory, with the trained initial model of ``seed_dir`` if given (training
    it takes minutes; the databases start empty, so every variant migrates its own schema)."""
    data = tempfile.mkdtemp(prefix="bench-players-")
    for part in ("models", "dataset"):
        if seed_dir and (Path(seed_dir) / part).is_dir():
            shutil.copytree(Path(seed_dir) / part, Path(data) / part)
    return data


def run_variant(args: argparse.Namespace, variant: Variant, data: str, vi: int) -> list[dict]:
    profile_out = (tempfile.mktemp(prefix=f"bench-prof-{variant.name}-", suffix=".json")
                   if args.profile else "")
    proc, port = start_server(variant, data, max(args.levels) + 8, args.run_ticks, profile_out)
    url = f"http://127.0.0.1:{port}"
    results = []
    bots = BotsProcess()
    try:
        tokens = []
        for i in range(args.accounts):
            r = httpx.post(f"{url}/api/auth/signup", timeout=30,
                           json={"username": f"bot{vi}x{i}x{os.getpid()}",
                                 "password": "bench-password-long"})
            r.raise_for_status()
            tokens.append(r.json()["token"])
        judge = idle_judge(proc.pid) if args.judge == "idle" else children(proc.pid)
        if args.nice:  # the server and the bots ahead of the machine's other jobs (not judge)
            for pid in (proc.pid, bots.proc.pid):
                for tid in threads(pid):
                    os.setpriority(os.PRIO_PROCESS, tid, args.nice)
        if args.rt:  # a quiet machine: both run before anything else (SCHED_RR, every thread)
            for pid in (proc.pid, bots.proc.pid):
                for tid in threads(pid):
                    os.sched_setscheduler(tid, os.SCHED_RR, os.sched_param(args.rt))
        for level in args.levels:
            bots.ask(cmd="level", n=level, host="127.0.0.1", port=port, tokens=tokens,
                     seed=args.seed + level, answer_prob=args.answer_prob)
            time.sleep(args.warmup_s)
            judge = sorted(set(judge) | set(children(proc.pid)))
            bots.ask(cmd="mark")
            if profile_out:
                Path(profile_out + ".on").touch()  # the sampler counts from now on
            t0 = time.perf_counter()
            cpu0 = (cpu_s([proc.pid]), cpu_s(judge), cpu_s([bots.proc.pid]),
                    cpu_s([proc.pid], (12,)), cpu_s([proc.pid], task=True))
            time.sleep(args.measure_s)
            wall = time.perf_counter() - t0
            if profile_out:
                Path(profile_out + ".on").unlink()
            cpu1 = (cpu_s([proc.pid]), cpu_s(judge), cpu_s([bots.proc.pid]),
                    cpu_s([proc.pid], (12,)), cpu_s([proc.pid], task=True))
            try:
                stats = httpx.get(f"{url}/api/game/stats", timeout=30).json()
            except httpx.HTTPError:  # the server is too busy to answer
                stats = {"players": None, "tick_ms": {"p50": None, "p99": None}}
            rep = bots.ask(cmd="report")
            tick = stats["tick_ms"]
            recent = tick.get("recent", {})
            row = {"variant": variant.name, "players": level, "on_server": stats["players"],
                   "connected": rep["connected"], "frames": rep["frames"],
                   "client_p50_ms": rep["p50"], "client_p99_ms": rep["p99"],
                   "client_max_ms": rep["max"],
                   "server_interval_p50_ms": recent.get("interval_p50"),
                   "server_interval_p99_ms": recent.get("interval_p99"),
                   "server_step_p50_ms": recent.get("step_p50", tick["p50"]),
                   "server_step_p99_ms": recent.get("step_p99", tick["p99"]),
                   "server_cpu_pct": round(100 * (cpu1[0] - cpu0[0]) / wall),
                   "server_sys_pct": round(100 * (cpu1[3] - cpu0[3]) / wall),
                   "server_loop_thread_cpu_pct": round(100 * (cpu1[4] - cpu0[4]) / wall),
                   "judge_cpu_pct": round(100 * (cpu1[1] - cpu0[1]) / wall),
                   "bots_cpu_pct": round(100 * (cpu1[2] - cpu0[2]) / wall),
                   "load": os.getloadavg()[0], "runs_ended": rep["runs_ended"],
                   "ticks_per_run": rep["ticks_per_run"], "ends": rep["ends"],
                   "verdicts": rep["verdicts"], "errors": rep["errors"]}
            p99s = [rep["p99"]] + ([recent["interval_p99"]] if "interval_p99" in recent else [])
            row["pass"] = max(p99s) <= P99_LIMIT_MS and rep["connected"] == level
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        bots.close()
        stop(proc)
    if profile_out and os.path.exists(profile_out):
        prof = json.loads(Path(profile_out).read_text())
        n = max(prof["samples"], 1)
        print(f"profile {variant.name}: {prof['samples']} samples of the event-loop thread")
        print("  self%  function")
        for key, k in prof["self"][:20]:
            print(f"  {100 * k / n:5.1f}  {key}")
        print("  total%  function")
        for key, k in prof["total"][:40]:
            print(f"  {100 * k / n:5.1f}  {key}")
    return results


def main() -> int:
    if "--bots-child" in sys.argv:
        bots_child()
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME[:ENV=VALUE,...][@SRC] (repeatable; default: one, 'current')")
    parser.add_argument("--warmup-s", type=float, default=4.0)
    parser.add_argument("--measure-s", type=float, default=10.0)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--answer-prob", type=float, default=0.5)
    parser.add_argument("--run-ticks", type=int, default=2400)
    parser.add_argument("--judge", choices=["idle", "niced"], default="idle")
    parser.add_argument("--data-dir", default="",
                        help="take the trained initial model from here (each variant gets a "
                             "fresh data directory with a copy of it)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the server and bot processes (e.g. -10 on a machine "
                             "shared with other jobs; needs root)")
    parser.add_argument("--rt", type=int, default=0,
                        help="real-time priority (SCHED_RR, 1-99) of the server's and bots' "
                             "threads: on a machine busy with other jobs this stands in for "
                             "a quiet one (needs root; the judge stays SCHED_IDLE)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server and bots too
    variants = [Variant.parse(v) for v in args.variant] or [Variant("current")]
    if max(args.levels) > 1000 or min(args.levels) < 1 or not 0 < args.measure_s <= 60:
        parser.error("levels in [1, 1000], measure-s in (0, 60]")
    if len(variants) > 4:
        parser.error("at most 4 variants")
    data = args.data_dir or ""
    print(json.dumps({"args": vars(args), "cpus": os.cpu_count(), "data_dir": data,
                      "variants": [v.__dict__ for v in variants], "load": os.getloadavg()}),
          flush=True)
    results = []
    for vi, variant in enumerate(variants):
        vdata = fresh_data_dir(data)
        print(json.dumps({"variant": variant.name, "data_dir": vdata}), flush=True)
        results += run_variant(args, variant, vdata, vi)
        data = data or vdata  # later variants reuse the model the first one trained
    print(f"\n{'variant':<12}{'players':>8}{'client p50/p99':>16}{'server p50/p99':>16}"
          f"{'step p99':>10}{'srv cpu':>8}{'bots':>6}{'judge':>6}{'load':>6}  pass")
    for r in results:
        print(f"{r['variant']:<12}{r['players']:>8}"
              f"{r['client_p50_ms']:>8}/{r['client_p99_ms']:<7}"
              f"{r['server_interval_p50_ms']!s:>8}/{r['server_interval_p99_ms']!s:<7}"
              f"{r['server_step_p99_ms']!s:>10}{r['server_cpu_pct']:>7}%{r['bots_cpu_pct']:>5}%"
              f"{r['judge_cpu_pct']:>5}%{r['load']:>6.2f}  {r['pass']}")
    if not args.data_dir:
        print(f"(trained model in {data}; --data-dir {data} skips training next time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
