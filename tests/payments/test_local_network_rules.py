"""Rules the SDK cannot be made to break on its own: checked on hand-built protobufs.

These drive ``LocalNetwork.submit`` directly (no gRPC) with transactions built and signed here,
plus threshold keys and ``receiverSigRequired`` through the real SDK and gRPC.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hiero_sdk_python import (
    AccountCreateTransaction,
    AccountId,
    Client,
    CryptoGetAccountBalanceQuery,
    Hbar,
    PrivateKey,
    TransactionId,
    TransferTransaction,
)
from hiero_sdk_python.crypto.key_list import KeyList
from hiero_sdk_python.hapi.services import (
    basic_types_pb2,
    crypto_transfer_pb2,
    duration_pb2,
    transaction_contents_pb2,
    transaction_pb2,
)
from hiero_sdk_python.response_code import ResponseCode

from crowdlearning.payments.local_network import (
    LocalNetwork,
    LocalNetworkInfo,
    running_local_network,
)
from crowdlearning.payments.local_network.ids import account_proto, timestamp_proto

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def local() -> LocalNetwork:
    return LocalNetwork.open()


def body(
    network: LocalNetwork, legs: list[tuple[str, int]], **fields: object
) -> transaction_pb2.TransactionBody:
    """A CryptoTransfer body paid by the dev operator, valid from 5 s ago for 120 s."""
    amounts = [basic_types_pb2.AccountAmount(accountID=account_proto(a), amount=n) for a, n in legs]
    tx_id = basic_types_pb2.TransactionID(
        accountID=account_proto(network.operator.account_id),
        transactionValidStart=timestamp_proto(time.time_ns() - 5_000_000_000),
    )
    return transaction_pb2.TransactionBody(
        transactionID=tx_id,
        nodeAccountID=fields.pop("nodeAccountID", account_proto("0.0.3")),
        transactionFee=fields.pop("transactionFee", 100_000_000),
        transactionValidDuration=duration_pb2.Duration(seconds=120),
        cryptoTransfer=crypto_transfer_pb2.CryptoTransferTransactionBody(
            transfers=basic_types_pb2.TransferList(accountAmounts=amounts)
        ),
        **fields,
    )


def signed(
    tx_body: transaction_pb2.TransactionBody, *keys: PrivateKey
) -> transaction_pb2.Transaction:
    body_bytes = tx_body.SerializeToString()
    pairs = [
        basic_types_pb2.SignaturePair(
            pubKeyPrefix=k.public_key().to_bytes_raw(), ed25519=k.sign(body_bytes)
        )
        for k in keys
    ]
    signed_tx = transaction_contents_pb2.SignedTransaction(
        bodyBytes=body_bytes, sigMap=basic_types_pb2.SignatureMap(sigPair=pairs)
    )
    return transaction_pb2.Transaction(signedTransactionBytes=signed_tx.SerializeToString())


def test_well_formed_transfer_is_ok(local: LocalNetwork) -> None:
    op = local.operator
    assert (
        local.submit(signed(body(local, [(op.account_id, -5), ("0.0.2", 5)]), op.private_key()))
        == "OK"
    )


@pytest.mark.parametrize(
    ("legs", "fields", "expected"),
    [
        ([("OP", -5), ("0.0.2", 3), ("0.0.2", 2)], {}, "ACCOUNT_REPEATED_IN_ACCOUNT_AMOUNTS"),
        ([("OP", -5), ("0.0.2", 5)], {"memo": "m" * 101}, "MEMO_TOO_LONG"),
        ([("OP", -5), ("0.0.2", 5)], {"transactionFee": 1}, "INSUFFICIENT_TX_FEE"),
        (
            [("OP", -5), ("0.0.2", 5)],
            {"nodeAccountID": account_proto("0.0.4")},
            "INVALID_NODE_ACCOUNT",
        ),
    ],
)
def test_precheck_codes(
    local: LocalNetwork, legs: list[tuple[str, int]], fields: dict[str, object], expected: str
) -> None:
    op = local.operator
    legs = [(op.account_id if a == "OP" else a, n) for a, n in legs]
    assert local.submit(signed(body(local, legs, **fields), op.private_key())) == expected


def test_unsigned_and_garbage_transactions(local: LocalNetwork) -> None:
    op = local.operator
    assert (
        local.submit(signed(body(local, [(op.account_id, -5), ("0.0.2", 5)])))
        == "INVALID_SIGNATURE"
    )
    assert (
        local.submit(transaction_pb2.Transaction(signedTransactionBytes=b"\xff\x00garbage"))
        == "INVALID_TRANSACTION"
    )
    oversize = transaction_pb2.Transaction(signedTransactionBytes=bytes(7000))
    assert local.submit(oversize) == "TRANSACTION_OVERSIZE"


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(operator_key_type="ecdsa") as info:
        yield info


@pytest.fixture(scope="module")
def client(network: LocalNetworkInfo) -> Iterator[Client]:
    client = Client.for_network({network.address: AccountId.from_string(network.node_account_id)})
    key = PrivateKey.from_string_der(network.operator_private_key_der_hex)
    client.set_operator(AccountId.from_string(network.operator_account_id), key).set_max_attempts(2)
    yield client
    client.close()


def test_receiver_signature_required_is_enforced(client: Client, network: LocalNetworkInfo) -> None:
    # GIVEN an account that must sign to receive (the operator has an ECDSA key here)
    key = PrivateKey.generate_ed25519()
    create = (
        AccountCreateTransaction()
        .set_key_without_alias(key.public_key())
        .set_receiver_signature_required(True)
    )
    account = create.freeze_with(client).sign(key).execute(client).account_id
    operator = AccountId.from_string(network.operator_account_id)
    # WHEN paid without / with its signature THEN only the signed payment goes through
    unsigned = TransferTransaction().add_hbar_transfer(operator, -10).add_hbar_transfer(account, 10)
    assert unsigned.execute(client).status == ResponseCode.INVALID_SIGNATURE
    signed_tx = (
        TransferTransaction().add_hbar_transfer(operator, -10).add_hbar_transfer(account, 10)
    )
    assert signed_tx.freeze_with(client).sign(key).execute(client).status == ResponseCode.SUCCESS


def test_threshold_key_needs_enough_signatures(client: Client, network: LocalNetworkInfo) -> None:
    # GIVEN an account held by 2 of 3 keys
    keys = [PrivateKey.generate_ed25519() for _ in range(3)]
    threshold = KeyList([k.public_key() for k in keys], threshold=2)
    create = (
        AccountCreateTransaction().set_key_without_alias(threshold).set_initial_balance(Hbar(1))
    )
    account = create.execute(client).account_id
    operator = AccountId.from_string(network.operator_account_id)

    def spend(*signers: PrivateKey) -> ResponseCode:
        tx = TransferTransaction().add_hbar_transfer(account, -10).add_hbar_transfer(operator, 10)
        tx.set_transaction_id(TransactionId.generate(operator)).freeze_with(client)
        for signer in signers:
            tx.sign(signer)
        return tx.execute(client).status

    # THEN one signature is not enough, two are
    assert spend(keys[0]) == ResponseCode.INVALID_SIGNATURE
    assert spend(keys[0], keys[2]) == ResponseCode.SUCCESS
    balance = CryptoGetAccountBalanceQuery().set_account_id(account).execute(client)
    assert balance.hbars.to_tinybars() == Hbar(1).to_tinybars() - 10
