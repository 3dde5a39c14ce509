"""Payout throughput on PostgreSQL: third-party payouts through the payments API beside the
platform's own reward payouts, both settled on the local Hedera network, in one run.

Two runs over the same recipients, amounts and settlement code (``payments.settlement.Settler``,
settling every ``--settle-interval-s`` while payouts are booked):

- **api**: ``crowdlearning payments serve`` as a subprocess (its own PostgreSQL schema, its own
  port, settling on its own: ``payments_settle_interval_s``; webhooks off), ``--clients`` client
  threads posting their share of ``--payouts`` through ``payments.client.PaymentsClient``;
- **platform**: the game's reward payouts, booked as the judge books them
  (``Ledger.request_payout("reward:<id>", player's available, player's Hedera account, ...)``,
  one per verdict, from ``--clients`` threads) and settled by a ``Settler`` thread in this
  process, as the game server's settle loop does.

Printed per run: payouts booked per second (booking phase), payouts settled per second (first
booking to the last payout posted), Hedera transactions, recipients per transaction (distinct
accounts credited per transaction, at most 9: the 10-adjustment limit less the treasury's
debit), and the 1-minute load average before and after; then the api/platform ratios.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_payouts.py [--payouts 2000] [--recipients 200]

The PostgreSQL URL defaults to ``CROWDLEARNING_TEST_POSTGRES_URL``; each run works in a fresh
schema, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
from hiero_sdk_python import PrivateKey

from crowdlearning.config import Settings
from crowdlearning.ledger import (
    AccountKind,
    Ledger,
    PayoutState,
    make_engine,
    player_account,
    upgrade_to_head,
)
from crowdlearning.ledger.clients import issue_key, open_client
from crowdlearning.ledger.schema import payouts as payouts_table
from crowdlearning.payments.client import PaymentsClient, RetryPolicy
from crowdlearning.payments.local_network import LocalNetworkInfo
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Args:
    payouts: int = 2000  # payouts per run [count]
    recipients: int = 200  # distinct Hedera accounts paid [count]
    clients: int = 3  # concurrent bookers (API clients / judge threads) [count]
    settle_interval_s: float = 0.2  # settlement cadence in both runs [s]
    timeout_s: float = 900.0  # bound on one run [s]
    api_only: int = 0  # 1: the api run only (comparing the service's booking between runs)
    postgres_url: str = ""


@dataclass(frozen=True)
class RunResult:
    payouts: int
    booked_s: float
    settled_s: float
    transactions: int
    recipients_per_tx: float
    load_before: float
    load_after: float

    @property
    def booked_per_s(self) -> float:
        return self.payouts / self.booked_s

    @property
    def settled_per_s(self) -> float:
        return self.payouts / self.settled_s


def parse_args() -> Args:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = Args(**vars(parser.parse_args()))
    url = args.postgres_url or os.environ.get("CROWDLEARNING_TEST_POSTGRES_URL", "")
    if not url:
        parser.error("no PostgreSQL: pass --postgres-url or set CROWDLEARNING_TEST_POSTGRES_URL")
    if min(args.payouts, args.recipients, args.clients) <= 0:
        parser.error("payouts, recipients and clients must be positive")
    return Args(**{**asdict(args), "postgres_url": url})


@contextmanager
def fresh_schema(url: str) -> Iterator[tuple[sa.Engine, str]]:
    """A migrated engine confined to a new PostgreSQL schema (dropped on exit), and the URL a
    subprocess reaches the same schema with."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = make_engine(url, schema=schema)
    try:
        upgrade_to_head(engine)
        options = urllib.parse.quote(f"-csearch_path={schema}")
        yield engine, f"{url}{'&' if '?' in url else '?'}options={options}"
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _ledger(engine: sa.Engine) -> Ledger:
    settings = Settings()
    return Ledger(engine, stake_minimum_tinybar=settings.ledger_stake_minimum_tinybar,
                  hold_tinybar=settings.ledger_hold_tinybar)


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(payouts_table.c.state, sa.func.count())
                                 .group_by(payouts_table.c.state)).all())


