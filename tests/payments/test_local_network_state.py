"""The state file (snapshot + journal): balances, operator, seen ids survive a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from hiero_sdk_python import (
    AccountId,
    Client,
    CryptoGetAccountBalanceQuery,
    PrivateKey,
    TopicCreateTransaction,
    TopicMessageSubmitTransaction,
    TransferTransaction,
)
from hiero_sdk_python.exceptions import PrecheckError
from hiero_sdk_python.response_code import ResponseCode

from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network

pytestmark = pytest.mark.timeout(60)


def connect(info: LocalNetworkInfo) -> Client:
    client = Client.for_network({info.address: AccountId.from_string(info.node_account_id)})
    key = PrivateKey.from_string_der(info.operator_private_key_der_hex)
    return client.set_operator(
        AccountId.from_string(info.operator_account_id), key
    ).set_max_attempts(1)


def test_state_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "hedera-state.json"
    treasury = AccountId.from_string("0.0.2")
    # GIVEN a network with a state file, where the operator sent 12345 tinybar to 0.0.2
    with running_local_network(state_path=state) as first:
        client = connect(first)
        tx = TransferTransaction().add_hbar_transfer(
            AccountId.from_string(first.operator_account_id), -12345
        )
        tx.add_hbar_transfer(treasury, 12345).freeze_with(client).sign(client.operator_private_key)
        signed = tx.to_bytes()
        assert tx.execute(client).status == ResponseCode.SUCCESS
        before = (
            CryptoGetAccountBalanceQuery()
            .set_account_id(treasury)
            .execute(client)
            .hbars.to_tinybars()
        )
        topic = TopicCreateTransaction().execute(client).topic_id
        TopicMessageSubmitTransaction().set_topic_id(topic).set_message(b"one").execute(client)
        client.close()
    journal = state.with_name(state.name + ".journal")
    assert len(journal.read_text().splitlines()) == 3  # transfer, topic, message
    with journal.open("a") as torn:  # a crash in the middle of an append
        torn.write('{"consensus_ns": 17, "transac')
    # WHEN it is restarted from the same file
    with running_local_network(state_path=state) as second:
        client = connect(second)
        after = (
            CryptoGetAccountBalanceQuery()
            .set_account_id(treasury)
            .execute(client)
            .hbars.to_tinybars()
        )
        # THEN the operator and balances are the same, and the old transaction is still a duplicate
        assert second.operator_account_id == first.operator_account_id
        assert after == before
        with pytest.raises(PrecheckError) as raised:
            TransferTransaction.from_bytes(signed).execute(client)
        assert raised.value.status == ResponseCode.DUPLICATE_TRANSACTION
        # AND the topic continues its sequence
        message = TopicMessageSubmitTransaction().set_topic_id(topic).set_message(b"two")
        assert message.execute(client).topic_sequence_number == 2
        client.close()
