"""HTTP API: accounts, wallet ownership, Hedera linking, models, league, tracks."""

from __future__ import annotations

import onnx
from hiero_sdk_python import PrivateKey

from crowdlearning.evaluation.suite import is_play_seed
from tests.server.conftest import TestClient, signup

HBAR = 100_000_000


def test_signup_login_me_and_wrong_password(client: TestClient) -> None:
    # GIVEN a new user
    session = signup(client, "alice_api")
    assert session["token"] and session["user"]["username"] == "alice_api"
    # WHEN signing in again / with a wrong password / twice the same name
    ok = client.post("/api/auth/login", json={"username": "alice_api",
                                              "password": "correct horse"})
    bad = client.post("/api/auth/login", json={"username": "alice_api", "password": "wrong pass"})
    dup = client.post("/api/auth/signup", json={"username": "alice_api",
                                                "password": "correct horse"})
    # THEN
    assert ok.status_code == 200
    assert bad.status_code == 401 and bad.json()["code"] == "not_signed_in"
    assert dup.status_code == 409 and dup.json()["code"] == "username_taken"
    assert client.get("/api/auth/me").json()["username"] == "alice_api"


def test_password_is_hashed_with_argon2(client: TestClient) -> None:
    signup(client, "hash_check")
    user = client.app.state.runtime.store.user_by_name("hash_check")
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash


def test_wallet_needs_a_session_and_shows_only_the_owners_money(client: TestClient) -> None:
    # GIVEN two users; bob deposits
    bob = signup(client)
    client.post("/api/wallet/deposit", json={"amount_tinybar": 3 * HBAR})
    carol = signup(client)
    # WHEN carol (cookie now hers) and an anonymous client look at "the wallet"
    mine = client.get("/api/wallet").json()
    anonymous = TestClient(client.app).get("/api/wallet")
    as_bob = client.get("/api/wallet", headers={"Authorization": f"Bearer {bob['token']}"})
    # THEN each sees only their own balance; no session, no wallet
    assert carol["user"]["id"] != bob["user"]["id"]
    assert mine["available_tinybar"] == 0
    assert anonymous.status_code == 401
    assert as_bob.json()["available_tinybar"] == 3 * HBAR


def test_deposit_stake_and_paid_mode(client: TestClient) -> None:
    signup(client)
    w = client.post("/api/wallet/deposit", json={"amount_tinybar": 5 * HBAR}).json()
    assert w["available_tinybar"] == 5 * HBAR and not w["paid_mode"]
    w = client.post("/api/wallet/stake", json={"amount_tinybar": 2 * HBAR}).json()
    assert w["stake_tinybar"] == 2 * HBAR and w["paid_mode"]
    too_much = client.post("/api/wallet/stake", json={"amount_tinybar": 10 * HBAR})
    assert too_much.status_code == 409
    history = client.get("/api/wallet/history").json()["items"]
    assert {i["memo"] for i in history} >= {"deposit (faucet)", "lock stake"}


def test_amounts_must_be_positive_integers(client: TestClient) -> None:
    signup(client)
    for amount in (0, -5, 1.5, "10"):
        r = client.post("/api/wallet/deposit", json={"amount_tinybar": amount})
        assert r.status_code == 422, amount


