"""The payments service reads its own treasury (issue 15): client top-ups credited once by Hedera
transaction id (``deposit.received`` events), the fees of its payout transactions booked, the
books and the chain equal to the tinybar, and a ``kill -9`` of ``crowdlearning payments serve``
while deposits arrive credits each exactly once. Against the project's local Hedera network
over gRPC and its mirror REST view."""

from __future__ import annotations

import os
import random
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hiero_sdk_python import AccountId, PrivateKey, ResponseCode, TransferTransaction

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, make_engine
from crowdlearning.ledger import settlement_store as store
from crowdlearning.ledger.clients import issue_key, open_client
from crowdlearning.ledger.cursors import read_cursor
from crowdlearning.ledger.schema import webhook_events
from crowdlearning.payments.api import create_app
from crowdlearning.payments.deposits import (
    OPENING_BALANCE_ID,
    DepositWatcher,
    ServiceDepositReader,
)
from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.local_network.fees import FEE_SCHEDULE_TINYBAR
from crowdlearning.payments.sdk_transport import SdkHederaTransport, client_for_network
from crowdlearning.payments.settlement import Settler, reconcile
from crowdlearning.payments.worker import PaymentsWorker, dispatcher_from_settings
from tests.ledger.factories import new_ledger
from tests.payments.test_payouts_kill import Service, _free_port, _service_env

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

HBAR = 100_000_000
FEE = FEE_SCHEDULE_TINYBAR["cryptoTransfer"]


@pytest.fixture
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


class Wallet:
    """A client's own Hedera account, paying its own fees (not the treasury's)."""

    def __init__(self, network: LocalNetworkInfo, transport: SdkHederaTransport,
                 balance_tinybar: int) -> None:
        key = PrivateKey.generate_ed25519()
        self.account = transport.create_account(key.public_key(), balance_tinybar)
        self.client = client_for_network("local", local_address=network.address)
        self.client.set_operator(AccountId.from_string(self.account), key)
        self.treasury = transport.treasury_account_id

    def send(self, amount: int, memo: str) -> str:
        """Send ``amount`` to the treasury with ``memo``; the transaction id (SDK form)."""
        tx = (TransferTransaction()
              .add_hbar_transfer(AccountId.from_string(self.account), -amount)
              .add_hbar_transfer(AccountId.from_string(self.treasury), amount))
        tx.set_transaction_memo(memo)
        receipt = tx.execute(self.client)
        assert receipt.status == ResponseCode.SUCCESS
        start = tx.transaction_id.valid_start
        return f"{tx.transaction_id.account_id}@{start.seconds}.{start.nanos:09d}"

    def close(self) -> None:
        self.client.close()


def _mirror(sdk_id: str) -> str:
    """``payer@seconds.nanos`` -> the mirror's ``payer-seconds-nanos``."""
    payer, _, seconds_nanos = sdk_id.partition("@")
    return f"{payer}-{seconds_nanos.replace('.', '-')}"


def _events(ledger: Ledger, event_type: str) -> list[sa.Row]:
    return ledger.run(lambda c: c.execute(sa.select(webhook_events)
                                          .where(webhook_events.c.type == event_type)).all())


