"""Deposits through Hedera: HBAR sent to the treasury with the wallet's memo is credited once."""

from __future__ import annotations

import time

from hiero_sdk_python import AccountId, Client, Hbar, PrivateKey, TransferTransaction

from crowdlearning.server.runtime import DEPOSIT_CURSOR
from tests.server.conftest import TestClient, signup

HBAR = 100_000_000


def _send_to_treasury(client: TestClient, amount: int, memo: str) -> None:
    """A player's own account (funded by the operator) sends ``amount`` with ``memo``."""
    runtime = client.app.state.runtime
    key = PrivateKey.generate_ed25519()
    account = runtime.transport.create_account(key.public_key(), amount + HBAR)
    info = runtime.network
    sdk = Client.for_network({info.address: AccountId.from_string(info.node_account_id)})
    sdk.set_operator(AccountId.from_string(account), key)  # the player pays its own fee
    try:
        tx = (TransferTransaction()
              .add_hbar_transfer(AccountId.from_string(account), Hbar.from_tinybars(-amount))
              .add_hbar_transfer(AccountId.from_string(runtime.transport.treasury_account_id),
                                 Hbar.from_tinybars(amount))
              .set_transaction_memo(memo))
        receipt = tx.execute(sdk)
        assert receipt.status == 22, receipt.status  # SUCCESS
    finally:
        sdk.close()


def test_hbar_sent_with_the_wallet_memo_is_credited_once(client: TestClient) -> None:
    # GIVEN a player and the deposit instructions the wallet shows
    signup(client)
    wallet = client.get("/api/wallet").json()
    assert wallet["deposit_account"] == client.app.state.runtime.transport.treasury_account_id
    assert wallet["deposit_memo"].startswith("deposit:p")
    referee = client.app.state.referee
    referee.poll_deposits_once()  # whatever earlier tests sent is read first
    # WHEN 2 HBAR are sent on Hedera with that memo, and 1 HBAR with a memo naming nobody
    _send_to_treasury(client, 2 * HBAR, wallet["deposit_memo"])
    _send_to_treasury(client, HBAR, "deposit:p999999")
    referee.poll_deposits_once()  # (the server's own reader may have been first)
    credited = client.get("/api/wallet").json()["available_tinybar"]
    referee.poll_deposits_once()
    # THEN exactly the player's deposit is credited, once, and the reader's place is kept
    assert credited == wallet["available_tinybar"] + 2 * HBAR
    assert client.get("/api/wallet").json()["available_tinybar"] == credited
    runtime = client.app.state.runtime
    assert runtime.store.cursor(DEPOSIT_CURSOR) not in (None, "0.000000000")


def test_rereading_from_the_start_credits_nothing_twice(client: TestClient) -> None:
    # GIVEN a deposit that has been credited
    signup(client)
    wallet = client.get("/api/wallet").json()
    referee = client.app.state.referee
    _send_to_treasury(client, HBAR, wallet["deposit_memo"])
    referee.poll_deposits_once()
    credited = client.get("/api/wallet").json()["available_tinybar"]
    # WHEN the reader forgets its place (a lost cursor) and reads the whole history again
    watcher = client.app.state.runtime.deposits
    watcher.cursor = "0.000000000"
    referee.poll_deposits_once()
    # THEN no balance changes
    assert credited == wallet["available_tinybar"] + HBAR
    assert client.get("/api/wallet").json()["available_tinybar"] == credited


def test_the_running_server_credits_deposits_on_its_own(client: TestClient) -> None:
    # GIVEN a player, and the server's own deposit reader running in the background
    signup(client)
    wallet = client.get("/api/wallet").json()
    # WHEN HBAR arrives on Hedera with the player's memo, and nobody polls by hand
    _send_to_treasury(client, HBAR, wallet["deposit_memo"])
    deadline = time.monotonic() + 30
    balance = wallet["available_tinybar"]
    while balance == wallet["available_tinybar"] and time.monotonic() < deadline:
        time.sleep(0.2)
        balance = client.get("/api/wallet").json()["available_tinybar"]
    # THEN within a few poll intervals the wallet shows it
    assert balance == wallet["available_tinybar"] + HBAR
