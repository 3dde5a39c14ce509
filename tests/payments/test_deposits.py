"""Deposits sent on the local network are detected through the mirror REST view and credited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hiero_sdk_python import (
    AccountCreateTransaction,
    AccountId,
    Client,
    Hbar,
    PrivateKey,
    ResponseCode,
    TransferTransaction,
)

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, player_account
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.ledger.book import open_ledger
from crowdlearning.payments.deposits import DepositWatcher
from crowdlearning.payments.local_network.server import LocalNetworkInfo, running_local_network

HBAR = 100_000_000


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


@pytest.fixture
def client(network: LocalNetworkInfo) -> Iterator[Client]:
    client = Client.for_network({network.address: AccountId.from_string(network.node_account_id)})
    client.set_operator(AccountId.from_string(network.operator_account_id),
                        PrivateKey.from_string_der(network.operator_private_key_der_hex))
    yield client
    client.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    book = open_ledger(Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}"))
    book.open_player("alice")
    return book


def _send(client: Client, network: LocalNetworkInfo, amount: int, memo: str) -> None:
    """A player account of its own sends ``amount`` to the treasury with ``memo``."""
    key = PrivateKey.generate("ed25519")
    created = (AccountCreateTransaction().set_key_without_alias(key.public_key())
               .set_initial_balance(Hbar.from_tinybars(amount + HBAR)).execute(client))
    treasury = AccountId.from_string(network.operator_account_id)
    player = Client.for_network({network.address: AccountId.from_string(network.node_account_id)})
    player.set_operator(created.account_id, key)  # the player pays its own fee, as in real life
    try:
        tx = (TransferTransaction().add_hbar_transfer(created.account_id, -amount)
              .add_hbar_transfer(treasury, amount))
        tx.set_transaction_memo(memo)
        assert tx.execute(player).status == ResponseCode.SUCCESS
    finally:
        player.close()


def test_deposit_is_credited_once_and_unknown_memos_are_left_alone(
    client: Client, network: LocalNetworkInfo, ledger: Ledger
) -> None:
    # GIVEN two deposits naming alice and one naming nobody we know
    _send(client, network, 3 * HBAR, "deposit:alice")
    _send(client, network, HBAR, "deposit:alice")
    _send(client, network, 2 * HBAR, "deposit:mallory")
    watcher = DepositWatcher(ledger, network.mirror_rest_url, network.operator_account_id,
                             page_limit=2)
    # WHEN the watcher polls (pages of 2), then a second watcher re-reads from the beginning
    first = watcher.poll()
    again = DepositWatcher(ledger, network.mirror_rest_url, network.operator_account_id).poll()
    # THEN alice is credited 4 HBAR exactly once; mallory's transfer is reported, not credited
    assert sorted(d.amount_tinybar for d in first.credited) == [HBAR, 3 * HBAR]
    assert [d.amount_tinybar for d in first.unmatched] == [2 * HBAR]
    assert len(again.credited) == 2  # seen again, but the ledger's idempotency holds
    assert ledger.balance(player_account("alice", AccountKind.AVAILABLE)) == 4 * HBAR
    ledger.check_books()
    # AND a poll with nothing new does nothing
    assert watcher.poll().credited == []