def _recipients_per_tx(engine: sa.Engine) -> tuple[int, float]:
    with engine.connect() as conn:
        per_tx = conn.execute(
            sa.select(sa.func.count(sa.distinct(payouts_table.c.destination)))
            .where(payouts_table.c.state == PayoutState.POSTED.value)
            .group_by(payouts_table.c.settlement_tx_id)).scalars().all()
    return len(per_tx), sum(per_tx) / max(1, len(per_tx))


def _book_concurrently(jobs: list[list[tuple[str, str, int]]],
                       book: Callable[[int, str, str, int], None]) -> float:
    """Run ``book(thread, id, to, amount)`` for each job list in a thread of its own; seconds."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            for payout_id, to_account, amount in jobs[index]:
                book(index, payout_id, to_account, amount)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def _wait_posted(engine: sa.Engine, payouts: int, timeout_s: float,
                 alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while _counts(engine).get(PayoutState.POSTED.value, 0) < payouts:
        if time.monotonic() > deadline or not alive():
            raise RuntimeError(f"not settled: {_counts(engine)}")
        time.sleep(0.05)


@contextmanager
def network_process() -> Iterator[LocalNetworkInfo]:
    """``crowdlearning hedera-node`` as a subprocess (its own interpreter: the network's gRPC
    threads never share a GIL with the bookers or settlers measured), until the block ends."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "crowdlearning"), "hedera-node", "--port", str(port),
         "--no-mirror"], env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        fields: dict[str, str] = {}
        for line in proc.stdout:
            label, _, value = line.strip().rpartition("  ")
            fields[label.strip()] = value.strip()
            if line.startswith("Ctrl-C to stop."):
                break
        else:
            raise RuntimeError(f"hedera-node exited: {fields}")
        # keep reading what it prints, so that a full pipe never blocks it
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield LocalNetworkInfo(f"127.0.0.1:{port}", fields["node account id"],
                               fields["operator account"], fields["operator key (DER)"])
    finally:
        proc.send_signal(signal.SIGTERM)  # our own child, by its id
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_run(args: Args, network: LocalNetworkInfo, jobs: list[list[tuple[str, str, int]]]
            ) -> RunResult:
    """Payouts posted through the API of a ``crowdlearning payments serve`` subprocess."""
    with fresh_schema(args.postgres_url) as (engine, child_url), \
            tempfile.TemporaryFile() as log:
        ledger = _ledger(engine)
        keys = []
        for n in range(len(jobs)):
            client = f"client{n}"
            ledger.run(lambda c, client=client: open_client(c, client, now_ns=1))
            ledger.deposit(f"funding-{client}", f"client:{client}", 10**15)
            keys.append(ledger.run(lambda c, client=client: issue_key(c, client, now_ns=1)))
        host, _, port = network.address.rpartition(":")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CROWDLEARNING_")}
        env.update({
            "OMP_NUM_THREADS": "1", "CROWDLEARNING_ENVIRONMENT": "test",
            "CROWDLEARNING_PAYMENTS_DATABASE_URL": child_url,
            "CROWDLEARNING_HEDERA_NETWORK": "local", "CROWDLEARNING_HEDERA_LOCAL_HOST": host,
            "CROWDLEARNING_HEDERA_LOCAL_PORT": port,
            "CROWDLEARNING_HEDERA_OPERATOR_ID": network.operator_account_id,
            "CROWDLEARNING_HEDERA_OPERATOR_KEY": network.operator_private_key_der_hex,
            "CROWDLEARNING_PAYMENTS_SETTLE_INTERVAL_S": str(args.settle_interval_s),
            "CROWDLEARNING_PAYMENTS_WEBHOOK_INTERVAL_S": "0",
            "CROWDLEARNING_PAYMENTS_DEPOSIT_POLL_S": "0",  # no mirror here (--no-mirror)
            "CROWDLEARNING_PAYMENTS_CLIENT_RPS": "100000",
            "CROWDLEARNING_PAYMENTS_CLIENT_BURST": "100000",
            "CROWDLEARNING_PAYMENTS_CLIENT_DAILY_PAYOUT_TINYBAR": "0",
        })
        api_port = _free_port()
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "crowdlearning"), "payments", "serve",
             "--port", str(api_port)], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{api_port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError("service did not start:\n" + log.read().decode()[-2000:])
                time.sleep(0.05)
            apis = [PaymentsClient(base, key, retry=RetryPolicy(retries=8)) for key in keys]
            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            booked_s = _book_concurrently(
                jobs, lambda i, pid, to, amount: apis[i].create_payout(to, amount, payout_id=pid))
            _wait_posted(engine, args.payouts, args.timeout_s, lambda: proc.poll() is None)
            settled_s = time.perf_counter() - start
            load_after = os.getloadavg()[0]
            for api in apis:
                api.close()
        finally:
            proc.send_signal(signal.SIGTERM)  # our own child, by its id
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        transactions, per_tx = _recipients_per_tx(engine)
    return RunResult(args.payouts, booked_s, settled_s, transactions, per_tx, load_before,
                     load_after)


def platform_run(args: Args, network: LocalNetworkInfo,
                 jobs: list[list[tuple[str, str, int]]]) -> RunResult:
    """The game's reward payouts: booked per verdict, settled by the platform's Settler."""
    with fresh_schema(args.postgres_url) as (engine, _url):
        ledger = _ledger(engine)
        players = [f"player{n}" for n in range(len(jobs))]
        for player in players:
            ledger.open_player(player)
            ledger.deposit(f"dep-{player}", player_account(player, AccountKind.AVAILABLE),
                           10**15)
        transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
        settler = Settler(ledger, transport)
        stop = threading.Event()

        def settle_loop() -> None:  # as the game server's settle loop, at the same cadence
            while not stop.is_set():
                report = settler.run_once()
                if not (report.prepared or report.posted_payouts or report.live):
                    stop.wait(args.settle_interval_s)

        load_before = os.getloadavg()[0]
        settling = threading.Thread(target=settle_loop, daemon=True)
        start = time.perf_counter()
        settling.start()
        try:
            booked_s = _book_concurrently(jobs, lambda i, pid, to, amount: ledger.request_payout(
                f"reward:{pid}", player_account(players[i], AccountKind.AVAILABLE), to, amount))
            _wait_posted(engine, args.payouts, args.timeout_s, settling.is_alive)
            settled_s = time.perf_counter() - start
        finally:
            stop.set()
            settling.join(timeout=30)
            transport.close()
        load_after = os.getloadavg()[0]
        transactions, per_tx = _recipients_per_tx(engine)
    return RunResult(args.payouts, booked_s, settled_s, transactions, per_tx, load_before,
                     load_after)


def _line(name: str, r: RunResult) -> str:
    return (f"{name:>9}: booked {r.booked_per_s:7.1f} payouts/s ({r.booked_s:6.1f} s), settled "
            f"{r.settled_per_s:7.1f} payouts/s ({r.settled_s:6.1f} s), {r.transactions} Hedera "
            f"transactions, {r.recipients_per_tx:.2f} recipients/tx, "
            f"load {r.load_before:.2f} -> {r.load_after:.2f}")


def main() -> None:
    args = parse_args()
    print("args:", {k: v for k, v in asdict(args).items() if k != "postgres_url"},
          f"cpus={os.cpu_count()}")
    rng = random.Random(15)
    with network_process() as network:
        transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
        key = PrivateKey.generate_ed25519().public_key()
        recipients = [transport.create_account(key) for _ in range(args.recipients)]
        transport.close()
        jobs = [[(f"po-{n}", rng.choice(recipients), rng.randint(1, 10**6))
                 for n in range(i, args.payouts, args.clients)] for i in range(args.clients)]
        api = api_run(args, network, jobs)
        print(_line("api", api), flush=True)
        if args.api_only:
            return
        platform = platform_run(args, network, jobs)
        print(_line("platform", platform), flush=True)
    print(f"api/platform: booked {api.booked_per_s / platform.booked_per_s:.2f}x, settled "
          f"{api.settled_per_s / platform.settled_per_s:.2f}x, recipients/tx "
          f"{api.recipients_per_tx / platform.recipients_per_tx:.2f}x; "
          f"load now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
