"""The audit trail under load with restarts: entries, blocks, messages, proofs, payout delays.

Runs the local Hedera network in-process (gRPC and its mirror REST view on 127.0.0.1) and a
ledger (SQLite in a temporary folder, or ``--database-url``). ``payouts`` rewards are judged and
paid as the judge does it: per batch, each verdict is journaled (``AuditJournal.append``), its
payout requested, then one settlement run (``Settler.run_once``, real CryptoTransfers batched 9
recipients a time) followed by ``collect_settled``: together, the *payout path*. The audit
publisher runs in its own thread with blocks of ``block_max`` entries.

The judge "restarts" ``restarts`` times, evenly spread: each time the publisher is crashed
in the middle of a send (its block's message signed and stored, never sent), the transport
and journal objects are dropped, and new ones start on the same database. The first payout
path after each start is timed against the steady state ("journal": the audit's share of a
payout path call, ``collect_settled``).

At the end a last start publishes what is left, and every journaled entry is checked: its
inclusion proof leads to the root in its block's message, read back from the topic on the
mirror view; messages are counted per block.

    .venv/bin/python bench/bench_audit.py [--payouts 10000] [--restarts 5] [--block-max 256]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import sqlalchemy as sa
from hiero_sdk_python import PrivateKey

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.merkle import inclusion_path, leaf_hash, root_from_path
from crowdlearning.audit.mirror import MirrorTopicReader
from crowdlearning.audit.network import MessageReceipt
from crowdlearning.audit.publisher import AuditPublisher
from crowdlearning.audit.records import BlockMessage, record_sha256, verdict_record
from crowdlearning.hedera.transport import PreparedTransaction, SubmitOutcome
from crowdlearning.ledger import Ledger, make_engine, upgrade_to_head
from crowdlearning.ledger.schema import settlement_transactions as stx
from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler


@dataclass(frozen=True)
class Args:
    payouts: int = 10_000  # rewarded verdicts, each one payout [count]
    restarts: int = 5  # judge restarts spread over the run [count]
    batch: int = 100  # verdicts per payout-path call [count]
    block_max: int = 256  # entries per audit block at most [count]
    interval_s: float = 1.0  # a partial block is sealed after this wait [s]
    recipients: int = 90  # distinct Hedera accounts paid round-robin [count]
    database_url: str = ""  # empty: SQLite in a temporary folder
    consensus_delay_ms: int = 0  # local network's time to consensus [ms]


class CrashingNetwork:
    """The SDK transport, except that ``crash()`` makes the next send die after its message
    was signed and stored (a kill -9 between storing and submitting)."""

    def __init__(self, transport: SdkHederaTransport) -> None:
        self.transport = transport
        self.crashing = False

    def crash(self) -> None:
        self.crashing = True

    def create_audit_topic(self) -> str:
        return self.transport.create_audit_topic()

    def prepare_audit_message(self, topic_id: str, message: bytes) -> PreparedTransaction:
        return self.transport.prepare_audit_message(topic_id, message)

    def submit(self, prepared: PreparedTransaction) -> SubmitOutcome:
        if self.crashing:
            raise SystemError("crashed before sending (injected)")
        return self.transport.submit(prepared)

    def audit_message_receipt(self, transaction_id: str) -> MessageReceipt | None:
        return self.transport.audit_message_receipt(transaction_id)


@dataclass
class Phase:
    """One judge lifetime: from a start to the next crash."""

    payouts: int = 0
    path_ms: list[float] = field(default_factory=list)  # payout path calls, in order
    collect_ms: list[float] = field(default_factory=list)  # the audit's share of each
    append_ms: list[float] = field(default_factory=list)  # one verdict journaled
    blocks_published: int = 0
    resent: int = 0  # blocks found signed-but-unsent at start
    load: float = 0.0


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = Args(**vars(parser.parse_args()))
    if args.payouts <= 0 or args.restarts < 0 or args.batch <= 0 or args.recipients <= 0:
        parser.error("payouts, batch and recipients must be positive, restarts >= 0")
    return args


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def main() -> None:
    args = parse_args()
    print(f"bench_audit: {' '.join(f'{k}={v}' for k, v in asdict(args).items() if v != '')}")
    print(f"cpus={os.cpu_count()} load_avg(1/5/15 min) at start: {load()}")
    with tempfile.TemporaryDirectory() as tmp, running_local_network(
            mirror_port=0, consensus_delay_s=args.consensus_delay_ms / 1000) as network:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        run(args, url, network)


def run(args: Args, url: str, network: LocalNetworkInfo) -> None:
    engine = make_engine(url)
    upgrade_to_head(engine)
    ledger = Ledger(engine, stake_minimum_tinybar=1, hold_tinybar=1)
    bank = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    accounts = [bank.create_account(PrivateKey.generate_ed25519().public_key())
                for _ in range(args.recipients)]
    for n in range(args.recipients):
        ledger.open_player(f"p{n}")
        ledger.deposit(f"dep-{n}", f"player:p{n}:available", 10**12)
    bank.close()
    bounds = [round(k * args.payouts / (args.restarts + 1)) for k in range(args.restarts + 2)]
    phases: list[Phase] = []
    started = time.perf_counter()
    for k in range(args.restarts + 1):
        phases.append(judge_lifetime(args, ledger, network, accounts, bounds[k], bounds[k + 1],
                                     crash=k < args.restarts))
    work_s = time.perf_counter() - started
    # the last start publishes what is left
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    journal = AuditJournal(engine)
    final = AuditPublisher(journal, transport, max_entries=args.block_max,
                           interval_s=args.interval_s)
    drained_at = time.perf_counter()
    assert final.drain(timeout_s=300), "the audit trail did not drain"
    drain_s = time.perf_counter() - drained_at
    transport.close()
    report(args, phases, journal, network, work_s, drain_s)
    engine.dispose()


def judge_lifetime(args: Args, ledger: Ledger, network: LocalNetworkInfo, accounts: list[str],
                   first: int, last: int, *, crash: bool) -> Phase:
    """A judge from its start to its crash: verdicts, payouts, settlement, publishing."""
    phase = Phase(payouts=last - first)
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    journal = AuditJournal(ledger.engine)
    phase.resent = sum(1 for b in journal.unpublished() if b.prepared is not None)
    network_view = CrashingNetwork(transport)
    publisher = AuditPublisher(journal, network_view, max_entries=args.block_max,
                               interval_s=args.interval_s, retry_max_s=1.0).start()
    settler = Settler(ledger, transport, max_payouts_per_run=10 * args.batch)
    published_before = journal.stats()["published_blocks"]
    for start in range(first, last, args.batch):
        for n in range(start, min(start + args.batch, last)):
            cid, payout = f"run-{n}", f"reward:run-{n}"
            ledger.request_payout(payout, f"player:p{n % args.recipients}:available",
                                  accounts[n % args.recipients], 1_000 + n % 7)
            t0 = time.perf_counter()
            journal.append("verdict", cid, verdict_record(cid, f"{n:064x}", 1_000 + n % 7, 0,
                                                          payout))
            phase.append_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        settler.run_once()  # the payout path: VerdictService.settle
        t1 = time.perf_counter()
        journal.collect_settled()
        t2 = time.perf_counter()
        phase.path_ms.append((t2 - t0) * 1000)
        phase.collect_ms.append((t2 - t1) * 1000)
    if crash:  # a send dies with its block's message signed and stored, then the process
        network_view.crash()
        with contextlib.suppress(SystemError):
            publisher.run_once(force=True)
    publisher.stop()
    phase.blocks_published = journal.stats()["published_blocks"] - published_before
    phase.load = os.getloadavg()[0]
    transport.close()
    return phase


def report(args: Args, phases: list[Phase], journal: AuditJournal, network: LocalNetworkInfo,
           work_s: float, drain_s: float) -> None:
    print(f"{'start':>5} {'payouts':>8} {'path p50 ms':>12} {'path max ms':>12} "
          f"{'1st path ms':>12} {'journal p50/max/1st ms':>23} {'append p50 ms':>14} "
          f"{'blocks pub.':>12} {'resent':>7} {'load 1m':>8}")
    for k, p in enumerate(phases):
        collect = (f"{statistics.median(p.collect_ms):.1f}/{max(p.collect_ms):.1f}/"
                   f"{p.collect_ms[0]:.1f}")
        print(f"{k:>5} {p.payouts:>8} {statistics.median(p.path_ms):>12.1f} "
              f"{max(p.path_ms):>12.1f} {p.path_ms[0]:>12.1f} {collect:>23} "
              f"{statistics.median(p.append_ms):>14.2f} {p.blocks_published:>12} "
              f"{p.resent:>7} {p.load:>8.2f}")
    stats = journal.stats()
    topic = journal.topic()
    assert topic is not None
    reader = MirrorTopicReader(network.mirror_rest_url or "")
    messages = list(reader.messages(topic))
    reader.close()
    roots: dict[int, str] = {}
    per_block: dict[int, int] = {}
    for m in messages:
        decoded = BlockMessage.decode(m.message)
        roots[decoded.block] = decoded.root
        per_block[decoded.block] = per_block.get(decoded.block, 0) + 1
    proven, entries = prove_all(journal, roots)
    verdicts = sum(1 for e in entries if e[0] == "verdict")
    settled = len(entries) - verdicts
    with journal.engine.connect() as conn:
        succeeded = conn.execute(sa.select(sa.func.count()).where(
            stx.c.state == "succeeded")).scalar_one()
    steady = statistics.median([ms for p in phases for ms in p.path_ms[1:]])
    firsts = [p.path_ms[0] for p in phases[1:]] or [steady]
    worst = max(firsts)
    print(f"work: {work_s:.1f} s for {args.payouts} payouts; final drain {drain_s:.2f} s")
    print(f"entries: {stats['entries']} (verdicts {verdicts}, settled transactions {settled}) "
          f"in {stats['blocks']} blocks of <= {args.block_max}")
    print(f"messages on topic {topic}: {len(messages)} for {len(per_block)} blocks "
          f"(max {max(per_block.values())} per block; {len(messages) / stats['entries']:.4f} "
          f"per entry); submissions {stats['submissions']}")
    print(f"proofs: {proven}/{stats['entries']} entries proven against the root on the topic "
          f"({verdicts}/{args.payouts} verdicts, {settled}/{succeeded} settled transactions)")
    print(f"payout path: steady p50 {steady:.1f} ms; first call after each of {len(firsts)} "
          f"restarts: {', '.join(f'{ms:.1f}' for ms in firsts)} ms")
    print(f"worst delay a restart adds to the payout path: {max(0.0, worst - steady):.1f} ms "
          f"(target <= 2000 ms)   load_avg {load()}")
    ok = (proven == stats["entries"] == args.payouts + succeeded and settled == succeeded
          and max(per_block.values()) <= 1 and worst - steady <= 2000)
    print("targets met" if ok else "TARGETS MISSED")


def prove_all(journal: AuditJournal, roots: dict[int, str]) -> tuple[int, list[tuple[str, int]]]:
    """Every entry's inclusion proof against its block's root as read from the topic."""
    proven, entries = 0, []
    for seq in sorted(roots):
        members = journal.entries_in(seq)
        leaves = [leaf_hash(bytes.fromhex(e.sha256)) for e in members]
        for index, entry in enumerate(members):
            path = inclusion_path(index, leaves)
            leaf = leaf_hash(bytes.fromhex(record_sha256(entry.record)))  # from the record
            found = root_from_path(leaf, index, len(leaves), path)
            entries.append((entry.kind, entry.id))
            proven += found is not None and found.hex() == roots[seq]
    return proven, entries


if __name__ == "__main__":
    main()
