"""Hedera payouts against the local network: recipients per transaction, latency, throughput.

Runs the local network in-process (gRPC on 127.0.0.1, background threads) and pays ``payouts``
recipients twice through ``SdkHederaTransport``: batched (as many recipients per CryptoTransfer as
the 10-adjustment limit allows: 1 treasury debit + 9 credits) and one recipient per transaction.
Each transaction is prepared (signed), submitted, then its receipt polled until SUCCESS;
latency is submit -> SUCCESS receipt. One transaction in flight at a time.

    .venv/bin/python bench/bench_hedera.py [--payouts 900] [--consensus-delay-ms 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict, dataclass

from hiero_sdk_python import PrivateKey

from crowdlearning.payments.local_network import running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport


@dataclass(frozen=True)
class Args:
    payouts: int = 900  # recipients paid per mode [count]
    recipients: int = 90  # distinct recipient accounts, paid round-robin [count]
    amount_tinybar: int = 1000  # paid to each recipient [tinybar]
    receipt_timeout_s: float = 10.0  # bound on waiting for one receipt [s]
    consensus_delay_ms: int = 0  # local network's time to consensus (0 = immediate) [ms]


@dataclass(frozen=True)
class ModeResult:
    recipients_per_tx: int
    transactions: int
    payouts: int
    latency_ms_p50: float
    latency_ms_p95: float
    wall_s: float

    @property
    def payouts_per_s(self) -> float:
        return self.payouts / self.wall_s

    @property
    def transactions_per_s(self) -> float:
        return self.transactions / self.wall_s


def parse_args() -> Args:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, value in asdict(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = Args(**vars(parser.parse_args()))
    if args.payouts <= 0 or args.recipients <= 0 or args.amount_tinybar <= 0:
        parser.error("payouts, recipients and amount must be positive")
    if not 0 <= args.consensus_delay_ms <= 10_000:
        parser.error("consensus delay must be within 0..10000 ms")
    return args


def pay(
    transport: SdkHederaTransport, recipients: list[str], args: Args, per_tx: int
) -> ModeResult:
    """Pay ``args.payouts`` recipients, ``per_tx`` per transaction; time every submit -> receipt."""
    treasury = transport.treasury_account_id
    latencies_ms: list[float] = []
    start = time.perf_counter()
    for first in range(0, args.payouts, per_tx):
        batch = [
            recipients[i % len(recipients)] for i in range(first, min(first + per_tx, args.payouts))
        ]
        legs = {treasury: -args.amount_tinybar * len(batch)} | dict.fromkeys(
            batch, args.amount_tinybar
        )
        prepared = transport.prepare_transfer(legs, memo="bench payout")
        sent = time.perf_counter()
        if not transport.submit(prepared).accepted:
            raise RuntimeError(f"payout {prepared.transaction_id} refused")
        receipt = transport.wait_for_receipt(
            prepared.transaction_id, timeout_s=args.receipt_timeout_s
        )
        if receipt.status != "SUCCESS":
            raise RuntimeError(f"payout {prepared.transaction_id}: {receipt.status}")
        latencies_ms.append((time.perf_counter() - sent) * 1000)
    wall_s = time.perf_counter() - start
    cuts = statistics.quantiles(latencies_ms, n=20) if len(latencies_ms) > 1 else latencies_ms * 19
    return ModeResult(
        per_tx, len(latencies_ms), args.payouts, statistics.median(latencies_ms), cuts[18], wall_s
    )


def report(args: Args, batched: ModeResult, single: ModeResult) -> None:
    print("bench_hedera:", " ".join(f"{k}={v}" for k, v in asdict(args).items()))
    print(
        "network: local (in-process gRPC on 127.0.0.1), one transaction in flight, "
        f"consensus delay {args.consensus_delay_ms} ms"
    )
    columns = (
        ("recip/tx", 9),
        ("txs", 7),
        ("p50 ms", 9),
        ("p95 ms", 9),
        ("payouts/s", 11),
        ("txs/s", 9),
    )
    print(f"{'mode':<10}" + "".join(f"{name:>{width}}" for name, width in columns))
    for name, r in (("batched", batched), ("single", single)):
        print(
            f"{name:<10}{r.recipients_per_tx:>9}{r.transactions:>7}{r.latency_ms_p50:>9.2f}"
            f"{r.latency_ms_p95:>9.2f}{r.payouts_per_s:>11.1f}{r.transactions_per_s:>9.1f}"
        )
    print(
        f"batched/single: payouts/s x{batched.payouts_per_s / single.payouts_per_s:.2f}, "
        f"transactions x{single.transactions / batched.transactions:.2f} fewer, "
        f"p50 latency x{batched.latency_ms_p50 / single.latency_ms_p50:.2f}"
    )


def main() -> None:
    args = parse_args()
    with running_local_network(consensus_delay_s=args.consensus_delay_ms / 1000) as info:
        transport = SdkHederaTransport.for_local_network(info)
        recipients = [
            transport.create_account(PrivateKey.generate_ed25519().public_key())
            for _ in range(args.recipients)
        ]
        per_tx = transport.max_transfers_per_transaction - 1  # one leg debits the treasury
        batched = pay(transport, recipients, args, per_tx)
        single = pay(transport, recipients, args, 1)
        transport.close()
    report(args, batched, single)


if __name__ == "__main__":
    main()
