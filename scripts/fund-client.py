"""Fund a payments API client on the local network: send HBAR to the treasury with the memo
``client:<id>`` and credit it, as the game server's treasury reader would.

    .venv/bin/python scripts/fund-client.py acme 10        # 10 HBAR into client acme's balance

Local network only (``CROWDLEARNING_HEDERA_NETWORK=local``, the operator ``crowdlearning
hedera-node`` printed): the development operator opens a throwaway wallet account holding the
amount plus fees (a stand-in for the client's own wallet), that wallet sends the amount to the
treasury with the memo ``client:<id>`` (paying its own fee), and the script waits until it is
credited to ``client:<id>`` (once, under ``deposit:<transaction id>``): by the payments
service's own treasury reader (``payments/worker.py``, every ``PAYMENTS_DEPOSIT_POLL_S``), or by
the ``DepositWatcher`` this script runs over the treasury's new transactions meanwhile (for a
service started with that reader off), whichever reads it first. The ledger is the one at
``CROWDLEARNING_PAYMENTS_DATABASE_URL``, else ``CROWDLEARNING_DATABASE_URL``; the client must
exist (``crowdlearning payments issue-key <id>``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

HBAR = 100_000_000
FEE_MARGIN_TINYBAR = HBAR  # the wallet's own transfer fee (0.001 HBAR on the local network)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client_id", help="the payments API client to fund")
    parser.add_argument("hbar", type=int, help="whole HBAR to send (1 HBAR = 10^8 tinybar)")
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="how long to wait for the mirror view to show the transfer")
    args = parser.parse_args(argv)
    if args.hbar <= 0:
        parser.error("hbar must be positive")
    amount = args.hbar * HBAR

    from hiero_sdk_python import AccountId, PrivateKey, ResponseCode, TransferTransaction

    from crowdlearning.audit.mirror import default_mirror_url
    from crowdlearning.config import get_settings
    from crowdlearning.ledger import client_account, open_ledger
    from crowdlearning.payments.deposits import DepositWatcher, sdk_transaction_id
    from crowdlearning.payments.sdk_transport import SdkHederaTransport, client_for_network

    settings = get_settings()
    if settings.hedera_network != "local":
        print("fund-client.py is for the local network: on testnet/mainnet send the HBAR from "
              "your own wallet with the memo client:<id>", file=sys.stderr)
        return 2
    # the payments service's own database when one is set (as `crowdlearning payments` uses)
    url = getattr(settings, "payments_database_url", "") or settings.database_url
    ledger = open_ledger(settings.model_copy(update={"database_url": url}))
    transport = SdkHederaTransport.from_settings(settings)
    treasury = transport.treasury_account_id
    wallet = client_for_network(
        "local", local_address=f"{settings.hedera_local_host}:{settings.hedera_local_port}")
    try:
        key = PrivateKey.generate_ed25519()
        sender = transport.create_account(key.public_key(), amount + FEE_MARGIN_TINYBAR)
        watcher = DepositWatcher(ledger, default_mirror_url(settings), treasury)
        watcher.start_at_end()  # read only what comes after the wallet's creation
        wallet.set_operator(AccountId.from_string(sender), key)  # the wallet pays its own fee
        tx = (TransferTransaction()
              .add_hbar_transfer(AccountId.from_string(sender), -amount)
              .add_hbar_transfer(AccountId.from_string(treasury), amount))
        tx.set_transaction_memo(f"client:{args.client_id}")
        receipt = tx.execute(wallet)
        if receipt.status != ResponseCode.SUCCESS:
            print(f"transfer failed: {ResponseCode(receipt.status).name}", file=sys.stderr)
            return 1
        start = tx.transaction_id.valid_start
        tx_id = f"{tx.transaction_id.account_id}@{start.seconds}.{start.nanos:09d}"
        print(f"sent {amount} tinybar from wallet {sender} to treasury {treasury} "
              f"with memo client:{args.client_id}: transaction {tx_id}")
        deadline = time.monotonic() + args.timeout_s
        while True:
            polled = watcher.poll()
            if any(sdk_transaction_id(d.transaction_id) == tx_id for d in polled.credited):
                break
            if any(sdk_transaction_id(d.transaction_id) == tx_id for d in polled.unmatched):
                print(f"no client {args.client_id!r} in the ledger: the HBAR stays on the "
                      "treasury (run `crowdlearning payments issue-key` first)", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print("the mirror view did not show the transfer in time", file=sys.stderr)
                return 1
            time.sleep(0.5)
        balance = ledger.balance(client_account(args.client_id))
        print(f"credited client {args.client_id}: balance {balance} tinybar")
        return 0
    finally:
        wallet.close()
        transport.close()


if __name__ == "__main__":
    sys.exit(main())
