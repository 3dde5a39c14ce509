"""The wallet's history as people read it: one event per ledger transfer, in words."""

from __future__ import annotations

from hiero_sdk_python import PrivateKey

from crowdlearning.ledger.records import Transfer, TransferSpec
from crowdlearning.server.wallet_events import describe, short_id
from tests.server.conftest import TestClient, signup

HBAR = 100_000_000


def _events(client: TestClient) -> list[dict]:
    r = client.get("/api/wallet/events?limit=50")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_deposit_lock_unlock_withdraw_are_one_line_each_in_words(client: TestClient) -> None:
    # GIVEN a player who links an account, deposits, locks and unlocks stake, withdraws
    signup(client)
    runtime = client.app.state.runtime
    key = PrivateKey.generate_ed25519()
    account = runtime.transport.create_account(key.public_key())
    challenge = client.post("/api/auth/hedera/challenge").json()["challenge"]
    assert client.post("/api/auth/hedera/link", json={
        "account_id": account, "public_key": key.public_key().to_string_der(),
        "signature": key.sign(challenge.encode()).hex()}).status_code == 200
    client.post("/api/wallet/deposit", json={"amount_tinybar": 5 * HBAR})
    client.post("/api/wallet/stake", json={"amount_tinybar": 2 * HBAR})
    client.post("/api/wallet/unstake", json={"amount_tinybar": HBAR})
    assert client.post("/api/wallet/withdraw", json={"amount_tinybar": HBAR}).status_code == 202
    # WHEN the history is read as events
    events = _events(client)
    # THEN one line per event, newest first, in words, with how the total changed
    texts = [e["text"] for e in events]
    assert texts == [f"withdrawal to {account}", "stake unlocked", "stake locked",
                     "deposit (development faucet)"]
    by_text = {e["text"]: e for e in events}
    assert by_text["stake locked"]["change_tinybar"] == 0  # between the player's own balances
    assert by_text["stake locked"]["amount_tinybar"] == 2 * HBAR
    assert by_text["stake locked"]["stake_delta_tinybar"] == 2 * HBAR
    assert by_text["deposit (development faucet)"]["change_tinybar"] == 5 * HBAR
    assert by_text[f"withdrawal to {account}"]["change_tinybar"] == -HBAR
    assert by_text[f"withdrawal to {account}"]["destination"] == account
    # the leg-by-leg history is unchanged for API clients: locking stake is two legs there
    legs = client.get("/api/wallet/history").json()["items"]
    assert len(legs) == len(events) + 2  # lock and unlock touch two of the player's accounts


def _transfer(transfer_id: str, legs: dict[str, int], memo: str = "") -> Transfer:
    spec = TransferSpec.move(transfer_id, *_from_to(legs), abs(min(legs.values())), memo=memo)
    return Transfer(spec=spec, created_at_ns=1)


def _from_to(legs: dict[str, int]) -> tuple[str, str]:
    [source] = [a for a, v in legs.items() if v < 0]
    [target] = [a for a, v in legs.items() if v > 0]
    return source, target


P = "p1"
AVAILABLE, STAKE, HELD = (f"player:{P}:{k}" for k in ("available", "stake", "held"))


def test_a_paid_runs_transfers_read_as_held_penalty_released_reward() -> None:
    run = "run-3f9a1c2b44d5e6f70812"
    cases = [
        (f"hold:{run}", {STAKE: -10, HELD: 10}, "", "stake_held", "stake held for run 3f9a1c2b", 0),
        (f"penalty:{run}", {HELD: -4, "treasury": 4}, "penalty", "penalty",
         "penalty for run 3f9a1c2b", -4),
        (f"release:{run}", {HELD: -6, STAKE: 6}, "", "stake_released",
         "stake released after the verdict on run 3f9a1c2b", 0),
        (f"reward:{run}", {"reward_budget": -7, AVAILABLE: 7}, "reward", "reward",
         "reward for run 3f9a1c2b", 7),
        (f"payout:reward:{run}", {AVAILABLE: -7, "pending_payouts": 7}, "payout to 0.0.1234",
         "reward_sent", "reward for run 3f9a1c2b sent to 0.0.1234", -7),
        (f"pool-reward:{run}", {"reward_budget": -5, AVAILABLE: 5}, "share of the pool",
         "reward", "share of the round's pool for run 3f9a1c2b", 5),
        (f"payout:reward:{run}:pool", {AVAILABLE: -5, "pending_payouts": 5},
         "payout to 0.0.1234", "reward_sent", "pool share for run 3f9a1c2b sent to 0.0.1234", -5),
        (f"void:{run}", {HELD: -10, STAKE: 10}, "", "stake_returned",
         "stake returned: run 3f9a1c2b was never judged", 0),
        ("api:shop:order-9", {"client:shop": -3, AVAILABLE: 3}, "prize", "payment",
         "payment from shop: prize", 3),
    ]
    for transfer_id, legs, memo, kind, text, change in cases:
        event = describe(_transfer(transfer_id, legs, memo), P)
        assert (event.kind, event.text, event.change_tinybar) == (kind, text, change), transfer_id
    assert describe(_transfer(f"hold:{run}", {STAKE: -10, HELD: 10}), P).run_id == run


def test_a_payout_returned_names_where_it_was_going() -> None:
    payout = "withdraw:p1:0011223344556677"
    returned = _transfer(f"payout:{payout}:void", {"pending_payouts": -5, AVAILABLE: 5},
                         "payout void")
    event = describe(returned, P, {payout: "0.0.77"}.get)
    assert event.kind == "payout_returned" and event.change_tinybar == 5
    assert event.text == "withdrawal to 0.0.77 not sent: back in your balance"


def test_short_ids_drop_the_prefix() -> None:
    assert short_id("run-3f9a1c2b44d5e6f70812") == "3f9a1c2b"
