"""Ledger throughput: transfers per second, one at a time and in batches, beside a bare insert.

For SQLite and (when a URL is given) PostgreSQL, with 1 and ``--threads`` writers, in one run:

    move         ``Ledger.move``: one database transaction per transfer (lock, idempotency check,
                 balance checks, legs + header inserts, triggers, commit)
    batcher      ``MoveBatcher.move``: each writer books one transfer at a time, a writer thread
                 books what the writers queued together (group commit)
    bare 1/tx    the same rows (legs + header) inserted with plain SQLAlchemy into tables without
                 triggers, checks or locks, one transaction per transfer: the floor ``move`` pays
    move_many    ``Ledger.move_many``: ``--batch`` idempotent transfers per database transaction
                 (one lock statement, one existence check, bulk legs + headers, same triggers)
    bare batch   the same rows, ``--batch`` transfers per transaction, plain bulk inserts

Every ledger cell ends with ``check_books()`` (all invariants) and an exact balance check against
a model of the transfers. Run:

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_ledger.py \
        --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The PostgreSQL URL defaults to ``CROWDLEARNING_TEST_POSTGRES_URL``; the benchmark works in a fresh
schema and drops it afterwards. Without a URL only SQLite is measured.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa

from crowdlearning.ledger import Ledger, make_engine, upgrade_to_head
from crowdlearning.ledger.batcher import MoveBatcher
from crowdlearning.ledger.book import Move

Job = tuple[str, int, int, int]  # transfer id, from player, to player, amount


@dataclass(frozen=True)
class Args:
    """Benchmark arguments."""

    transfers: int = 2000  # per one-at-a-time cell [count]; bounded to 100_000
    batch_transfers: int = 20000  # per batched cell [count]; bounded to 500_000
    batch: int = 500  # transfers per database transaction in the batched cells [count]
    players: int = 16  # accounts transfers move between [count]
    threads: int = 8  # writers in the concurrent cells [count]
    batcher_wait_ms: float = 0.0  # how long the MoveBatcher waits for company [ms]
    seed: int = 0
    postgres_url: str = ""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = Args(**vars(parser.parse_args()))
    if not 0 < args.transfers <= 100_000:
        parser.error("--transfers must be in 1..100000")
    if not 0 < args.batch_transfers <= 500_000:
        parser.error("--batch-transfers must be in 1..500000")
    if not 0 < args.batch <= 10_000 or not 0 < args.threads <= 64 or args.players < 2:
        parser.error("--batch in 1..10000, --threads in 1..64, --players >= 2")
    url = args.postgres_url or os.environ.get("CROWDLEARNING_TEST_POSTGRES_URL", "")
    return Args(**{**asdict(args), "postgres_url": url})


_bare = sa.MetaData()
bare_transfers = sa.Table(
    "bench_bare_transfers",
    _bare,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
    sa.Column("pending_id", sa.String(128)),
    sa.Column("memo", sa.String(256), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
)
bare_legs = sa.Table(
    "bench_bare_legs",
    _bare,
    sa.Column("transfer_id", sa.String(128), primary_key=True),
    sa.Column("leg_no", sa.SmallInteger(), primary_key=True, autoincrement=False),
    sa.Column("account_id", sa.BigInteger(), nullable=False),
    sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
)


class Cell:
    """One database under test: a seeded ledger, bare tables, and a model of the balances."""

    def __init__(self, engine: sa.Engine, args: Args, db: str) -> None:
        self.db = db
        upgrade_to_head(engine)
        _bare.create_all(engine)
        self.engine, self.args = engine, args
        self.ledger = Ledger(engine, stake_minimum_tinybar=1, hold_tinybar=1)
        self.expected = {}
        for n in range(args.players):
            self.ledger.open_player(f"p{n}")
            self.ledger.deposit(f"seed-{n}", _code(n), 10**12)
            self.expected[n] = 10**12

    def jobs(self, tag: str, count: int) -> list[Job]:
        rng = random.Random(f"{self.args.seed}-{tag}")
        players = self.args.players
        return [
            (f"{tag}-{i}", *rng.sample(range(players), 2), rng.randint(1, 1000))
            for i in range(count)
        ]

    def check(self, jobs: Sequence[Job]) -> None:
        """All invariants hold and every balance is exactly what the transfers make it."""
        self.ledger.check_books()
        for _, src, dst, amount in jobs:
            self.expected[src] -= amount
            self.expected[dst] += amount
        for n, value in self.expected.items():
            assert self.ledger.balance(_code(n)) == value, (n, value)


def _code(n: int) -> str:
    return f"player:p{n}:available"


def _bare_rows(jobs: Sequence[Job]) -> tuple[list[dict], list[dict]]:  # type: ignore[type-arg]
    now = time.time_ns()
    leg_rows = [
        {"transfer_id": tid, "leg_no": n, "account_id": account, "amount_tinybar": delta}
        for tid, src, dst, amount in jobs
        for n, (account, delta) in enumerate(((src, -amount), (dst, amount)))
    ]
    headers = [
        {
            "id": tid,
            "kind": "single",
            "amount_tinybar": amount,
            "pending_id": None,
            "memo": "",
            "created_at_ns": now,
        }
        for tid, _, _, amount in jobs
    ]
    return leg_rows, headers


LOADS: dict[tuple[str, int, str], str] = {}  # (db, writers, mode) -> load average after the cell


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _timed(units: list, work: Callable, threads: int) -> float:  # type: ignore[type-arg]
    """Seconds to run ``work`` on every unit with ``threads`` writers."""
    start = time.perf_counter()
    if threads == 1:
        for unit in units:
            work(unit)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, units))
    return time.perf_counter() - start


def _batches(jobs: list[Job], size: int) -> list[list[Job]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def measure(cell: Cell, threads: int) -> dict[str, float]:
    """Transfers/s of the five modes with ``threads`` writers."""
    args, ledger, engine = cell.args, cell.ledger, cell.engine
    tag = f"w{threads}"
    out: dict[str, float] = {}

    jobs = cell.jobs(f"{tag}-move", args.transfers)

    def move(job: Job) -> None:
        ledger.move(job[0], _code(job[1]), _code(job[2]), job[3])

    out["move"] = len(jobs) / _timed(jobs, move, threads)
    LOADS[(cell.db, threads, "move")] = _load()
    cell.check(jobs)

    jobs = cell.jobs(f"{tag}-batcher", args.transfers)
    with MoveBatcher(ledger, max_wait_s=args.batcher_wait_ms / 1000) as batcher:

        def queued(job: Job) -> None:
            batcher.move(job[0], _code(job[1]), _code(job[2]), job[3])

        out["batcher"] = len(jobs) / _timed(jobs, queued, threads)
    LOADS[(cell.db, threads, "batcher")] = _load()
    cell.check(jobs)

    def bare(unit: list[Job]) -> None:
        leg_rows, headers = _bare_rows(unit)
        with engine.begin() as conn:
            conn.execute(bare_legs.insert(), leg_rows)
            conn.execute(bare_transfers.insert(), headers)

    jobs = cell.jobs(f"{tag}-bare1", args.transfers)
    out["bare 1/tx"] = len(jobs) / _timed([[j] for j in jobs], bare, threads)
    LOADS[(cell.db, threads, "bare 1/tx")] = _load()

    jobs = cell.jobs(f"{tag}-many", args.batch_transfers)

    def move_many(unit: list[Job]) -> None:
        items = ledger.move_many([Move(t, _code(s), _code(d), a) for t, s, d, a in unit])
        assert all(item.outcome == "booked" for item in items)

    out["move_many"] = len(jobs) / _timed(_batches(jobs, args.batch), move_many, threads)
    LOADS[(cell.db, threads, "move_many")] = _load()
    cell.check(jobs)

    jobs = cell.jobs(f"{tag}-bareN", args.batch_transfers)
    out["bare batch"] = len(jobs) / _timed(_batches(jobs, args.batch), bare, threads)
    LOADS[(cell.db, threads, "bare batch")] = _load()
    return out


def figures(engine: sa.Engine, args: Args, db: str) -> dict[int, dict[str, float]]:
    cell = Cell(engine, args, db)
    return {threads: measure(cell, threads) for threads in sorted({1, args.threads})}


def sqlite_figures(args: Args) -> dict[int, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            return figures(engine, args, "sqlite")
        finally:
            engine.dispose()


def postgres_figures(args: Args) -> dict[int, dict[str, float]]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(args.postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = make_engine(args.postgres_url, schema=schema)
    try:
        return figures(engine, args, "postgresql")
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def report(db: str, results: dict[int, dict[str, float]]) -> None:
    for threads, cell in results.items():
        writers = f"{threads} writer{'s' if threads > 1 else ''}"
        for mode, rate in cell.items():
            load = LOADS[(db, threads, mode)]
            print(f"{db:<11} {writers:<10} {mode:<11} {rate:9.0f} transfers/s  (load {load})")
        print(
            f"{db:<11} {writers:<10} ratios: move/bare-1/tx {cell['move'] / cell['bare 1/tx']:.2f}"
            f"  move_many/bare-batch {cell['move_many'] / cell['bare batch']:.2f}"
            f"  move_many/move {cell['move_many'] / cell['move']:.1f}x"
            f"  batcher/move {cell['batcher'] / cell['move']:.1f}x"
        )


def main() -> int:
    args = parse_args()
    print("args:", {k: v for k, v in asdict(args).items() if k != "postgres_url"})
    print("load average at start (1/5/15 min):", _load())
    report("sqlite", sqlite_figures(args))
    if args.postgres_url:
        report("postgresql", postgres_figures(args))
    else:
        print("postgresql: skipped (no --postgres-url / CROWDLEARNING_TEST_POSTGRES_URL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
