"""Funding a client: HBAR sent to the treasury with the memo ``client:<id>`` credits its balance
(read from the local network's mirror view); ``POST /v1/withdrawals`` pays it back out on Hedera.
"""

from __future__ import annotations

import contextlib
import warnings
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
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, PayoutState, make_engine
from crowdlearning.ledger.clients import client_withdrawal_id, issue_key, open_client
from crowdlearning.payments.api import create_app
from crowdlearning.payments.deposits import DepositWatcher, sdk_transaction_id
from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler
from tests.ledger.factories import new_ledger, postgres_schema_engine

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)
HBAR = 100_000_000


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


class Stack:
    """A ledger with client ``acme`` (and player ``alice``), its API, a treasury reader."""

    def __init__(self, ledger: Ledger, api: TestClient, network: LocalNetworkInfo) -> None:
        self.ledger, self.api, self.network = ledger, api, network
        start = DepositWatcher(ledger, network.mirror_rest_url, network.operator_account_id)
        start.start_at_end()  # the network is shared by the module's tests: skip earlier ones
        self.start = start.cursor

    def watcher(self) -> DepositWatcher:
        """A reader starting where this test's ledger opened (a fresh reader each time, as after
        a restart with an old cursor: the worst case for crediting twice)."""
        return DepositWatcher(self.ledger, self.network.mirror_rest_url,
                              self.network.operator_account_id, page_limit=2, cursor=self.start)


@pytest.fixture(params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, network: LocalNetworkInfo
) -> Iterator[Stack]:
    with contextlib.ExitStack() as exits:
        if request.param == "sqlite":
            engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
            exits.callback(engine.dispose)
        else:
            engine = exits.enter_context(postgres_schema_engine(request.getfixturevalue(
                "postgres_url")))
        ledger = new_ledger(engine)
        ledger.run(lambda c: open_client(c, "acme", now_ns=1))
        ledger.open_player("alice")
        key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
        api = exits.enter_context(TestClient(create_app(ledger, settings=Settings()),
                                             headers={"X-API-Key": key},
                                             raise_server_exceptions=False))
        yield Stack(ledger, api, network)


def _send(network: LocalNetworkInfo, amount: int, memo: str) -> str:
    """An account of its own sends ``amount`` to the treasury with ``memo``; its SDK tx id."""
    node = {network.address: AccountId.from_string(network.node_account_id)}
    operator = Client.for_network(node)
    operator.set_operator(AccountId.from_string(network.operator_account_id),
                          PrivateKey.from_string_der(network.operator_private_key_der_hex))
    sender = Client.for_network(node)
    try:
        key = PrivateKey.generate("ed25519")
        created = (AccountCreateTransaction().set_key_without_alias(key.public_key())
                   .set_initial_balance(Hbar.from_tinybars(amount + HBAR)).execute(operator))
        sender.set_operator(created.account_id, key)  # the sender pays its own fee
        tx = (TransferTransaction().add_hbar_transfer(created.account_id, -amount)
              .add_hbar_transfer(AccountId.from_string(network.operator_account_id), amount))
        tx.set_transaction_memo(memo)
        receipt = tx.execute(sender)
        assert receipt.status == ResponseCode.SUCCESS
        return _sdk_id(tx)
    finally:
        sender.close()
        operator.close()


def _sdk_id(tx: TransferTransaction) -> str:
    tx_id = tx.transaction_id
    valid = tx_id.valid_start
    return f"{tx_id.account_id}@{valid.seconds}.{valid.nanos:09d}"


def test_a_client_memo_credits_the_client_exactly_once(stack: Stack) -> None:
    # GIVEN two transfers to the treasury with acme's memo (one with stray spaces)
    first_id = _send(stack.network, 3 * HBAR, "client:acme")
    second_id = _send(stack.network, HBAR, "client: acme ")
    # WHEN the reader polls, and a second reader reads the whole history again
    polled = stack.watcher().poll()
    again = stack.watcher().poll()
    # THEN acme is credited 4 HBAR once, under the Hedera transaction ids
    mine = [d for d in polled.credited if d.client_id == "acme"]
    assert sorted(d.amount_tinybar for d in mine) == [HBAR, 3 * HBAR]
    assert {sdk_transaction_id(d.transaction_id) for d in mine} == {first_id, second_id}
    assert all(d.player_id is None for d in mine)
    assert len([d for d in again.credited if d.client_id == "acme"]) == 2  # seen, not re-booked
    assert stack.ledger.balance("client:acme") == 4 * HBAR
    assert stack.api.get("/v1/balance").json()["balance_tinybar"] == 4 * HBAR
    assert stack.ledger.get_transfer(f"deposit:{mine[0].transaction_id}") is not None
    stack.ledger.check_books()


