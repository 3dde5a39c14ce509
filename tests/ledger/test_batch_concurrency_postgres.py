"""Batch booking with 8 concurrent writers on PostgreSQL: every key books once, balances exact,
no overdraft (skipped without ``CROWDLEARNING_TEST_POSTGRES_URL``, like the other PG tests)."""

from __future__ import annotations

import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from crowdlearning.ledger import InsufficientFundsError, Ledger
from crowdlearning.ledger.batch import BatchItem, Outcome
from crowdlearning.ledger.book import Move
from tests.ledger.factories import funded_player

THREADS = 8
PLAYERS = [f"p{n}" for n in range(5)]


def _code(player: str) -> str:
    return f"player:{player}:available"


def _run_all(jobs: list, fn) -> list:  # type: ignore[no-untyped-def, type-arg]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(fn, jobs))


def test_eight_writers_racing_the_same_keys_book_each_key_once(pg_ledger: Ledger) -> None:
    # GIVEN funded players and 400 transfers, each in three different batches of 50
    for player in PLAYERS:
        funded_player(pg_ledger, player, 1_000_000)
    rng = random.Random(11)
    moves = [
        Move(f"t{n}", *(_code(p) for p in rng.sample(PLAYERS, 2)), rng.randint(1, 1_000))
        for n in range(400)
    ]
    copies = moves * 3
    rng.shuffle(copies)
    batches = [copies[i : i + 50] for i in range(0, len(copies), 50)]
    # WHEN 8 writers book the batches concurrently
    results: list[list[BatchItem]] = _run_all(batches, pg_ledger.move_many)
    # THEN each key was booked exactly once and found booked the other two times
    outcomes = Counter((item.spec.id, item.outcome) for items in results for item in items)
    for move in moves:
        assert outcomes[(move.transfer_id, Outcome.BOOKED)] == 1
        assert outcomes[(move.transfer_id, Outcome.ALREADY_BOOKED)] == 2
    # AND each transfer moved money exactly once
    expected = dict.fromkeys(PLAYERS, 1_000_000)
    for move in moves:
        expected[move.from_account.split(":")[1]] -= move.amount_tinybar
        expected[move.to_account.split(":")[1]] += move.amount_tinybar
    for player, value in expected.items():
        assert pg_ledger.balance(_code(player)) == value
    assert pg_ledger.check_books().transfers == len(PLAYERS) + len(moves)


def test_batches_and_single_moves_racing_on_a_hot_account_never_overdraw(
    pg_ledger: Ledger,
) -> None:
    # GIVEN a budget of 100 and 240 rewards of 1 from it: 160 in batches of 20, 80 one by one
    pg_ledger.deposit("fund", "treasury", 100)
    pg_ledger.fund_reward_budget("budget", 100)
    funded_player(pg_ledger, "winner", 0)
    rewards = [Move(f"r{n}", "reward_budget", _code("winner"), 1) for n in range(240)]
    jobs: list[list[Move] | Move] = [rewards[i : i + 20] for i in range(0, 160, 20)]
    jobs += rewards[160:]
    random.Random(3).shuffle(jobs)

    def book(job: list[Move] | Move) -> int:
        if isinstance(job, list):
            return sum(item.outcome is Outcome.BOOKED for item in pg_ledger.move_many(job))
        try:
            pg_ledger.move(*job)
        except InsufficientFundsError:
            return 0
        return 1

    # WHEN they race
    booked = sum(_run_all(jobs, book))
    # THEN exactly 100 book and the budget is exactly empty
    assert booked == 100
    assert pg_ledger.balance("reward_budget") == 0
    assert pg_ledger.balance(_code("winner")) == 100
    pg_ledger.check_books()


def test_crossing_batches_do_not_deadlock(pg_ledger: Ledger) -> None:
    # GIVEN batches whose transfers touch the same accounts in opposite orders
    for player in PLAYERS:
        funded_player(pg_ledger, player, 1_000_000)
    forward = [Move(f"f{n}", _code("p0"), _code("p4"), 1) for n in range(40)]
    backward = [Move(f"b{n}", _code("p4"), _code("p0"), 1) for n in range(40)]
    batches = [
        [*(forward if k % 2 else backward)[i : i + 10], Move(f"x{k}", _code("p1"), _code("p2"), 1)]
        for k in range(8)
        for i in (0, 10, 20, 30)
    ]
    # WHEN 8 writers book them (row locks are taken in ascending id order per batch)
    results = _run_all(batches, pg_ledger.move_many)
    # THEN all succeed (no ConcurrencyError from deadlock retries) and the books balance
    assert all(item.ok for items in results for item in items)
    assert pg_ledger.balance(_code("p0")) == 1_000_000
    assert pg_ledger.balance(_code("p1")) == 1_000_000 - 8
    pg_ledger.check_books()
