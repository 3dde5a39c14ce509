"""Nothing stalls the game, no input gets a 500 (issue 14).

Bodies are limited before they are parsed (413 ``too_large``), validation errors never echo the
input, password hashing is bounded, and every bad input the outside tester found answers a 4xx
``{"code", "detail"}``, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hiero_sdk_python import PrivateKey

from crowdlearning.server import security
from crowdlearning.server.app import create_app
from crowdlearning.server.runtime import Runtime, open_runtime
from crowdlearning.server.security import HashingBusyError, PasswordHashing
from tests.server.conftest import TestClient, server_settings, signup

JSON = {"content-type": "application/json"}
WALLET_ROUTES = ["deposit", "stake", "unstake", "withdraw"]


@pytest.fixture(scope="module")
def pg_runtime(tmp_path_factory: pytest.TempPathFactory, postgres_url: str
               ) -> Iterator[Runtime]:
    """The embedded runtime with the ledger and the users in a fresh PostgreSQL schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    settings = server_settings(tmp_path_factory.mktemp("pg-server")).model_copy(
        update={"database_url": url, "server_database_url": url})
    try:
        with open_runtime(settings) as runtime:
            yield runtime
            runtime.ledger.engine.dispose()
            runtime.store.engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """A signed-in client of the game server, its books on SQLite, then on PostgreSQL."""
    name = "runtime" if request.param == "sqlite" else "pg_runtime"
    runtime: Runtime = request.getfixturevalue(name)
    with TestClient(create_app(runtime.settings, runtime),
                    raise_server_exceptions=False) as client:
        signup(client)
        yield client


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """A client of the game server that sees a 500 as a 500 (not as the exception)."""
    with TestClient(create_app(runtime.settings, runtime),
                    raise_server_exceptions=False) as c:
        yield c


def _is_error(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and isinstance(response.json()["detail"], str)


# --- amounts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("route", WALLET_ROUTES)
@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 5000])
def test_amounts_json_cannot_carry_as_integers_are_422(any_client: TestClient, route: str,
                                                        amount: str) -> None:
    response = any_client.post(f"/api/wallet/{route}",
                               content=f'{{"amount_tinybar": {amount}}}', headers=JSON)
    _is_error(response, 422, "invalid_input")
    assert any_client.get("/api/wallet").status_code == 200  # the connection still serves


# --- Hedera account ids -------------------------------------------------------------------------
@pytest.mark.parametrize("account_id", [
    "0.0.9223372036854775808",  # 19 digits: overflows Hedera's int64
    "00.00.{num}",  # leading zeros: another spelling of an existing account
    "０.０.{num}",  # full-width digits: \d matches any script's digits
    "0.0.١٠٠٣",  # Arabic-Indic digits
    "0.0.{num}\n",
])
def test_hedera_account_ids_hedera_cannot_hold_are_422(any_client: TestClient,
                                                       account_id: str) -> None:
    # GIVEN an account on the network and a valid proof of its key (so the id is the only fault)
    key = PrivateKey.generate_ed25519()
    account = any_client.app.state.runtime.transport.create_account(key.public_key())
    challenge = any_client.post("/api/auth/hedera/challenge").json()["challenge"]
    # WHEN it is linked under an id written the way no Hedera account id is
    response = any_client.post("/api/auth/hedera/link", json={
        "account_id": account_id.format(num=account.split(".")[2]),
        "public_key": key.public_key().to_bytes_raw().hex(),
        "signature": key.sign(challenge.encode()).hex()})
    # THEN a 422, and nothing is linked
    _is_error(response, 422, "invalid_input")
    assert "account_id" in response.json()["detail"]
    assert any_client.get("/api/auth/me").json()["hedera_account"] is None


# --- NUL ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("payout_id", ["a%00b", "%00", "withdraw%3Ax%00"])
def test_a_nul_in_a_payout_id_is_404_not_a_database_error(any_client: TestClient,
                                                           payout_id: str) -> None:
    _is_error(any_client.get(f"/api/wallet/payouts/{payout_id}"), 404, "unknown_transfer")


