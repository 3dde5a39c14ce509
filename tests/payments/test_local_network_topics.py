"""HCS topics on the local network through the real SDK, and the mirror REST view of them."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hiero_sdk_python import (
    AccountCreateTransaction,
    AccountId,
    Client,
    Hbar,
    PrivateKey,
    TopicCreateTransaction,
    TopicMessageSubmitTransaction,
    TransactionId,
    TransferTransaction,
)
from hiero_sdk_python.response_code import ResponseCode

from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


@pytest.fixture(scope="module")
def client(network: LocalNetworkInfo) -> Iterator[Client]:
    client = Client.for_network({network.address: AccountId.from_string(network.node_account_id)})
    key = PrivateKey.from_string_der(network.operator_private_key_der_hex)
    client.set_operator(AccountId.from_string(network.operator_account_id), key)
    client.set_max_attempts(2)
    yield client
    client.close()


def mirror(network: LocalNetworkInfo, path: str) -> Any:
    assert network.mirror_rest_url is not None
    with urllib.request.urlopen(network.mirror_rest_url + path, timeout=5) as response:
        return json.load(response)


def test_topic_messages_are_sequenced_and_hash_chained(
    client: Client, network: LocalNetworkInfo
) -> None:
    # GIVEN a topic only the operator may post to
    operator_key = PrivateKey.from_string_der(network.operator_private_key_der_hex)
    created = (
        TopicCreateTransaction()
        .set_memo("audit")
        .set_submit_key(operator_key.public_key())
        .execute(client)
    )
    assert created.status == ResponseCode.SUCCESS
    # WHEN two messages are submitted
    receipts = [
        TopicMessageSubmitTransaction()
        .set_topic_id(created.topic_id)
        .set_message(m)
        .execute(client)
        for m in (b"verdict-hash-1", b"payout-hash-2")
    ]
    # THEN they get sequence numbers 1, 2 and a running hash that changes with each message
    assert [r.status for r in receipts] == [ResponseCode.SUCCESS] * 2
    assert [r.topic_sequence_number for r in receipts] == [1, 2]
    hashes = [r.topic_running_hash for r in receipts]
    assert len(set(hashes)) == 2 and all(len(h) == 48 for h in hashes)
    # AND the mirror REST view serves them in order, base64-encoded
    page = mirror(network, f"/topics/{created.topic_id}/messages")
    assert [m["sequence_number"] for m in page["messages"]] == [1, 2]
    assert page["messages"][0]["message"] == "dmVyZGljdC1oYXNoLTE="
    newer = mirror(network, f"/topics/{created.topic_id}/messages?sequencenumber=gt:1")
    assert [m["sequence_number"] for m in newer["messages"]] == [2]


def test_submit_key_is_enforced(client: Client, network: LocalNetworkInfo) -> None:
    operator_key = PrivateKey.from_string_der(network.operator_private_key_der_hex)
    created = TopicCreateTransaction().set_submit_key(operator_key.public_key()).execute(client)
    # an outsider pays for and signs its own message, but lacks the submit key
    outsider_key = PrivateKey.generate_ed25519()
    tx = AccountCreateTransaction().set_key_without_alias(outsider_key.public_key())
    outsider = tx.set_initial_balance(Hbar(1)).execute(client).account_id
    message = TopicMessageSubmitTransaction().set_topic_id(created.topic_id).set_message(b"forged")
    message.set_transaction_id(TransactionId.generate(outsider)).freeze_with(client).sign(
        outsider_key
    )
    assert message.execute(client).status == ResponseCode.INVALID_SIGNATURE


def test_mirror_lists_an_accounts_transactions(client: Client, network: LocalNetworkInfo) -> None:
    # GIVEN a deposit into a fresh account
    key = PrivateKey.generate_ed25519()
    account = (
        AccountCreateTransaction()
        .set_key_without_alias(key.public_key())
        .execute(client)
        .account_id
    )
    operator = AccountId.from_string(network.operator_account_id)
    TransferTransaction().add_hbar_transfer(operator, -4242).add_hbar_transfer(
        account, 4242
    ).execute(client)
    # WHEN the mirror REST view is asked for the account's transactions
    page = mirror(network, f"/transactions?account.id={account}&order=asc")
    # THEN the deposit is listed, successful, with its transfers
    deposit = page["transactions"][-1]
    assert deposit["name"] == "CRYPTOTRANSFER" and deposit["result"] == "SUCCESS"
    assert {"account": str(account), "amount": 4242, "is_approval": False} in deposit["transfers"]
    assert mirror(network, f"/accounts/{account}")["balance"]["balance"] == 4242
    # AND the deposit can be fetched by its transaction id
    by_id = mirror(network, f"/transactions/{deposit['transaction_id']}")
    assert by_id["transactions"] == [deposit]
