"""The third-party payments API: auth, pay, charge, balance, history, idempotency, bad input."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, make_engine
from crowdlearning.ledger.clients import grant_mandate, issue_key, open_client, revoke_key
from crowdlearning.ledger.schema import api_keys
from crowdlearning.payments.api import create_app
from tests.ledger.factories import funded_player, new_ledger, postgres_schema_engine

with warnings.catch_warnings():
    # starlette wants the httpx2 package for its test client; httpx (a project dependency) works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = new_ledger(engine)
    ledger.run(lambda c: open_client(c, "acme", now_ns=1))
    ledger.deposit("acme-funding", "client:acme", 10_000)
    funded_player(ledger, "alice", 500)
    ledger.run(lambda c: grant_mandate(c, "alice", "acme", 1_000, now_ns=1))
    yield ledger
    engine.dispose()


@pytest.fixture
def key(ledger: Ledger) -> str:
    return ledger.run(lambda c: issue_key(c, "acme", now_ns=1))


@pytest.fixture
def api(ledger: Ledger, key: str) -> Iterator[TestClient]:
    app = create_app(ledger, settings=Settings(payments_api_history_limit=3))
    with TestClient(app, headers={"X-API-Key": key}) as client:
        yield client


def pay(api: TestClient, payment_id: str = "pay-1", amount: object = 300, **extra: object):  # type: ignore[no-untyped-def]
    body = {"payment_id": payment_id, "to_player": "alice", "amount_tinybar": amount, **extra}
    return api.post("/v1/payments", json=body)


def test_pay_moves_money_and_replays_are_idempotent(api: TestClient, ledger: Ledger) -> None:
    first = pay(api)
    assert first.status_code == 201, first.text
    assert first.json()["delta_tinybar"] == -300 and first.json()["id"] == "pay-1"
    again = pay(api)
    assert again.status_code == 200 and again.json() == first.json()
    assert api.get("/v1/balance").json() == {"client_id": "acme", "balance_tinybar": 9_700}
    assert ledger.balance("player:alice:available") == 800


def test_reused_id_with_other_content_is_a_conflict(api: TestClient) -> None:
    pay(api)
    response = pay(api, amount=301)
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"


def test_charge_and_insufficient_funds(api: TestClient, ledger: Ledger) -> None:
    body = {"charge_id": "ch-1", "from_player": "alice", "amount_tinybar": 200}
    assert api.post("/v1/charges", json=body).status_code == 201
    too_much = {**body, "charge_id": "ch-2", "amount_tinybar": 301}
    response = api.post("/v1/charges", json=too_much)
    assert (response.status_code, response.json()["code"]) == (409, "insufficient_funds")
    assert ledger.balance("player:alice:available") == 300
    assert ledger.balance("client:acme") == 10_200


def test_charges_need_the_players_mandate(api: TestClient, ledger: Ledger) -> None:
    # GIVEN bob, who granted acme nothing, and alice, who granted 1_000
    funded_player(ledger, "bob", 500)
    body = {"charge_id": "ch-1", "from_player": "bob", "amount_tinybar": 1}
    response = api.post("/v1/charges", json=body)
    assert (response.status_code, response.json()["code"]) == (403, "charge_not_authorized")
    # WHEN alice is charged 300 twice under one id, then 701 more
    alice = {"charge_id": "ch-2", "from_player": "alice", "amount_tinybar": 300}
    assert api.post("/v1/charges", json=alice).status_code == 201
    assert api.post("/v1/charges", json=alice).status_code == 200  # replay consumes nothing
    over = api.post("/v1/charges", json={**alice, "charge_id": "ch-3", "amount_tinybar": 701})
    # THEN the mandate holds: 700 left, not 701
    assert (over.status_code, over.json()["code"]) == (403, "charge_not_authorized")
    assert "700" in over.json()["detail"]
    assert ledger.balance("player:bob:available") == 500
    assert ledger.balance("player:alice:available") == 200


def test_unknown_player_is_404(api: TestClient, ledger: Ledger) -> None:
    response = api.post(
        "/v1/payments", json={"payment_id": "p", "to_player": "nobody", "amount_tinybar": 1}
    )
    assert (response.status_code, response.json()["code"]) == (404, "unknown_account")
    assert ledger.balance("client:acme") == 10_000


@pytest.mark.parametrize("amount", [0, -1, 1.5, "10", 2**63, True, None], ids=repr)
def test_bad_amounts_are_422_and_change_nothing(
    api: TestClient, ledger: Ledger, amount: object
) -> None:
    response = pay(api, amount=amount)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")
    assert "amount_tinybar" in response.json()["detail"]
    assert ledger.balance("client:acme") == 10_000


@pytest.mark.parametrize(
    "body",
    [
        {"payment_id": "bad id", "to_player": "alice", "amount_tinybar": 1},
        {"payment_id": "p", "to_player": "al/ice", "amount_tinybar": 1},
        {"payment_id": "p", "to_player": "alice", "amount_tinybar": 1, "extra": 1},
        {"payment_id": "p", "amount_tinybar": 1},
    ],
)
def test_malformed_requests_are_422(api: TestClient, body: dict[str, object]) -> None:
    response = api.post("/v1/payments", json=body)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")


def test_missing_unknown_or_revoked_keys_are_401(api: TestClient, ledger: Ledger, key: str) -> None:
    assert api.get("/v1/balance", headers={"X-API-Key": ""}).status_code == 401
    assert api.get("/v1/balance", headers={"X-API-Key": "cl_nope"}).status_code == 401
    ledger.run(lambda c: revoke_key(c, key, now_ns=2))
    response = api.get("/v1/balance")
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


def test_keys_are_stored_hashed(ledger: Ledger, key: str) -> None:
    stored = ledger.run(lambda c: list(c.execute(sa.select(api_keys.c.key_hash)).scalars()))
    assert key not in stored and len(stored[0]) == 64


def test_history_is_newest_first_and_capped(api: TestClient) -> None:
    for n in range(5):
        pay(api, payment_id=f"p{n}", amount=1)
    page = api.get("/v1/history", params={"limit": 100}).json()
    assert page["limit"] == 3
    assert [item["id"] for item in page["items"]] == ["p4", "p3", "p2"]
    assert api.get("/v1/history", params={"limit": 0}).status_code == 422


def test_openapi_describes_the_api(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert {"/v1/payments", "/v1/charges", "/v1/balance", "/v1/history"} <= set(spec["paths"])
    assert "X-API-Key" in str(spec["components"]["securitySchemes"])


def test_app_from_settings_opens_and_migrates_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new-dir' / 'ledger.db'}"
    app = create_app(settings=Settings(database_url=url))
    with TestClient(app) as client:
        assert client.get("/v1/balance").status_code == 401
    app.state.ledger.check_books()
    app.state.ledger.engine.dispose()


# --- issue 14: bounded bodies, no 500 for any input, one error shape ----------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def any_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Ledger]]:
    """The API over a funded ledger on SQLite, then on PostgreSQL (a fresh schema)."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
            stack.callback(engine.dispose)
        else:
            url = request.getfixturevalue("postgres_url")
            engine = stack.enter_context(postgres_schema_engine(url))
        ledger = new_ledger(engine)
        ledger.run(lambda c: open_client(c, "acme", now_ns=1))
        ledger.deposit("acme-funding", "client:acme", 10_000)
        funded_player(ledger, "alice", 500)
        key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
        app = create_app(ledger, settings=Settings())
        client = stack.enter_context(TestClient(app, headers={"X-API-Key": key},
                                                raise_server_exceptions=False))
        yield client, ledger