def test_the_worker_credits_top_ups_books_fees_and_the_books_equal_the_chain(
    network: LocalNetworkInfo, tmp_path: Path
) -> None:
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    treasury = transport.treasury_account_id
    # opened before the books: they are not the books' business
    wallet = Wallet(network, transport, 20 * HBAR)
    payee = transport.create_account(PrivateKey.generate_ed25519().public_key())
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = new_ledger(engine)
    ledger.run(lambda c: open_client(c, "acme", now_ns=1))
    key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
    # GIVEN the service's reader opens the books at its first start
    reader = ServiceDepositReader(DepositWatcher(ledger, str(network.mirror_rest_url), treasury))
    assert reader.open(lambda: transport.account_balance(treasury)) is True
    assert ledger.balance("treasury") == transport.account_balance(treasury)
    opened_at = reader.watcher.cursor
    settler = Settler(ledger, transport)
    worker = PaymentsWorker(ledger, dispatcher_from_settings(ledger, Settings()),
                            settler=settler, deposits=reader)
    try:
        # WHEN the client tops up twice from its own wallet (and someone names no client)
        first = wallet.send(5 * HBAR, "client:acme")
        second = wallet.send(3 * HBAR, "client: acme ")
        wallet.send(1 * HBAR, "client:nobody")
        report = worker.run_once(force=True)
        # THEN both are credited, once each, with a deposit.received event each
        assert report.deposits_credited == 2
        assert ledger.balance("client:acme") == 8 * HBAR
        received = _events(ledger, "deposit.received")
        assert sorted(r.client_id for r in received) == ["acme", "acme"]
        assert {r.source_id for r in received} == {f"deposit:{_mirror(tx)}"
                                                   for tx in (first, second)}
        # AND a restart (a new reader over the same ledger) resumes at the stored cursor
        again = ServiceDepositReader(DepositWatcher(ledger, str(network.mirror_rest_url),
                                                    treasury))
        assert again.open(lambda: pytest.fail("the books are open: no balance read")) is False
        assert again.watcher.cursor == reader.watcher.cursor
        assert again.poll().credited == []
        # AND a reader that lost its place (killed after crediting, before saving the cursor)
        # re-reads and credits and books nothing twice
        fees_before = ledger.balance("network_fees")
        again.watcher.cursor = opened_at
        assert len(again.poll().credited) == 2
        assert ledger.balance("client:acme") == 8 * HBAR
        assert ledger.balance("network_fees") == fees_before
        again.close()

        # WHEN the client pays someone and withdraws to its own wallet through the API
        api = TestClient(create_app(ledger, settings=Settings()), headers={"X-API-Key": key})
        assert api.post("/v1/payouts", json={"payout_id": "p-1", "to_account": payee,
                                             "amount_tinybar": 2 * HBAR}).status_code == 201
        withdrawal = {"withdrawal_id": "w-1", "to_account": wallet.account,
                      "amount_tinybar": 1 * HBAR}
        assert api.post("/v1/withdrawals", json=withdrawal).status_code == 201
        report = worker.run_once(force=True)
        assert report.posted_payouts == 2
        worker.run_once(force=True)  # the reader reads the settlement's record: its fee
        # THEN the withdrawal is in the client's history with its Hedera transaction id
        settled = api.get("/v1/withdrawals/w-1").json()
        assert settled["status"] == "settled"
        items = {i["id"]: i for i in api.get("/v1/history").json()["items"]}
        assert settled["hedera_transaction_id"] is not None, items
        assert items["payout:wd:acme:w-1"]["hedera_transaction_id"] == (
            settled["hedera_transaction_id"]), items
        assert items["payout:wd:acme:w-1"]["delta_tinybar"] == -1 * HBAR
        deposit_ids = {i["hedera_transaction_id"] for i in items.values()
                       if i["id"].startswith("deposit:")}
        assert deposit_ids == {first, second}
        assert transport.account_balance(payee) == 2 * HBAR
        # AND the fee of every settlement transaction is booked once, paid by the platform
        succeeded = ledger.run(lambda c: store.list_transactions(c, ("succeeded",), 100))
        result = reconcile(ledger, transport)
        assert result.mismatches == () and result.fees_unbooked == ()
        fee_ids = ledger.run(lambda c: c.execute(
            sa.text("SELECT id FROM ledger_transfers WHERE id LIKE 'fee:%'")).scalars().all())
        assert len(fee_ids) == len(succeeded) >= 1
        assert result.network_fees_tinybar == FEE * len(succeeded)
        assert ledger.balance("client:acme") == 5 * HBAR  # 8 in, 2 paid, 1 withdrawn
        # AND the books equal the chain to the tinybar (the unknown client's HBAR included: it
        # is on the treasury, booked to nobody, left for a refund)
        assert result.drift_tinybar == 1 * HBAR
    finally:
        worker.stop()
        wallet.close()
        transport.close()
        engine.dispose()


def test_deposits_through_kill_9_of_the_service_are_credited_exactly_once(
    network: LocalNetworkInfo, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("KILL_SEED", random.randrange(10**6))))
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    wallet = Wallet(network, transport, 100 * HBAR)
    url = f"sqlite:///{tmp_path / 'service.db'}"
    engine = make_engine(url)
    ledger = new_ledger(engine)
    ledger.run(lambda c: open_client(c, "acme", now_ns=1))
    env = {**_service_env(network, url),
           "CROWDLEARNING_HEDERA_MIRROR_URL": str(network.mirror_rest_url),
           "CROWDLEARNING_PAYMENTS_DEPOSIT_POLL_S": "0.05"}
    service = Service(env, _free_port(), tmp_path)
    amounts = [rng.randint(1, 10**6) for _ in range(24)]
    try:
        service.start()
        service.wait_ready()
        assert ledger.get_transfer(OPENING_BALANCE_ID) is not None  # opened at its first start
        # WHEN deposits arrive while the service is killed (-9) and restarted after every 6th
        for n, amount in enumerate(amounts, start=1):
            wallet.send(amount, "client:acme")
            time.sleep(rng.uniform(0, 0.15))
            if n % 6 == 0:
                service.kill()
                service.start()
                service.wait_ready()
        # THEN each is credited exactly once, with one deposit.received event each
        deadline = time.monotonic() + 60
        while (ledger.balance("client:acme") < sum(amounts)
               or len(_events(ledger, "deposit.received")) < len(amounts)):
            assert time.monotonic() < deadline, service.tail()
            time.sleep(0.1)
        time.sleep(0.5)  # a few more polls: nothing more may come
        assert ledger.balance("client:acme") == sum(amounts)
        assert len(_events(ledger, "deposit.received")) == len(amounts)
        assert ledger.run(lambda c: read_cursor(c, f"deposits:{transport.treasury_account_id}"))
        result = reconcile(ledger, transport)
        assert result.mismatches == () and result.drift_tinybar == 0  # books == chain
        assert service.starts == 5
    finally:
        service.stop()
        wallet.close()
        transport.close()
        engine.dispose()
