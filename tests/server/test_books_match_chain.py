"""The books explain the treasury on chain to the tinybar: deposits, withdrawals, fees, audits.

The platform's treasury is an account of its own on the local network (a bank account outside
it, the network's development operator, funds it and the players). After a session of money
movements and one read of the treasury's history, ``reconcile`` finds no drift; a payment the
treasury makes outside the ledger is reported and shows up as drift of exactly its amount.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hiero_sdk_python import AccountId, Client, Hbar, PrivateKey, TransferTransaction

from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport, client_for_network
from crowdlearning.payments.settlement import reconcile
from crowdlearning.server.app import create_app
from crowdlearning.server.runtime import Runtime, open_runtime
from tests.server.conftest import TestClient, server_settings, signup

pytestmark = pytest.mark.timeout(300)
HBAR = 100_000_000


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


@pytest.fixture(scope="module")
def bank(network: LocalNetworkInfo) -> Iterator[SdkHederaTransport]:
    """The development operator: money from outside the platform."""
    transport = SdkHederaTransport.for_local_network(network)
    yield transport
    transport.close()


def _sdk_client(network: LocalNetworkInfo, account: str, key: PrivateKey) -> Client:
    client = client_for_network("local", local_address=network.address,
                                node_account_id=network.node_account_id)
    return client.set_operator(AccountId.from_string(account), key)


@pytest.fixture(scope="module")
def runtime(network: LocalNetworkInfo, bank: SdkHederaTransport,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    key = PrivateKey.generate_ed25519()
    treasury = bank.create_account(key.public_key(), 20_000 * HBAR)
    transport = SdkHederaTransport(client=_sdk_client(network, treasury, key),
                                   operator_id=treasury, operator_key=key)
    settings = server_settings(Path(tmp_path_factory.mktemp("books"))).model_copy(
        # the tests read the treasury's history themselves, so the server's reader stays idle
        update={"hedera_mirror_url": network.mirror_rest_url, "server_deposit_poll_s": 600})
    try:
        with open_runtime(settings, transport=transport) as rt:
            yield rt
    finally:
        transport.close()


@pytest.fixture(scope="module")
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime.settings, runtime)) as c:
        yield c


def _deposit(network: LocalNetworkInfo, bank: SdkHederaTransport, treasury: str, amount: int,
             memo: str) -> None:
    key = PrivateKey.generate_ed25519()
    account = bank.create_account(key.public_key(), amount + HBAR)
    sdk = _sdk_client(network, account, key)
    try:
        tx = (TransferTransaction()
              .add_hbar_transfer(AccountId.from_string(account), Hbar.from_tinybars(-amount))
              .add_hbar_transfer(AccountId.from_string(treasury), Hbar.from_tinybars(amount))
              .set_transaction_memo(memo))
        assert tx.execute(sdk).status == 22  # SUCCESS
    finally:
        sdk.close()


def test_books_match_the_treasury_after_deposits_withdrawals_and_fees(
    client: TestClient, runtime: Runtime, network: LocalNetworkInfo, bank: SdkHederaTransport
) -> None:
    referee = client.app.state.referee
    treasury = runtime.transport.treasury_account_id
    # GIVEN a player who takes the faucet (an audit message), deposits 3 HBAR on Hedera,
    signup(client)
    wallet = client.post("/api/wallet/deposit", json={"amount_tinybar": 2 * HBAR}).json()
    _deposit(network, bank, treasury, 3 * HBAR, wallet["deposit_memo"])
    # links an account (a paid account-info query) and withdraws 4 HBAR to it
    key = PrivateKey.generate_ed25519()
    account = bank.create_account(key.public_key())
    challenge = client.post("/api/auth/hedera/challenge").json()["challenge"]
    linked = client.post("/api/auth/hedera/link", json={
        "account_id": account, "public_key": key.public_key().to_bytes_raw().hex(),
        "signature": key.sign(challenge.encode()).hex()})
    assert linked.status_code == 200, linked.text
    referee.poll_deposits_once()
    withdrawn = client.post("/api/wallet/withdraw", json={"amount_tinybar": 4 * HBAR})
    assert withdrawn.status_code == 202, withdrawn.text
    referee.settle_once()
    runtime.service.settler.run_until_settled(max_runs=20, pause_s=0.05)
    # WHEN the treasury's history is read
    result = runtime.deposits.poll()
    # THEN the money arrived, the fees were booked, and the books match the chain exactly
    assert bank.account_balance(account) == 4 * HBAR
    assert client.get("/api/wallet").json()["available_tinybar"] == HBAR
    fees = runtime.ledger.balance("network_fees")
    assert fees > 0 and result.unbooked == []
    report = reconcile(runtime.ledger, runtime.transport)
    assert report.mismatches == ()
    assert report.drift_tinybar == 0, report


def test_a_payment_outside_the_ledger_is_reported_as_drift(
    client: TestClient, runtime: Runtime, bank: SdkHederaTransport
) -> None:
    # GIVEN books that match the chain
    runtime.deposits.poll()
    assert reconcile(runtime.ledger, runtime.transport).drift_tinybar == 0
    # WHEN the operator pays 1 HBAR from the treasury by hand, bypassing the ledger
    someone = bank.create_account(PrivateKey.generate_ed25519().public_key())
    treasury = runtime.transport.treasury_account_id
    prepared = runtime.transport.prepare_transfer({treasury: -HBAR, someone: HBAR})
    assert runtime.transport.submit(prepared).accepted
    result = runtime.deposits.poll()
    # THEN the read reports it, its fee is still booked, and the drift is exactly that payment
    assert [(o.amount_tinybar, o.reason) for o in result.unbooked] == [(HBAR, "not_in_ledger")]
    assert result.fees_booked_tinybar > 0
    assert reconcile(runtime.ledger, runtime.transport).drift_tinybar == -HBAR
