"""Does the game keep ticking while hostile HTTP requests arrive? (issue 14)

Starts the real game server app (``create_app`` over ``open_runtime``: embedded defaults in a
temporary data directory, the judge in a thread) under uvicorn as ``crowdlearning serve`` runs it
(uvloop, httptools), in this process. A client thread sends the requests; a sampler thread reads
the game loop's tick counter every 2 ms and the process's resident memory. The game loop ticks at
20 Hz on the same event loop as every request, so a request that holds the loop shows as a gap
between ticks. Per scenario: the longest gap between ticks, the tick rate while the requests
ran, the growth of resident memory, the answers' status codes and their largest size.

Scenarios:

- ``body-12mb``: the tester's request: a JSON object of 1M keys (12 MB) to /api/auth/login;
- ``body-1mb``: the same with 100k keys (1.2 MB);
- ``body-limit``: the largest body under ``server_max_body_bytes``, packed with extra keys (the
  most validation work a body that is let in can cause), ``--repeat`` times back to back;
- ``signin-flood``: 40 concurrent sign-ins (unknown names: each costs one Argon2id hash) for
  ``--flood-s`` seconds, per-address limits lifted (as if from 40 addresses).

``--max-body-bytes 16777216`` (the largest the setting allows) lets the big bodies in, to see what
the limit spares; ``--hash-workers 40`` hashes like before the fix (FastAPI's thread pool: up to
40 at once). Run:

    .venv/bin/python bench/bench_http_guard.py
    .venv/bin/python bench/bench_http_guard.py --max-body-bytes 16777216 --hash-workers 40
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn

from crowdlearning.config import Settings
from crowdlearning.server.app import create_app
from crowdlearning.server.cli import uvicorn_options
from crowdlearning.server.runtime import Runtime, open_runtime

SAMPLE_S = 0.002


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Sampler:
    """Reads the game's tick counter and the RSS every ``SAMPLE_S`` on its own thread."""

    runtime: Runtime
    ticks: list[tuple[float, int]] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            self.ticks.append((time.perf_counter(), self.runtime.game.tick_count))
            if n % 25 == 0:
                self.rss.append(rss_mb())
            n += 1
            time.sleep(SAMPLE_S)

    def window(self, start: float, end: float) -> tuple[float, float]:
        """(longest gap between ticks [ms], tick rate [Hz]) in ``start..end``."""
        samples = [(t, c) for t, c in self.ticks if start <= t <= end]
        changes = [t for (_, prev), (t, c) in itertools.pairwise(samples) if c != prev]
        edges = [start, *changes, end]
        gap = max(b - a for a, b in itertools.pairwise(edges))
        rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        return gap * 1000, rate


def body_of(keys: int) -> bytes:
    """A sign-in with ``keys`` extra keys (``extra="forbid"``: one validation error each)."""
    fields = {"username": "alice", "password": "correct horse"}
    extra = {f"k{i}": 0 for i in range(keys)}
    return json.dumps({**fields, **extra}, separators=(",", ":")).encode()


def largest_body_under(limit: int) -> bytes:
    keys = limit // 12
    while len(body := body_of(keys)) > limit:
        keys = int(keys * limit / len(body) * 0.999)
    return body


def post_body(url: str, body: bytes, times: int = 1) -> tuple[list[int], int]:
    """Post ``body`` to sign-in ``times`` times, one after the other."""
    codes, size = [], 0
    with httpx.Client(timeout=300) as client:
        for _ in range(times):
            r = client.post(f"{url}/api/auth/login", content=body,
                            headers={"content-type": "application/json"})
            codes.append(r.status_code)
            size = max(size, len(r.content))
    return codes, size


def flood(url: str, clients: int, seconds: float) -> tuple[list[int], int]:
    async def one(client: httpx.AsyncClient, until: float, codes: list[int]) -> None:
        while time.perf_counter() < until:
            r = await client.post(f"{url}/api/auth/login", json={
                "username": f"x{uuid.uuid4().hex[:12]}", "password": "not the password"})
            codes.append(r.status_code)

    async def main() -> list[int]:
        codes: list[int] = []
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            until = time.perf_counter() + seconds
            await asyncio.gather(*(one(client, until, codes) for _ in range(clients)))
        return codes

    return asyncio.run(main()), 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-body-bytes", type=int, default=None)
    parser.add_argument("--hash-workers", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=200,
                        help="body-limit requests, back to back")
    parser.add_argument("--flood-clients", type=int, default=40)
    parser.add_argument("--flood-s", type=float, default=8.0)
    parser.add_argument("--skip", nargs="*", default=[], help="scenarios not to run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-http-guard-"))
    update: dict[str, object] = {}
    if args.max_body_bytes is not None:
        update["server_max_body_bytes"] = args.max_body_bytes
    if args.hash_workers is not None:
        update["server_password_hash_workers"] = args.hash_workers
    settings = Settings(
        environment="test", data_dir=root, database_url=f"sqlite:///{root / 'ledger.db'}",
        server_database_url=f"sqlite:///{root / 'server.db'}", hedera_local_port=0,
        hedera_local_mirror_port=0, server_port=0, server_judge_process=False,
        server_eval_tracks=2, server_play_tracks=2, server_auth_per_ip_per_min=10**6,
        server_password_hash_queue=1000, log_level="WARNING", **update)
    print(f"bench_http_guard: server_max_body_bytes={settings.server_max_body_bytes} "
          f"server_password_hash_workers={settings.server_password_hash_workers} "
          f"cpus={os.cpu_count()} load average (1, 5, 15 min) at start: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with open_runtime(settings) as runtime:
        server = uvicorn.Server(uvicorn.Config(create_app(settings, runtime),
                                               **uvicorn_options(settings)))
        serving = threading.Thread(target=server.run, daemon=True)
        serving.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        sampler = Sampler(runtime)
        threading.Thread(target=sampler.run, daemon=True).start()
        time.sleep(2.0)  # the game ticks; caches warm
        # built before anything is timed: building them holds this process's GIL
        big, one_mb = body_of(1_000_000), body_of(100_000)
        at_limit = largest_body_under(settings.server_max_body_bytes)
        scenarios = {
            "body-12mb": lambda: post_body(url, big),
            "body-1mb": lambda: post_body(url, one_mb),
            "body-limit": lambda: post_body(url, at_limit, args.repeat),
            "signin-flood": lambda: flood(url, args.flood_clients, args.flood_s),
        }
        print(f"{'scenario':<14}{'seconds':>9}{'max gap ms':>12}{'tick Hz':>9}"
              f"{'RSS +MB':>9}{'answer bytes':>14}  status codes", flush=True)
        for name, scenario in scenarios.items():
            if name in args.skip:
                continue
            rss_before = sampler.rss[-1]
            n_rss = len(sampler.rss)
            start = time.perf_counter()
            codes, size = scenario()
            end = time.perf_counter()
            time.sleep(0.2)
            gap, rate = sampler.window(start, end)
            rss_peak = max(sampler.rss[n_rss:] or [rss_before])
            counted = {code: codes.count(code) for code in sorted(set(codes))}
            hz = f"{rate:.1f}" if end - start >= 0.5 else "-"  # too short to tell
            print(f"{name:<14}{end - start:>9.2f}{gap:>12.1f}{hz:>9}"
                  f"{rss_peak - rss_before:>9.0f}{size:>14}  {counted}", flush=True)
            time.sleep(1.0)
        sampler.stop.set()
        server.should_exit = True
        serving.join(timeout=30)
    print(f"load average (1, 5, 15 min) at end: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