def test_unknown_or_crossed_memos_credit_nobody(stack: Stack) -> None:
    # GIVEN a client memo naming no client, one naming a *player*, a player memo naming a
    # *client*, and a malformed client id
    memos = ["client:ghost", "client:alice", "deposit:acme", "client:bad id!"]
    sent = {_send(stack.network, HBAR + n, memo) for n, memo in enumerate(memos)}
    # WHEN the reader polls
    polled = stack.watcher().poll()
    # THEN all four are reported unmatched and nobody's balance moved
    unmatched = {sdk_transaction_id(d.transaction_id) for d in polled.unmatched}
    assert sent <= unmatched
    assert not sent & {sdk_transaction_id(d.transaction_id) for d in polled.credited}
    assert all(d.player_id is None and d.client_id is None for d in polled.unmatched)
    assert stack.ledger.balance("client:acme") == 0
    assert stack.ledger.balance("player:alice:available") == 0
    assert all(stack.ledger.get_transfer(f"deposit:{d.transaction_id}") is None
               for d in polled.unmatched)


def test_a_withdrawal_is_booked_settles_and_history_shows_both(
    stack: Stack, network: LocalNetworkInfo
) -> None:
    # GIVEN acme funded its balance on chain
    deposit_id = _send(network, 2 * HBAR, "client:acme")
    stack.watcher().poll()
    assert stack.ledger.balance("client:acme") == 2 * HBAR
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    try:
        own = transport.create_account(PrivateKey.generate_ed25519().public_key())
        body = {"withdrawal_id": "wd-1", "to_account": own, "amount_tinybar": HBAR // 2}
        # WHEN it withdraws part of it (twice: a retry), then asks for too much
        booked = stack.api.post("/v1/withdrawals", json=body)
        replay = stack.api.post("/v1/withdrawals", json=body)
        conflict = stack.api.post("/v1/withdrawals", json={**body, "amount_tinybar": 7})
        too_much = stack.api.post("/v1/withdrawals", json={
            "withdrawal_id": "wd-2", "to_account": own, "amount_tinybar": 2 * HBAR})
        # THEN one withdrawal is booked at once and pending; the rest book nothing
        assert booked.status_code == 201, booked.text
        assert booked.json()["status"] == "pending"
        assert replay.status_code == 200 and replay.json() == booked.json()
        assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
        assert too_much.status_code == 409 and too_much.json()["code"] == "insufficient_funds"
        assert stack.ledger.balance("client:acme") == 2 * HBAR - HBAR // 2
        # WHEN the platform's settler runs
        report = Settler(stack.ledger, transport).run_until_settled(max_runs=20, pause_s=0.05)
        # THEN the HBAR arrived on the client's account exactly once
        assert report.live == 0
        assert transport.account_balance(own) == HBAR // 2
        payout = stack.ledger.get_payout(client_withdrawal_id("acme", "wd-1"))
        assert payout.state is PayoutState.POSTED
        status = stack.api.get("/v1/withdrawals/wd-1").json()
        assert status["status"] == "settled"
        assert status["hedera_transaction_id"] == payout.settlement_tx_id is not None
    finally:
        transport.close()
    # AND the history shows the deposit and the withdrawal with their Hedera transaction ids
    items = stack.api.get("/v1/history").json()["items"]
    by_id = {item["id"]: item for item in items}
    deposit = next(i for i in items if i["delta_tinybar"] == 2 * HBAR)
    assert deposit["hedera_transaction_id"] == deposit_id
    ledger_id = client_withdrawal_id("acme", "wd-1")
    assert by_id[f"payout:{ledger_id}"]["delta_tinybar"] == -(HBAR // 2)
    assert by_id[f"payout:{ledger_id}"]["hedera_transaction_id"] == payout.settlement_tx_id
    assert by_id[f"payout:{ledger_id}"]["memo"] == "withdrawal"
    missing = stack.api.get("/v1/withdrawals/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_withdrawal"
    stack.ledger.check_books()
