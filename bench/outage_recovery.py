"""Pending payouts after a Hedera outage: how long after the network returns until they settle.

Issue 14 "done when": after a 200-second network outage, pending payouts settle within 30 s of
the network's return with no operator action. In-process: the local network (receipts forgotten
180 s after consensus, as on the real network; mirror view kept up) and the SDK transport with
the SDK's own node backoff (8 s doubling to 3,600 s). As in the game server, settlement runs
every ``--settle-interval-s`` on a thread of its own and a deposit-reader-like thread queries
the node as often, both failing throughout the outage. Real time, no clock tricks.

    .venv/bin/python bench/outage_recovery.py [--outage-s 200] [--payouts 30] [--no-reset]

``--no-reset`` disables the transport's node reset (the behaviour before the fix), for contrast.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from hiero_sdk_python import PrivateKey

from crowdlearning.ledger import Ledger, make_engine
from crowdlearning.ledger.migrate import upgrade_to_head
from crowdlearning.payments.local_network import LocalNetwork, LocalNetworkServer
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage-s", type=float, default=200.0)
    parser.add_argument("--payouts", type=int, default=30, help="pending during the outage")
    parser.add_argument("--settle-interval-s", type=float, default=2.0)
    parser.add_argument("--give-up-s", type=float, default=300.0, help="after the return")
    parser.add_argument("--no-reset", action="store_true", help="the SDK's backoff as it was")
    args = parser.parse_args()
    if args.no_reset:
        SdkHederaTransport._reset_nodes = lambda self: None  # type: ignore[method-assign]

    network = LocalNetwork.open(receipt_ttl_s=180)
    server = LocalNetworkServer(network, mirror_port=0)
    info = server.start()
    transport = SdkHederaTransport.for_local_network(info, request_timeout_s=10)
    tmp = Path(tempfile.mkdtemp(prefix="outage-bench-"))
    engine = make_engine(f"sqlite:///{tmp / 'ledger.db'}")
    upgrade_to_head(engine)
    ledger = Ledger(engine, stake_minimum_tinybar=1, hold_tinybar=1)
    accounts = [
        transport.create_account(PrivateKey.generate_ed25519().public_key())
        for _ in range(args.payouts)
    ]
    for n in range(args.payouts):
        ledger.open_player(f"p{n}")
        ledger.deposit(f"dep-{n}", f"player:p{n}:available", 10_000)
    settler = Settler(ledger, transport)
    print(f"outage_recovery: outage_s={args.outage_s} payouts={args.payouts} "
          f"settle_interval_s={args.settle_interval_s} reset={'off' if args.no_reset else 'on'}")

    stop = threading.Event()
    errors = {"settle": 0, "balance": 0}

    def settle_loop() -> None:
        while not stop.wait(args.settle_interval_s):
            errors["settle"] += settler.run_once().transport_errors

    def reader_loop() -> None:  # the deposit reader and audit publisher share the transport
        while not stop.wait(args.settle_interval_s):
            try:
                transport.account_balance(transport.treasury_account_id)
            except Exception:  # counted: the outage
                errors["balance"] += 1

    for n, account in enumerate(accounts):
        ledger.request_payout(f"po{n}", f"player:p{n}:available", account, 1_000 + n)
    server.stop(0, mirror=False)
    outage_start = time.monotonic()
    threads = [threading.Thread(target=f, daemon=True) for f in (settle_loop, reader_loop)]
    for thread in threads:
        thread.start()
    time.sleep(args.outage_s)
    server.start()
    back = time.monotonic()
    print(f"network back after {back - outage_start:.1f} s of outage "
          f"(settle errors {errors['settle']}, query errors {errors['balance']}); {load()}")
    settled_s = None
    while time.monotonic() - back < args.give_up_s:
        if all(ledger.get_payout(f"po{n}").state.value == "posted" for n in range(args.payouts)):
            settled_s = time.monotonic() - back
            break
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    paid = [transport.account_balance(a) for a in accounts]
    exact = paid == [1_000 + n for n in range(args.payouts)]
    result = "never (gave up)" if settled_s is None else f"{settled_s:.1f} s"
    print(f"time to settle after return: {result}; chain balances exact: {exact}; {load()}")
    transport.close()
    server.stop()


if __name__ == "__main__":
    main()
