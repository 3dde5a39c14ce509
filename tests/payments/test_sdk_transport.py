"""``SdkHederaTransport`` against the local network over real gRPC: the contract holds."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from hiero_sdk_python import Client, PrivateKey, PublicKey
from pydantic import SecretStr

from crowdlearning.config import Settings
from crowdlearning.errors import (
    ConfigurationError,
    HederaRequestError,
    HederaUnavailableError,
)
from crowdlearning.hedera.transport import HederaTransport
from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.local_network.fees import FEE_SCHEDULE_TINYBAR
from crowdlearning.payments.sdk_transport import SdkHederaTransport, client_for_network

pytestmark = pytest.mark.timeout(60)

TRANSFER_FEE = FEE_SCHEDULE_TINYBAR["cryptoTransfer"]


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


@pytest.fixture(scope="module")
def transport(network: LocalNetworkInfo) -> Iterator[SdkHederaTransport]:
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    yield transport
    transport.close()


def new_accounts(transport: SdkHederaTransport, count: int, balance: int = 0) -> list[str]:
    return [
        transport.create_account(PrivateKey.generate_ed25519().public_key(), balance)
        for _ in range(count)
    ]


def test_it_is_a_hedera_transport(transport: SdkHederaTransport) -> None:
    assert isinstance(transport, HederaTransport)
    assert transport.max_transfers_per_transaction == 10


def test_prepare_submit_receipt_pays_a_batch(transport: SdkHederaTransport) -> None:
    # GIVEN nine players and one payout transaction paying each of them (10 adjustments)
    players = new_accounts(transport, 9)
    treasury = transport.treasury_account_id
    before = transport.account_balance(treasury)
    prepared = transport.prepare_transfer(
        {treasury: -9 * 500, **dict.fromkeys(players, 500)}, memo="round 1"
    )
    # WHEN it is submitted
    outcome = transport.submit(prepared)
    receipt = transport.wait_for_receipt(prepared.transaction_id, timeout_s=5)
    # THEN every player is paid and the treasury pays amounts plus one fee
    assert (outcome.accepted, outcome.status) == (True, "OK")
    assert receipt.status == "SUCCESS"
    assert [transport.account_balance(p) for p in players] == [500] * 9
    assert transport.account_balance(treasury) == before - 9 * 500 - TRANSFER_FEE


def test_resubmitting_the_same_bytes_pays_once(transport: SdkHederaTransport) -> None:
    (player,) = new_accounts(transport, 1)
    prepared = transport.prepare_transfer({transport.treasury_account_id: -777, player: 777})
    first = transport.submit(prepared)
    second = transport.submit(prepared)
    assert first.status == "OK"
    assert (second.accepted, second.status) == (True, "DUPLICATE_TRANSACTION")
    assert transport.get_receipt(prepared.transaction_id).status == "SUCCESS"
    assert transport.account_balance(player) == 777


def test_receipt_is_none_until_submitted(transport: SdkHederaTransport) -> None:
    (player,) = new_accounts(transport, 1)
    prepared = transport.prepare_transfer({transport.treasury_account_id: -1, player: 1})
    assert transport.get_receipt(prepared.transaction_id) is None
    transport.submit(prepared)
    assert transport.get_receipt(prepared.transaction_id).status == "SUCCESS"


def test_transaction_ids_are_unique_and_carry_the_window(transport: SdkHederaTransport) -> None:
    (player,) = new_accounts(transport, 1)
    legs = {transport.treasury_account_id: -1, player: 1}
    ids = [transport.prepare_transfer(legs) for _ in range(50)]
    assert len({p.transaction_id for p in ids}) == 50
    assert all(p.valid_duration_s == 120 for p in ids)
    assert all(p.valid_start_ns < time.time_ns() for p in ids)
    first = ids[0]
    assert first.transaction_id.endswith(f"{first.valid_start_ns % 1_000_000_000:09d}")


def test_expired_transaction_is_refused_and_never_executes(network: LocalNetworkInfo) -> None:
    # GIVEN a transaction prepared with a clock 200 s in the past (window long over)
    stale = SdkHederaTransport.for_local_network(
        network, clock_ns=lambda: time.time_ns() - 200 * 10**9
    )
    prepared = stale.prepare_transfer({stale.treasury_account_id: -5, "0.0.2": 5})
    # WHEN submitted THEN the node refuses it and no receipt will ever exist
    outcome = stale.submit(prepared)
    assert (outcome.accepted, outcome.status) == (False, "TRANSACTION_EXPIRED")
    assert stale.get_receipt(prepared.transaction_id) is None
    stale.close()


def test_insufficient_balance_is_a_final_receipt_status(
    transport: SdkHederaTransport, network: LocalNetworkInfo
) -> None:
    # GIVEN a poor operator (can pay fees, not the payout)
    key = PrivateKey.generate_ed25519()
    poor_id = transport.create_account(key.public_key(), 10 * TRANSFER_FEE)
    poor = SdkHederaTransport(
        client=_local_client(network), operator_id=poor_id, operator_key=key, request_timeout_s=10
    )
    prepared = poor.prepare_transfer({poor_id: -(10**12), "0.0.2": 10**12})
    assert poor.submit(prepared).accepted
    assert poor.get_receipt(prepared.transaction_id).status == "INSUFFICIENT_ACCOUNT_BALANCE"
    assert poor.account_balance(poor_id) == 9 * TRANSFER_FEE
    poor.close()


@pytest.mark.parametrize(
    ("transfers", "memo"),
    [
        ({"0.0.1001": -1, **{f"0.0.{n}": 1 for n in range(2000, 2001)}}, "x" * 101),  # memo
        ({"0.0.1001": -10, **{f"0.0.{n}": 1 for n in range(2000, 2010)}}, ""),  # 11 legs
        ({"0.0.1001": -10, "0.0.2": 9}, ""),  # sum != 0
        ({"0.0.1001": -10, "0.0.2": 10, "0.0.3": 0}, ""),  # zero leg
        ({"0.0.1001": -1, "not-an-account": 1}, ""),  # malformed id
        ({"0.0.1001": -(2**63), "0.0.2": 2**63}, ""),  # int64 overflow
        ({"0.0.1001": -1.5, "0.0.2": 1.5}, ""),  # not integer tinybars
        ({}, ""),  # nothing to transfer
    ],
)
def test_bad_transfers_are_refused_before_signing(
    transport: SdkHederaTransport, transfers: dict[str, int], memo: str
) -> None:
    with pytest.raises(HederaRequestError):
        transport.prepare_transfer(transfers, memo=memo)


def test_publish_audit_creates_the_topic_once(network: LocalNetworkInfo) -> None:
    transport = SdkHederaTransport.for_local_network(network)
    first = transport.publish_audit(b"sha256:aaaa")
    topic = transport.audit_topic_id
    second = transport.publish_audit(b"sha256:bbbb")
    assert topic and transport.audit_topic_id == topic and first != second
    with pytest.raises(HederaRequestError):
        transport.publish_audit(b"")
    transport.close()


def test_consensus_time_from_the_record_when_asked(network: LocalNetworkInfo) -> None:
    transport = SdkHederaTransport.for_local_network(network, fetch_consensus_time=True)
    prepared = transport.prepare_transfer({transport.treasury_account_id: -3, "0.0.2": 3})
    transport.submit(prepared)
    receipt = transport.get_receipt(prepared.transaction_id)
    assert receipt is not None and receipt.status == "SUCCESS"
    assert receipt.consensus_timestamp_ns is not None
    assert receipt.consensus_timestamp_ns >= prepared.valid_start_ns
    transport.close()


def test_from_settings_connects_to_the_configured_local_node(network: LocalNetworkInfo) -> None:
    host, port = network.address.rsplit(":", 1)
    settings = Settings(
        hedera_local_host=host,
        hedera_local_port=int(port),
        hedera_operator_id=network.operator_account_id,
        hedera_operator_key=SecretStr(network.operator_private_key_der_hex),
    )
    transport = SdkHederaTransport.from_settings(settings)
    assert transport.account_balance(network.operator_account_id) > 0
    transport.close()


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # no operator
        {"hedera_operator_id": "0.0.1001", "hedera_operator_key": SecretStr("zz-not-hex")},
        {
            "environment": "production",
            "hedera_operator_id": "0.0.1001",
            "hedera_operator_key": SecretStr(PrivateKey.generate_ed25519().to_string_der()),
        },
    ],
)
def test_from_settings_refuses_incomplete_or_unsafe_settings(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SdkHederaTransport.from_settings(Settings(**overrides))


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa"])
def test_operator_key_formats(network: LocalNetworkInfo, key_type: str) -> None:
    key = PrivateKey.generate(key_type)
    raw = key.to_string_raw()
    forms = [key.to_string_der(), f"{key_type}:{raw}", f"{key_type}:0x{raw}"]
    parsed = [_operator_key_from(network, text) for text in forms]
    assert all(p == key.public_key() for p in parsed)
    with pytest.raises(ConfigurationError):  # ambiguous: which curve?
        _operator_key_from(network, raw)


def _operator_key_from(network: LocalNetworkInfo, text: str) -> PublicKey:
    settings = Settings(
        hedera_local_port=int(network.address.rsplit(":", 1)[1]),
        hedera_operator_id="0.0.1001",
        hedera_operator_key=SecretStr(text),
    )
    transport = SdkHederaTransport.from_settings(settings)
    try:
        return transport.operator_public_key
    finally:
        transport.close()


def test_unreachable_network_raises_unavailable(network: LocalNetworkInfo) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    key = PrivateKey.from_string_der(network.operator_private_key_der_hex)
    transport = SdkHederaTransport(
        client=_local_client(network, closed),
        operator_id=network.operator_account_id,
        operator_key=key,
        request_timeout_s=3,
    )
    prepared = transport.prepare_transfer({network.operator_account_id: -1, "0.0.2": 1})
    with pytest.raises(HederaUnavailableError):
        transport.submit(prepared)
    transport.close()


def _local_client(network: LocalNetworkInfo, address: str | None = None) -> Client:
    return client_for_network("local", local_address=address or network.address)


def test_receipt_unknown_until_consensus_then_paid_once() -> None:
    # GIVEN a network that reaches consensus 0.3 s after admitting a transaction
    with running_local_network(consensus_delay_s=0.3) as info:
        transport = SdkHederaTransport.for_local_network(info, request_timeout_s=10)
        (player,) = new_accounts(transport, 1)  # the SDK itself waits through UNKNOWN receipts
        prepared = transport.prepare_transfer({transport.treasury_account_id: -250, player: 250})
        # WHEN it is submitted, and resubmitted while consensus is pending
        assert transport.submit(prepared).status == "OK"
        pending = transport.get_receipt(prepared.transaction_id)
        again = transport.submit(prepared)
        # THEN the receipt is unknown (None) until consensus, the resubmission is a duplicate,
        # and the player is paid once
        assert pending is None
        assert (again.accepted, again.status) == (True, "DUPLICATE_TRANSACTION")
        assert transport.wait_for_receipt(prepared.transaction_id, timeout_s=5).status == "SUCCESS"
        assert transport.account_balance(player) == 250
        transport.close()


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa"])
def test_account_public_key_is_the_key_that_controls_the_account(
    transport: SdkHederaTransport, key_type: str
) -> None:
    # GIVEN an account created with a key of either type
    key = PrivateKey.generate(key_type).public_key()
    account = transport.create_account(key)
    treasury = transport.treasury_account_id
    before = transport.account_balance(treasury)
    # WHEN its info is queried (a paid query)
    der = transport.account_public_key(account)
    # THEN the network names exactly that key, and the query cost the operator something
    assert der is not None and PublicKey.from_der(bytes.fromhex(der)) == key
    assert PublicKey.from_der(bytes.fromhex(der)) != PrivateKey.generate(key_type).public_key()
    assert transport.account_balance(treasury) < before


def test_account_public_key_of_an_unknown_account_is_refused(
    transport: SdkHederaTransport,
) -> None:
    with pytest.raises(HederaRequestError, match="INVALID_ACCOUNT_ID"):
        transport.account_public_key("0.0.987654")


def test_a_creation_answered_duplicate_returns_the_first_sends_result(
    transport: SdkHederaTransport
) -> None:
    # GIVEN an account creation whose signed bytes already reached the network once (as when
    # the SDK re-sends a transaction whose first attempt timed out but was accepted)
    from hiero_sdk_python import AccountCreateTransaction, Hbar

    key = PrivateKey.generate_ed25519().public_key()
    tx = AccountCreateTransaction().set_key_without_alias(key)
    tx.set_initial_balance(Hbar.from_tinybars(5))
    first = transport._execute_successfully(tx, "account creation")
    # WHEN the very same transaction is executed again (the network answers DUPLICATE)
    again = transport._execute_successfully(tx, "account creation")
    # THEN the answer is the first send's receipt: the same account, created once
    assert str(again.account_id) == str(first.account_id)
    assert transport.account_balance(str(first.account_id)) == 5
