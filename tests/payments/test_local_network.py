"""The real SDK against the local network over real gRPC on 127.0.0.1: what works, what is refused.

Pre-check rejections surface as the SDK's ``PrecheckError``; consensus failures as receipt
statuses (``validate_status`` off), exactly as on the real network.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from hiero_sdk_python import (
    AccountCreateTransaction,
    AccountId,
    Client,
    CryptoGetAccountBalanceQuery,
    Hbar,
    PrivateKey,
    TransactionId,
    TransactionRecordQuery,
    TransferTransaction,
)
from hiero_sdk_python.exceptions import PrecheckError
from hiero_sdk_python.hapi.services import timestamp_pb2
from hiero_sdk_python.response_code import ResponseCode

from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.local_network.fees import FEE_SCHEDULE_TINYBAR

pytestmark = pytest.mark.timeout(60)

TRANSFER_FEE = FEE_SCHEDULE_TINYBAR["cryptoTransfer"]
HBAR = 100_000_000  # tinybar


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network() as info:
        yield info


@pytest.fixture(scope="module")
def client(network: LocalNetworkInfo) -> Iterator[Client]:
    client = Client.for_network({network.address: AccountId.from_string(network.node_account_id)})
    client.set_operator(operator_id(network), operator_key(network))
    client.set_max_attempts(2)
    yield client
    client.close()


def operator_id(network: LocalNetworkInfo) -> AccountId:
    return AccountId.from_string(network.operator_account_id)


def operator_key(network: LocalNetworkInfo) -> PrivateKey:
    return PrivateKey.from_string_der(network.operator_private_key_der_hex)


def new_account(
    client: Client, balance_tinybar: int, key_type: str = "ed25519"
) -> tuple[AccountId, PrivateKey]:
    key = PrivateKey.generate(key_type)
    tx = AccountCreateTransaction().set_key_without_alias(key.public_key())
    receipt = tx.set_initial_balance(Hbar.from_tinybars(balance_tinybar)).execute(client)
    assert receipt.status == ResponseCode.SUCCESS
    return receipt.account_id, key


def balance(client: Client, account: AccountId) -> int:
    return (
        CryptoGetAccountBalanceQuery().set_account_id(account).execute(client).hbars.to_tinybars()
    )


def transfer(legs: dict[AccountId, int]) -> TransferTransaction:
    tx = TransferTransaction()
    for account, amount in legs.items():
        tx.add_hbar_transfer(account, amount)
    return tx


def tx_id_at(payer: AccountId, epoch_s: float) -> TransactionId:
    return TransactionId(payer, timestamp_pb2.Timestamp(seconds=int(epoch_s), nanos=0))


def precheck_status(tx: TransferTransaction, client: Client) -> str:
    with pytest.raises(PrecheckError) as raised:
        tx.execute(client)
    return ResponseCode(raised.value.status).name


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa"])
def test_create_account_transfer_and_balance(
    client: Client, network: LocalNetworkInfo, key_type: str
) -> None:
    # GIVEN a new account holding 5 HBAR, with an ED25519 or secp256k1 key
    account, key = new_account(client, 5 * HBAR, key_type)
    payer_before = balance(client, operator_id(network))
    # WHEN the account sends 2 HBAR to the operator, signing as sender
    tx = (
        transfer({account: -2 * HBAR, operator_id(network): 2 * HBAR}).freeze_with(client).sign(key)
    )
    receipt = tx.execute(client)
    # THEN it succeeds, and the operator (the payer) gains 2 HBAR minus the fee
    assert receipt.status == ResponseCode.SUCCESS
    assert balance(client, account) == 3 * HBAR
    assert balance(client, operator_id(network)) == payer_before + 2 * HBAR - TRANSFER_FEE


def test_receipt_and_record_report_consensus(client: Client, network: LocalNetworkInfo) -> None:
    account, _ = new_account(client, 0)
    before_ns = time.time_ns()
    tx = transfer({operator_id(network): -700, account: 700})
    response = tx.execute(client, wait_for_receipt=False)
    receipt = response.get_receipt(client)
    record = TransactionRecordQuery().set_transaction_id(tx.transaction_id).execute(client)
    assert receipt.status == ResponseCode.SUCCESS
    stamp = record.consensus_timestamp
    assert stamp.seconds * 1_000_000_000 + stamp.nanos >= before_ns
    assert record.transaction_fee == TRANSFER_FEE
    assert record.transfers[account] == 700


def test_missing_sender_signature_fails_and_moves_nothing(
    client: Client, network: LocalNetworkInfo
) -> None:
    account, _ = new_account(client, 5 * HBAR)
    # WHEN the operator tries to take hbar out of an account without that account's signature
    receipt = transfer({account: -HBAR, operator_id(network): HBAR}).execute(client)
    # THEN consensus refuses it; the account keeps its balance
    assert receipt.status == ResponseCode.INVALID_SIGNATURE
    assert balance(client, account) == 5 * HBAR


def test_signature_by_the_wrong_key_is_refused(client: Client, network: LocalNetworkInfo) -> None:
    account, _ = new_account(client, 5 * HBAR)
    impostor = PrivateKey.generate_ed25519()
    tx = transfer({account: -HBAR, operator_id(network): HBAR}).freeze_with(client).sign(impostor)
    assert tx.execute(client).status == ResponseCode.INVALID_SIGNATURE
    assert balance(client, account) == 5 * HBAR


def test_payer_signature_is_checked_at_precheck(client: Client, network: LocalNetworkInfo) -> None:
    account, _ = new_account(client, 5 * HBAR)
    # a transaction paid by `account` but signed only by the operator
    tx = transfer({operator_id(network): -1, account: 1}).set_transaction_id(
        tx_id_at(account, time.time() - 5)
    )
    tx.freeze_with(client).sign(operator_key(network))
    assert precheck_status(tx, client) == "INVALID_SIGNATURE"
    assert balance(client, account) == 5 * HBAR


def test_insufficient_sender_balance(client: Client, network: LocalNetworkInfo) -> None:
    account, key = new_account(client, HBAR)
    tx = (
        transfer({account: -2 * HBAR, operator_id(network): 2 * HBAR}).freeze_with(client).sign(key)
    )
    assert tx.execute(client).status == ResponseCode.INSUFFICIENT_ACCOUNT_BALANCE
    assert balance(client, account) == HBAR


def test_payer_that_cannot_pay_the_fee_is_refused_at_precheck(
    client: Client, network: LocalNetworkInfo
) -> None:
    account, key = new_account(client, TRANSFER_FEE - 1)
    tx = transfer({account: -1, operator_id(network): 1}).set_transaction_id(
        tx_id_at(account, time.time() - 5)
    )
    tx.freeze_with(client).sign(key)
    assert precheck_status(tx, client) == "INSUFFICIENT_PAYER_BALANCE"
    assert balance(client, account) == TRANSFER_FEE - 1


def test_ten_adjustments_pass_eleven_exceed_the_limit(
    client: Client, network: LocalNetworkInfo
) -> None:
    recipients = [new_account(client, 0)[0] for _ in range(10)]
    ten = transfer({operator_id(network): -900, **dict.fromkeys(recipients[:9], 100)})
    eleven = transfer({operator_id(network): -1000, **dict.fromkeys(recipients, 100)})
    assert ten.execute(client).status == ResponseCode.SUCCESS
    assert eleven.execute(client).status == ResponseCode.TRANSFER_LIST_SIZE_LIMIT_EXCEEDED
    assert [balance(client, r) for r in recipients] == [100] * 9 + [0]


def test_transfer_list_not_summing_to_zero_is_refused(
    client: Client, network: LocalNetworkInfo
) -> None:
    account, _ = new_account(client, 0)
    tx = transfer({operator_id(network): -100, account: 99})
    assert precheck_status(tx, client) == "INVALID_ACCOUNT_AMOUNTS"
    assert balance(client, account) == 0


def test_duplicate_transaction_id_is_refused_and_paid_once(
    client: Client, network: LocalNetworkInfo
) -> None:
    account, _ = new_account(client, 0)
    tx = (
        transfer({operator_id(network): -300, account: 300})
        .freeze_with(client)
        .sign(operator_key(network))
    )
    signed = tx.to_bytes()
    assert tx.execute(client).status == ResponseCode.SUCCESS
    # WHEN the very same signed bytes are sent again
    again = TransferTransaction.from_bytes(signed)
    # THEN the node answers DUPLICATE_TRANSACTION and nothing moves twice
    assert precheck_status(again, client) == "DUPLICATE_TRANSACTION"
    assert balance(client, account) == 300


@pytest.mark.parametrize(
    ("start_offset_s", "duration_s", "expected"),
    [
        (-200, 120, "TRANSACTION_EXPIRED"),  # window closed long ago
        (-115, 120, "TRANSACTION_EXPIRED"),  # less than the 10 s validity buffer left
        (60, 120, "INVALID_TRANSACTION_START"),  # starts in the future
        (-5, 181, "INVALID_TRANSACTION_DURATION"),  # longer than the 180 s maximum
    ],
)
def test_valid_duration_window(
    client: Client, network: LocalNetworkInfo, start_offset_s: int, duration_s: int, expected: str
) -> None:
    account, _ = new_account(client, 0)
    tx = transfer({operator_id(network): -100, account: 100})
    tx.set_transaction_id(tx_id_at(operator_id(network), time.time() + start_offset_s))
    tx.set_transaction_valid_duration(duration_s)
    assert precheck_status(tx, client) == expected
    assert balance(client, account) == 0


def test_unknown_recipient_fails_at_consensus(client: Client, network: LocalNetworkInfo) -> None:
    nobody = AccountId.from_string("0.0.999999")
    receipt = transfer({operator_id(network): -100, nobody: 100}).execute(client)
    assert receipt.status == ResponseCode.INVALID_ACCOUNT_ID


def test_concurrent_clients_keep_balances_exact(network: LocalNetworkInfo) -> None:
    # GIVEN four SDK clients on their own channels, each making 15 payments to one account
    recipient_key = PrivateKey.generate_ed25519().public_key()
    clients = []
    for _ in range(4):
        c = Client.for_network({network.address: AccountId.from_string(network.node_account_id)})
        clients.append(c.set_operator(operator_id(network), operator_key(network)))
    tx = AccountCreateTransaction().set_key_without_alias(recipient_key)
    recipient = tx.execute(clients[0]).account_id

    def pay_15(c: Client) -> list[ResponseCode]:
        legs = {operator_id(network): -10, recipient: 10}
        return [transfer(legs).execute(c).status for _ in range(15)]

    # WHEN they run at the same time
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = [s for batch in pool.map(pay_15, clients) for s in batch]
    # THEN all 60 payments succeed and the balance is exactly 600 tinybar
    assert statuses == [ResponseCode.SUCCESS] * 60
    assert balance(clients[0], recipient) == 600
    for c in clients:
        c.close()