def test_withdraw_needs_a_linked_account(client: TestClient) -> None:
    signup(client)
    client.post("/api/wallet/deposit", json={"amount_tinybar": HBAR})
    r = client.post("/api/wallet/withdraw", json={"amount_tinybar": HBAR // 2})
    assert r.status_code == 400 and r.json()["code"] == "hedera_link_required"


def test_link_hedera_account_by_signing_the_challenge(client: TestClient) -> None:
    # GIVEN a user and an ED25519 key holding a Hedera account on the local network
    signup(client)
    key = PrivateKey.generate_ed25519()
    account = client.app.state.runtime.transport.create_account(key.public_key())
    challenge = client.post("/api/auth/hedera/challenge").json()["challenge"]
    body = {"account_id": account, "public_key": key.public_key().to_bytes_raw().hex(),
            "signature": key.sign(challenge.encode()).hex()}
    # WHEN a wrong signature is sent, then the right one
    wrong = client.post("/api/auth/hedera/link", json={
        **body, "signature": PrivateKey.generate_ed25519().sign(challenge.encode()).hex()})
    client.post("/api/auth/hedera/challenge")  # the failed answer consumed the challenge
    challenge = client.post("/api/auth/hedera/challenge").json()["challenge"]
    right = client.post("/api/auth/hedera/link", json={
        **body, "signature": key.sign(challenge.encode()).hex()})
    replay = client.post("/api/auth/hedera/link", json=body)
    # THEN only the proof of the key links the account, and a challenge is answered once
    assert wrong.status_code == 400 and wrong.json()["code"] == "bad_key_proof"
    assert right.status_code == 200 and right.json()["hedera_account"] == account
    assert replay.status_code == 400


def _link(client: TestClient, account: str, key: PrivateKey, public_hex: str | None = None):
    challenge = client.post("/api/auth/hedera/challenge").json()["challenge"]
    return client.post("/api/auth/hedera/link", json={
        "account_id": account,
        "public_key": public_hex or key.public_key().to_bytes_raw().hex(),
        "signature": key.sign(challenge.encode()).hex()})


def test_link_needs_the_key_that_controls_the_account_on_chain(client: TestClient) -> None:
    # GIVEN someone else's account on the network, and a key of one's own
    signup(client)
    transport = client.app.state.runtime.transport
    victim = transport.create_account(PrivateKey.generate_ed25519().public_key())
    mine = PrivateKey.generate_ed25519()
    # WHEN claiming that account with a valid signature of one's own key, or an unknown account
    claimed = _link(client, victim, mine)
    unknown = _link(client, "0.0.987654", mine)
    # THEN both are refused and nothing is linked
    assert claimed.status_code == 400 and claimed.json()["code"] == "bad_key_proof"
    assert "does not control" in claimed.json()["detail"]
    assert unknown.status_code == 400 and "no such Hedera account" in unknown.json()["detail"]
    assert client.get("/api/auth/me").json()["hedera_account"] is None


def test_link_an_ecdsa_account(client: TestClient) -> None:
    signup(client)
    key = PrivateKey.generate_ecdsa()
    account = client.app.state.runtime.transport.create_account(key.public_key())
    linked = _link(client, account, key, key.public_key().to_bytes_ecdsa().hex())
    assert linked.status_code == 200, linked.text
    assert linked.json()["hedera_account"] == account


def test_withdraw_settles_on_hedera(client: TestClient) -> None:
    # GIVEN a linked user with a deposit
    signup(client)
    runtime = client.app.state.runtime
    key = PrivateKey.generate_ed25519()
    account = runtime.transport.create_account(key.public_key())
    challenge = client.post("/api/auth/hedera/challenge").json()["challenge"]
    client.post("/api/auth/hedera/link", json={
        "account_id": account, "public_key": key.public_key().to_bytes_raw().hex(),
        "signature": key.sign(challenge.encode()).hex()})
    client.post("/api/wallet/deposit", json={"amount_tinybar": 2 * HBAR})
    # WHEN withdrawing and settling
    r = client.post("/api/wallet/withdraw", json={"amount_tinybar": HBAR})
    client.app.state.referee.settle_once()
    runtime.service.settler.run_until_settled(max_runs=20, pause_s=0.05)
    # THEN the payout is posted with a Hedera transaction id and the money arrived
    payout = client.get(f"/api/wallet/payouts/{r.json()['payout_id']}").json()
    assert r.status_code == 202
    assert payout["state"] == "posted" and "@" in payout["transaction_id"]
    assert runtime.transport.account_balance(account) == HBAR
    assert client.get("/api/wallet").json()["available_tinybar"] == HBAR


def test_tracks_are_play_seeds_and_models_are_listed(client: TestClient) -> None:
    seeds = client.get("/api/game/tracks").json()
    assert seeds and all(is_play_seed(s) for s in seeds)
    track = client.get(f"/api/game/tracks/{seeds[0]}").json()
    assert track["seed"] == seeds[0]
    assert client.get("/api/game/tracks/1500000001").status_code == 404
    models = client.get("/api/models").json()
    assert models[0]["version"] == 0 and models[0]["champion"]
    weights = client.get("/api/models/0/weights")
    assert weights.status_code == 200 and len(weights.content) > 1000
    exported = client.get("/api/models/0/onnx")
    assert exported.status_code == 200
    model = onnx.load_from_string(exported.content)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["crowdlearning.version"] == "0"
    assert props["crowdlearning.weights_sha256"] == client.get("/api/models/0").json()[
        "weights_sha256"]
    assert client.get("/api/models/99").status_code == 404


def test_league_and_watch(client: TestClient) -> None:
    board = client.get("/api/league/leaderboard", params={"by": "earnings"}).json()
    assert board["by"] == "earnings" and isinstance(board["rows"], list)
    curve = client.get("/api/league/champion").json()
    assert curve[0]["version"] == 0 and "mean_lap_time_s" in curve[0]
    snap = client.get("/api/watch").json()
    assert snap["type"] == "watch" and snap["champion"]["name"].startswith("champion")