@pytest.mark.parametrize("memo", ["a\x00b", "\x00"], ids=["inside", "alone"])
def test_a_nul_in_a_memo_is_422_on_both_databases(any_api: tuple[TestClient, Ledger],
                                                  memo: str) -> None:
    api, ledger = any_api
    response = pay(api, memo=memo)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")
    assert "memo" in response.json()["detail"]
    assert ledger.balance("client:acme") == 10_000
    assert pay(api, memo="a memo\nover two lines").status_code == 201


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 5000],
                         ids=["nan", "inf", "-inf", "1e400", "5000-digits"])
def test_amounts_json_cannot_carry_as_integers_are_422(any_api: tuple[TestClient, Ledger],
                                                        amount: str) -> None:
    api, ledger = any_api
    body = f'{{"payment_id": "p", "to_player": "alice", "amount_tinybar": {amount}}}'
    response = api.post("/v1/payments", content=body,
                        headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert set(response.json()) == {"code", "detail"}
    assert response.json()["code"] == "invalid_input"
    assert ledger.balance("client:acme") == 10_000


def test_an_oversized_body_is_413_and_moves_nothing(api: TestClient, ledger: Ledger) -> None:
    limit = Settings().payments_api_max_body_bytes
    body = '{"payment_id": "big", "to_player": "alice", "amount_tinybar": 1' + " " * limit + "}"
    response = api.post("/v1/payments", content=body,
                        headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["code"]) == (413, "too_large")
    assert ledger.balance("client:acme") == 10_000
    assert api.get("/openapi.json").json()["paths"]["/v1/payments"]["post"]["responses"]["413"]


def test_a_422_does_not_echo_the_input(api: TestClient) -> None:
    response = pay(api, memo="secret-" * 100)
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")
    assert "secret" not in response.text and "body.memo" in response.text
