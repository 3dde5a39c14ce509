"""Ledger throughput: transfers per second on SQLite and on PostgreSQL, in one run.

Each transfer is one database transaction through ``Ledger.move`` (idempotency check, row locks,
balance checks, legs + header inserts, trigger checks). Run:

    .venv/bin/python bench/bench_ledger.py --transfers 2000 \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The PostgreSQL URL defaults to ``CROWDLEARNING_TEST_POSTGRES_URL``; the benchmark works in a fresh
schema and drops it afterwards. Without a URL only SQLite is measured.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa

from crowdlearning.ledger import Ledger, make_engine, upgrade_to_head


@dataclass(frozen=True)
class Args:
    """Benchmark arguments."""

    transfers: int = 2000  # per database and mode [count]; bounded to 100_000
    players: int = 16  # accounts transfers move between [count]
    threads: int = 4  # writers in the concurrent mode [count]
    seed: int = 0
    postgres_url: str = ""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = Args(**vars(parser.parse_args()))
    if not 0 < args.transfers <= 100_000:
        parser.error("--transfers must be in 1..100000")
    url = args.postgres_url or os.environ.get("CROWDLEARNING_TEST_POSTGRES_URL", "")
    return Args(**{**asdict(args), "postgres_url": url})


def prepare(engine: sa.Engine, args: Args) -> Ledger:
    upgrade_to_head(engine)
    ledger = Ledger(engine, stake_minimum_tinybar=1, hold_tinybar=1)
    for n in range(args.players):
        ledger.open_player(f"p{n}")
        ledger.deposit(f"seed-{n}", f"player:p{n}:available", 10**12)
    return ledger


def run(ledger: Ledger, args: Args, threads: int, tag: str) -> float:
    """Post ``args.transfers`` random transfers with ``threads`` writers; return transfers/s."""
    rng = random.Random(args.seed)
    jobs = [
        (f"{tag}-{i}", *rng.sample(range(args.players), 2), rng.randint(1, 1000))
        for i in range(args.transfers)
    ]

    def post(job: tuple[str, int, int, int]) -> None:
        tid, src, dst, amount = job
        ledger.move(tid, f"player:p{src}:available", f"player:p{dst}:available", amount)

    start = time.perf_counter()
    if threads == 1:
        for job in jobs:
            post(job)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(post, jobs))
    elapsed = time.perf_counter() - start
    ledger.check_books()
    return args.transfers / elapsed


def measure(engine: sa.Engine, args: Args) -> dict[str, float]:
    ledger = prepare(engine, args)
    return {
        "1 writer": run(ledger, args, 1, "seq"),
        f"{args.threads} writers": run(ledger, args, args.threads, "par"),
    }


def sqlite_figures(args: Args) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            return measure(engine, args)
        finally:
            engine.dispose()


def postgres_figures(args: Args) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(args.postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = make_engine(args.postgres_url, schema=schema)
    try:
        return measure(engine, args)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def main() -> int:
    args = parse_args()
    print("args:", {k: v for k, v in asdict(args).items() if k != "postgres_url"})
    results = {"sqlite": sqlite_figures(args)}
    if args.postgres_url:
        results["postgresql"] = postgres_figures(args)
    else:
        print("postgresql: skipped (no --postgres-url / CROWDLEARNING_TEST_POSTGRES_URL)")
    for db, figures in results.items():
        for mode, rate in figures.items():
            print(f"{db:<11} {mode:<10} {rate:9.0f} transfers/s")
    if "postgresql" in results:
        for mode, rate in results["postgresql"].items():
            print(f"ratio postgresql/sqlite ({mode}): {rate / results['sqlite'][mode]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
