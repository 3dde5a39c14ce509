"""POST /v1/payouts: a client pays any Hedera account; settled by the platform's own Settler."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, PayoutState, make_engine
from crowdlearning.ledger.clients import client_payout_id, issue_key, open_client
from crowdlearning.payments.api import create_app
from crowdlearning.payments.memory_transport import MemoryTransport
from crowdlearning.payments.settlement import Settler, reconcile
from tests.ledger.factories import funded_player, new_ledger, postgres_schema_engine

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

TREASURY = "0.0.2"
START_NS = 1_700_000_000 * 10**9


class FakeClock:
    """A clock the test moves by hand [epoch ns]."""

    def __init__(self) -> None:
        self.now_ns = START_NS

    def __call__(self) -> int:
        self.now_ns += 1_000  # strictly increasing, like a real clock
        return self.now_ns


class Stack:
    """The API, its ledger, an in-memory Hedera network whose treasury matches the books."""

    def __init__(self, api: TestClient, ledger: Ledger, clock: FakeClock) -> None:
        self.api, self.ledger, self.clock = api, ledger, clock
        self.network = MemoryTransport(
            treasury_account_id=TREASURY, balances={"0.0.5000": 0, "0.0.5001": 0}, clock=clock
        )
        self.network.balances[TREASURY] = ledger.check_books().internal_tinybar
        self.settler = Settler(ledger, self.network, clock=clock, max_attempts=2,
                               expiry_margin_s=5)


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Client ``acme`` with 10,000 tinybar and a player with a withdrawal of its own to settle."""
    with contextlib.ExitStack() as exits:
        if request.param == "sqlite":
            engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
            exits.callback(engine.dispose)
        else:
            engine = exits.enter_context(postgres_schema_engine(request.getfixturevalue(
                "postgres_url")))
        clock = FakeClock()
        ledger = new_ledger(engine, clock=clock)
        ledger.run(lambda c: open_client(c, "acme", now_ns=1))
        ledger.deposit("acme-funding", "client:acme", 10_000)
        funded_player(ledger, "alice", 500)
        key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
        app = create_app(ledger, settings=Settings())
        api = exits.enter_context(TestClient(app, headers={"X-API-Key": key},
                                             raise_server_exceptions=False))
        yield Stack(api, ledger, clock)


def payout(stack: Stack, payout_id: str = "po-1", **changes: object):  # type: ignore[no-untyped-def]
    body = {"payout_id": payout_id, "to_account": "0.0.5000", "amount_tinybar": 1_200,
            "memo": "invoice 42", **changes}
    return stack.api.post("/v1/payouts", json=body)


def test_a_payout_is_booked_at_once_and_settled_once_with_the_platforms_own(
    stack: Stack,
) -> None:
    # GIVEN a client payout and a player's withdrawal, both pending
    first = payout(stack)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "pending"
    assert first.json()["network_fee_paid_by"] == "platform"
    assert stack.ledger.balance("client:acme") == 8_800
    assert stack.ledger.balance("pending_payouts") == 1_200
    stack.ledger.withdraw("withdraw:alice-1", "alice", "0.0.5001", 300)
    # WHEN the platform's settler runs once
    report = stack.settler.run_once()
    # THEN one Hedera transaction paid both, exactly the amounts asked
    assert (report.prepared, report.succeeded, report.posted_payouts) == (1, 1, 2)
    assert stack.network.balances["0.0.5000"] == 1_200
    assert stack.network.balances["0.0.5001"] == 300
    assert len(stack.network.executed) == 1
    status = stack.api.get("/v1/payouts/po-1")
    assert status.status_code == 200, status.text
    answer = status.json()
    assert answer["status"] == "settled"
    assert answer["hedera_transaction_id"] == stack.network.executed[0]
    assert answer["consensus_timestamp_ns"] > START_NS
    assert (answer["memo"], answer["refunded_tinybar"]) == ("invoice 42", 0)
    # AND running settlement again pays nothing more; books and chain agree
    assert stack.settler.run_once().prepared == 0
    assert stack.network.balances["0.0.5000"] == 1_200
    result = reconcile(stack.ledger, stack.network)
    assert (result.mismatches, result.drift_tinybar) == ((), 0)
    assert stack.ledger.check_books().internal_tinybar == stack.network.balances[TREASURY]


