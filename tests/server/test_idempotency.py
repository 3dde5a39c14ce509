"""Idempotency-Key on the wallet's changes: a retry acts once and gets the first answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hiero_sdk_python import PrivateKey
from starlette.types import Message, Receive, Scope, Send

from crowdlearning.server.store import KeptAnswer, Store
from tests.server.conftest import TestClient, signup
from tests.server.test_api import _link

HBAR = 100_000_000


class LoseFirstAnswer:
    """The app acts, then the connection drops before its answer reaches the client."""

    def __init__(self, app: object) -> None:
        self.app, self.lost = app, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.lost:
            await self.app(scope, receive, send)  # type: ignore[operator]
            return

        async def discard(_message: Message) -> None:
            pass

        await self.app(scope, receive, discard)  # type: ignore[operator]
        self.lost += 1
        raise ConnectionResetError("the answer was lost on the way")


def _bearer(session: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['token']}"}


def _available(client: TestClient, session: dict) -> int:
    return client.get("/api/wallet", headers=_bearer(session)).json()["available_tinybar"]


def test_a_withdrawal_retried_after_a_lost_answer_withdraws_once(client: TestClient) -> None:
    # GIVEN a player with 3 HBAR and a linked account
    session = signup(client)
    client.post("/api/wallet/deposit", json={"amount_tinybar": 3 * HBAR})
    key = PrivateKey.generate_ed25519()
    runtime = client.app.state.runtime
    assert _link(client, runtime.transport.create_account(key.public_key()), key
                 ).status_code == 200
    headers = {**_bearer(session), "Idempotency-Key": "withdraw-0001"}
    body = {"amount_tinybar": HBAR}
    # WHEN the withdrawal's answer is lost, and the client retries it twice with the same key
    flaky = TestClient(LoseFirstAnswer(client.app))
    with pytest.raises(ConnectionResetError):
        flaky.post("/api/wallet/withdraw", json=body, headers=headers)
    retries = [flaky.post("/api/wallet/withdraw", json=body, headers=headers) for _ in range(2)]
    # THEN one payout, answered the same each time; 1 HBAR left the balance, not 2 or 3
    assert {r.status_code for r in retries} == {202}
    assert retries[0].content == retries[1].content
    assert all(r.headers["idempotent-replayed"] == "true" for r in retries)
    payout_id = retries[0].json()["payout_id"]
    assert runtime.ledger.get_payout(payout_id).amount_tinybar == HBAR
    assert _available(client, session) == 2 * HBAR
    withdrawals = [e for e in client.get("/api/wallet/events", headers=_bearer(session)
                                         ).json()["items"] if e["kind"] == "withdrawal"]
    assert len(withdrawals) == 1


def test_a_change_that_committed_but_was_not_answered_is_not_repeated(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a player with 5 HBAR; the server dies after the ledger committed a stake, before
    # it kept the answer
    session = signup(client)
    client.post("/api/wallet/deposit", json={"amount_tinybar": 5 * HBAR})
    store = client.app.state.runtime.store
    real_keep = store.keep_answer

    def crash(*_args: object, **_kwargs: object) -> KeptAnswer:
        raise RuntimeError("killed")

    monkeypatch.setattr(store, "keep_answer", crash)
    headers = {"Idempotency-Key": "stake-1"}
    with pytest.raises(RuntimeError, match="killed"):
        client.post("/api/wallet/stake", json={"amount_tinybar": 2 * HBAR}, headers=headers)
    monkeypatch.setattr(store, "keep_answer", real_keep)
    # WHEN the client retries with the same key
    retry = client.post("/api/wallet/stake", json={"amount_tinybar": 2 * HBAR}, headers=headers)
    # THEN the ledger's transfer id (from the user and the key) locked the stake once
    assert retry.status_code == 200
    assert retry.json()["stake_tinybar"] == 2 * HBAR
    assert _available(client, session) == 3 * HBAR


def test_the_same_key_for_another_request_is_a_conflict(client: TestClient) -> None:
    session = signup(client)
    first = client.post("/api/wallet/deposit", json={"amount_tinybar": 2 * HBAR},
                        headers={"Idempotency-Key": "k1"})
    # WHEN the key is reused with another amount, on another route, then replayed as it was
    other_amount = client.post("/api/wallet/deposit", json={"amount_tinybar": 3 * HBAR},
                               headers={"Idempotency-Key": "k1"})
    other_route = client.post("/api/wallet/stake", json={"amount_tinybar": 2 * HBAR},
                              headers={"Idempotency-Key": "k1"})
    replay = client.post("/api/wallet/deposit", json={"amount_tinybar": 2 * HBAR},
                         headers={"Idempotency-Key": "k1"})
    # THEN both misuses are 409 conflict in the documented shape; the replay is the first answer
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    for r in (other_amount, other_route):
        assert r.status_code == 409 and r.json()["code"] == "conflict"
        assert "different request" in r.json()["detail"]
    assert replay.status_code == 201 and replay.content == first.content
    assert _available(client, session) == 2 * HBAR
    wallet = client.get("/api/wallet").json()
    assert wallet["stake_tinybar"] == 0


def test_keys_are_per_user_and_must_be_well_formed(client: TestClient) -> None:
    alice, bob = signup(client), signup(client)
    for session in (alice, bob):
        r = client.post("/api/wallet/deposit", json={"amount_tinybar": HBAR},
                        headers={**_bearer(session), "Idempotency-Key": "same-text"})
        assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    assert _available(client, alice) == _available(client, bob) == HBAR
    bad = client.post("/api/wallet/deposit", json={"amount_tinybar": HBAR},
                      headers={"Idempotency-Key": "x" * 65})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"
    assert "idempotency-key" in bad.json()["detail"]
    assert _available(client, alice) == HBAR  # the refused request changed nothing


def test_answers_are_kept_for_the_retention_window_only(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'server.db'}")
    user = store.add_user("keeper", "hash")
    assert user is not None
    kept = KeptAnswer("a" * 64, 201, '{"ok":1}')
    assert store.keep_answer(user.id, "k", kept, ttl_s=60) == kept
    # a second answer for the same key does not replace the first
    assert store.keep_answer(user.id, "k", KeptAnswer("b" * 64, 200, "{}"), ttl_s=60) == kept
    assert store.answer(user.id, "k") == kept
    store.keep_answer(user.id, "old", kept, ttl_s=-1)  # already past its window
    assert store.answer(user.id, "old") is None
    assert store.keep_answer(user.id, "old", KeptAnswer("c" * 64, 200, "{}"), ttl_s=60
                             ).request_sha256 == "c" * 64