# --- bodies -------------------------------------------------------------------------------------
def test_an_oversized_body_is_413_before_the_handler_runs(client: TestClient) -> None:
    # GIVEN a valid sign-up padded with whitespace past the limit
    limit = client.app.state.runtime.settings.server_max_body_bytes
    body = '{"username": "padded_signup", "password": "correct horse"' + " " * limit + "}"
    # WHEN it is sent with its length, and streamed without one (chunked)
    declared = client.post("/api/auth/signup", content=body, headers=JSON)
    streamed = client.post("/api/auth/signup", headers=JSON,
                           content=(body[i:i + 4096].encode() for i in range(0, len(body), 4096)))
    # THEN both are refused and nobody signed up
    _is_error(declared, 413, "too_large")
    _is_error(streamed, 413, "too_large")
    assert str(limit) in declared.json()["detail"]
    assert client.app.state.runtime.store.user_by_name("padded_signup") is None
    # and the same body within the limit signs up
    assert client.post("/api/auth/signup", content=body[:1000] + "}",
                       headers=JSON).status_code == 201


def test_a_422_never_echoes_the_input(client: TestClient) -> None:
    # GIVEN a body under the limit packed with extra keys, and a password too long
    limit = client.app.state.runtime.settings.server_max_body_bytes
    extra = ",".join(f'"key{n}":"value{n}"' for n in range(limit // 25))
    packed = f'{{"username": "echo_test", "password": "correct horse", {extra}}}'
    assert len(packed) < limit
    password = "hunter2-" * 40
    # WHEN they are sent to sign-in
    many = client.post("/api/auth/login", content=packed, headers=JSON)
    secret = client.post("/api/auth/login", json={"username": "echo_test", "password": password})
    # THEN short 422s naming fields: neither the values nor the password come back
    _is_error(many, 422, "invalid_input")
    assert "value1" not in many.text and len(many.content) < 300
    assert "unknown fields: 'key0', 'key1', 'key2' and" in many.json()["detail"]
    _is_error(secret, 422, "invalid_input")
    assert "hunter2" not in secret.text and "body.password" in secret.text


def test_fastapis_own_errors_answer_in_the_shape(client: TestClient) -> None:
    _is_error(client.get("/api/nowhere"), 404, "not_found")
    _is_error(client.put("/api/auth/login"), 405, "method_not_allowed")


# --- password hashing ---------------------------------------------------------------------------
def test_sign_ins_hash_at_most_the_configured_number_at_once(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN hashing that takes a while and counts how many run at once
    active, most, lock = 0, 0, threading.Lock()
    real_verify = security.verify_password

    def slow_verify(password_hash: str, password: str) -> bool:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return real_verify(password_hash, password)

    monkeypatch.setattr(security, "verify_password", slow_verify)
    settings = runtime.settings.model_copy(update={"server_password_hash_workers": 2})
    with TestClient(create_app(settings, runtime)) as c:
        # WHEN 8 sign-ins arrive at once
        codes: list[int] = []
        threads = [threading.Thread(target=lambda n=n: codes.append(c.post(
            "/api/auth/login", json={"username": f"nobody_{n}", "password": "whatever pass"}
        ).status_code)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # THEN all are answered, never more than 2 hashes at a time
    assert codes == [401] * 8
    assert 1 <= most <= 2


def test_a_full_hashing_queue_answers_503_busy(client: TestClient) -> None:
    # GIVEN one hash running and no room to wait behind it
    hashing = PasswordHashing(workers=1, queue=0)
    hashing.callers = 1
    client.app.state.passwords = hashing
    # WHEN someone signs in
    response = client.post("/api/auth/login", json={"username": "someone",
                                                    "password": "correct horse"})
    # THEN try again shortly
    _is_error(response, 503, "busy")
    assert response.headers["Retry-After"] == "1"


def test_password_hashing_queues_then_refuses() -> None:
    release = threading.Event()

    async def scenario() -> list[object]:
        hashing = PasswordHashing(workers=1, queue=1)
        loop = asyncio.get_running_loop()
        blocked = loop.run_in_executor(hashing._pool, release.wait)  # the one worker is busy
        first = asyncio.ensure_future(hashing.hash("first password"))
        second = asyncio.ensure_future(hashing.hash("second password"))
        third = asyncio.ensure_future(hashing.hash("third password"))
        await asyncio.sleep(0)
        waiting = hashing.callers
        release.set()
        results = await asyncio.gather(first, second, third, return_exceptions=True)
        await blocked
        return [waiting, *results, hashing.callers]

    waiting, first, second, third, after = asyncio.run(scenario())
    assert waiting == 2  # worker + queue
    assert security.verify_password(first, "first password")  # type: ignore[arg-type]
    assert security.verify_password(second, "second password")  # type: ignore[arg-type]
    assert isinstance(third, HashingBusyError) and after == 0
