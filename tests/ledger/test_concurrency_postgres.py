"""Many concurrent writers on PostgreSQL keep balances exact (row locks + bounded retries)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from crowdlearning.ledger import (
    ChargeNotAuthorizedError,
    IdempotencyConflictError,
    InsufficientFundsError,
    Ledger,
    TransferSpec,
    clients,
)
from tests.ledger.factories import funded_player

THREADS = 8
PLAYERS = [f"p{n}" for n in range(5)]


def _run_all(jobs: list, fn) -> list:  # type: ignore[no-untyped-def, type-arg]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(fn, jobs))


def test_concurrent_transfers_with_duplicate_ids_post_exactly_once(pg_ledger: Ledger) -> None:
    # GIVEN funded players and 200 transfers, each submitted twice, in random order
    for player in PLAYERS:
        funded_player(pg_ledger, player, 1_000_000)
    rng = random.Random(7)
    transfers = [(f"t{n}", *rng.sample(PLAYERS, 2), rng.randint(1, 1_000)) for n in range(200)]
    jobs = transfers * 2
    rng.shuffle(jobs)
    # WHEN 8 threads post them concurrently
    _run_all(
        jobs,
        lambda j: pg_ledger.move(
            j[0], f"player:{j[1]}:available", f"player:{j[2]}:available", j[3]
        ),
    )
    # THEN each transfer moved money exactly once
    expected = dict.fromkeys(PLAYERS, 1_000_000)
    for _, src, dst, amount in transfers:
        expected[src] -= amount
        expected[dst] += amount
    for player, value in expected.items():
        assert pg_ledger.balance(f"player:{player}:available") == value
    assert pg_ledger.check_books().transfers == len(PLAYERS) + len(transfers)


def test_concurrent_spending_of_a_hot_account_never_overdraws(pg_ledger: Ledger) -> None:
    # GIVEN a budget of 100 and 160 concurrent rewards of 1 from it
    pg_ledger.deposit("fund", "treasury", 100)
    pg_ledger.fund_reward_budget("budget", 100)
    funded_player(pg_ledger, "winner", 0)

    def reward(n: int) -> bool:
        try:
            pg_ledger.move(f"r{n}", "reward_budget", "player:winner:available", 1)
        except InsufficientFundsError:
            return False
        return True

    # WHEN they race
    outcomes = _run_all(list(range(160)), reward)
    # THEN exactly 100 succeed and the budget is exactly empty
    assert sum(outcomes) == 100
    assert pg_ledger.balance("reward_budget") == 0
    assert pg_ledger.balance("player:winner:available") == 100
    pg_ledger.check_books()


@pytest.mark.parametrize("n_holds", [30])
def test_concurrent_holds_respect_the_stake(pg_ledger: Ledger, n_holds: int) -> None:
    funded_player(pg_ledger, "alice", 0, stake=100_000)  # room for 10 holds of 10_000
    outcomes = _run_all(list(range(n_holds)), lambda n: _try_hold(pg_ledger, n))
    assert sum(outcomes) == 10
    assert pg_ledger.player_balances("alice").held_tinybar == 100_000
    pg_ledger.check_books()


def _try_hold(ledger: Ledger, n: int) -> bool:
    try:
        ledger.hold_for_contribution("alice", f"c{n}")
    except InsufficientFundsError:
        return False
    return True


def test_concurrent_different_verdicts_on_one_hold_apply_once(pg_ledger: Ledger) -> None:
    # GIVEN one held contribution and a funded reward budget
    funded_player(pg_ledger, "alice", 0, stake=100_000)
    pg_ledger.deposit("fund", "treasury", 10_000)
    pg_ledger.fund_reward_budget("budget", 10_000)
    pg_ledger.hold_for_contribution("alice", "c1")

    # WHEN eight threads race to settle it with different rewards
    def settle(reward: int) -> bool:
        try:
            pg_ledger.settle_contribution("c1", reward_tinybar=reward, penalty_tinybar=0)
        except IdempotencyConflictError:
            return False
        return True

    outcomes = _run_all(list(range(8)), settle)
    # THEN exactly one verdict applied
    assert sum(outcomes) == 1
    won = outcomes.index(True)
    assert pg_ledger.player_balances("alice").available_tinybar == won
    pg_ledger.check_books()


def test_concurrent_charges_stay_within_the_mandate(pg_ledger: Ledger) -> None:
    # GIVEN a player who allows a client 1_000 and holds plenty
    funded_player(pg_ledger, "alice", 100_000)
    pg_ledger.run(lambda c: clients.open_client(c, "acme", now_ns=1))
    pg_ledger.run(lambda c: clients.grant_mandate(c, "alice", "acme", 1_000, now_ns=1))

    def charge(n: int) -> bool:
        spec = TransferSpec.move(f"ch{n}", "player:alice:available", "client:acme", 200)
        try:
            pg_ledger.run(lambda c: clients.charge(c, "acme", "alice", spec, now_ns=1))
        except ChargeNotAuthorizedError:
            return False
        return True

    # WHEN 12 charges of 200 race
    outcomes = _run_all(list(range(12)), charge)
    # THEN exactly five fit
    assert sum(outcomes) == 5
    assert pg_ledger.balance("client:acme") == 1_000
    pg_ledger.check_books()