def test_a_replay_returns_the_payout_and_books_nothing_again(stack: Stack) -> None:
    first = payout(stack)
    again = payout(stack)
    assert again.status_code == 200 and again.json() == first.json()
    assert stack.ledger.balance("client:acme") == 8_800
    stack.settler.run_once()
    after = payout(stack)  # a replay after settlement: the payout as it is now
    assert after.status_code == 200 and after.json()["status"] == "settled"
    assert stack.ledger.balance("client:acme") == 8_800
    assert stack.network.balances["0.0.5000"] == 1_200


@pytest.mark.parametrize("change", [{"amount_tinybar": 1_201}, {"to_account": "0.0.5001"},
                                    {"memo": "invoice 43"}], ids=["amount", "account", "memo"])
def test_other_content_under_the_same_id_is_409(stack: Stack, change: dict[str, object]) -> None:
    assert payout(stack).status_code == 201
    response = payout(stack, **change)
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert stack.ledger.balance("client:acme") == 8_800


def test_unknown_payout_is_404_in_the_documented_shape(stack: Stack) -> None:
    response = stack.api.get("/v1/payouts/nope")
    assert response.status_code == 404
    assert response.json() == {"code": "unknown_payout", "detail": "you have no payout 'nope'"}
    documented = stack.api.get("/openapi.json").json()["paths"]["/v1/payouts/{payout_id}"]
    assert "unknown_payout" in documented["get"]["responses"]["404"]["description"]


def test_another_clients_payout_is_not_visible(stack: Stack) -> None:
    assert payout(stack).status_code == 201
    stack.ledger.run(lambda c: open_client(c, "other", now_ns=1))
    other_key = stack.ledger.run(lambda c: issue_key(c, "other", now_ns=1))
    response = stack.api.get("/v1/payouts/po-1", headers={"X-API-Key": other_key})
    assert (response.status_code, response.json()["code"]) == (404, "unknown_payout")


def test_insufficient_balance_is_409_and_books_nothing(stack: Stack) -> None:
    response = payout(stack, amount_tinybar=10_001)
    assert (response.status_code, response.json()["code"]) == (409, "insufficient_funds")
    assert stack.ledger.balance("client:acme") == 10_000
    assert stack.api.get("/v1/payouts/po-1").status_code == 404


@pytest.mark.parametrize("account", ["0.0.05", "1.2", "0.0.-1", "0.0.99999999999999999999",
                                     "٠.٠.١"], ids=["zero", "short", "neg", "big", "digits"])
def test_to_account_must_be_a_hedera_account_id(stack: Stack, account: str) -> None:
    response = payout(stack, to_account=account)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")
    assert stack.ledger.balance("client:acme") == 10_000


def test_a_payout_that_fails_on_chain_is_refunded(stack: Stack) -> None:
    # GIVEN a payout to an account that does not exist on the network
    assert payout(stack, to_account="0.0.999999").status_code == 201
    # WHEN settlement gives up on it (max_attempts=2)
    for _ in range(3):
        stack.settler.run_once()
    # THEN it is failed with the network's reason and the money is back
    answer = stack.api.get("/v1/payouts/po-1").json()
    assert answer["status"] == "failed"
    assert "INVALID_ACCOUNT_ID" in answer["failure_reason"]
    assert answer["refunded_tinybar"] == 1_200 and answer["hedera_transaction_id"] is None
    assert stack.ledger.balance("client:acme") == 10_000
    assert stack.network.executed == []


def test_long_client_and_payout_ids_fit_a_ledger_payout_id(stack: Stack) -> None:
    client, request_id = "c" * 48, "p" * 64
    stack.ledger.run(lambda c: open_client(c, client, now_ns=1))
    stack.ledger.deposit("long-funding", f"client:{client}", 100)
    key = stack.ledger.run(lambda c: issue_key(c, client, now_ns=1))
    body = {"payout_id": request_id, "to_account": "0.0.5000", "amount_tinybar": 100}
    assert stack.api.post("/v1/payouts", json=body, headers={"X-API-Key": key}).status_code == 201
    ledger_id = client_payout_id(client, request_id)
    assert stack.ledger.get_payout(ledger_id).state is PayoutState.PENDING
    got = stack.api.get(f"/v1/payouts/{request_id}", headers={"X-API-Key": key})
    assert got.json()["payout_id"] == request_id
