"""Batch booking (``Ledger.move_many`` / ``transfer_many``): per-transfer outcomes, idempotency,
running balances, and the same books as posting the transfers one by one."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import DBAPIError

from crowdlearning.ledger import (
    AccountKind,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    Ledger,
    Leg,
    TransferKind,
    TransferSpec,
    UnknownAccountError,
    make_engine,
    postings,
)
from crowdlearning.ledger.batch import MAX_BATCH, Outcome
from crowdlearning.ledger.book import Move
from crowdlearning.ledger.schema import accounts, legs
from tests.ledger.factories import funded_player, new_ledger, postgres_schema_engine

A, B, C = (f"player:{p}:available" for p in "abc")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ledger(request: pytest.FixtureRequest) -> Ledger:
    """A migrated ledger with players a (1_000), b and c (0) on each supported database."""
    engine_fixture = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    ledger = new_ledger(request.getfixturevalue(engine_fixture))
    funded_player(ledger, "a", 1_000)
    funded_player(ledger, "b", 0)
    funded_player(ledger, "c", 0)
    return ledger


def test_each_transfer_gets_its_own_outcome_and_the_others_book(any_ledger: Ledger) -> None:
    items = any_ledger.move_many(
        [
            Move("t1", A, B, 600),
            Move("t2", A, C, 600),  # a holds 400 now: refused alone
            Move("t3", A, C, 400),
            Move("t4", A, "player:nobody:available", 1),
            Move("t1", A, B, 600),  # repeated key, same content: booked once
            Move("t1", A, C, 600),  # repeated key, other content
        ]
    )
    assert [i.outcome for i in items] == [
        Outcome.BOOKED,
        Outcome.INSUFFICIENT_FUNDS,
        Outcome.BOOKED,
        Outcome.UNKNOWN_ACCOUNT,
        Outcome.ALREADY_BOOKED,
        Outcome.IDEMPOTENCY_CONFLICT,
    ]
    assert [i.ok for i in items] == [True, False, True, False, True, False]
    assert items[1].account == A and "holds 400" in items[1].detail
    assert items[3].account == "player:nobody:available"
    assert items[4].transfer == items[0].transfer
    assert items[5].transfer is None and "already used" in items[5].detail
    assert (any_ledger.balance(A), any_ledger.balance(B), any_ledger.balance(C)) == (0, 600, 400)
    assert any_ledger.get_transfer("t2") is None
    assert any_ledger.check_books().transfers == 3  # deposit to a, t1, t3


def test_a_replayed_batch_moves_nothing_and_returns_the_stored_records(any_ledger: Ledger) -> None:
    moves = [Move(f"t{n}", A, B, 10 * (n + 1), memo=f"m{n}") for n in range(5)]
    first = any_ledger.move_many(moves)
    books = any_ledger.check_books()
    again = any_ledger.move_many(moves)
    assert [i.outcome for i in again] == [Outcome.ALREADY_BOOKED] * 5
    assert [i.transfer for i in again] == [i.transfer for i in first]
    assert any_ledger.check_books() == books
    assert any_ledger.balance(B) == 150


def test_a_stored_key_with_other_content_is_a_conflict(any_ledger: Ledger) -> None:
    any_ledger.move("t1", A, B, 5)
    items = any_ledger.move_many([("t1", A, B, 6), ("t2", A, B, 7, "plain tuples work too")])
    assert [i.outcome for i in items] == [Outcome.IDEMPOTENCY_CONFLICT, Outcome.BOOKED]
    assert any_ledger.balance(B) == 12
    assert items[1].transfer is not None and items[1].transfer.spec.memo == "plain tuples work too"


def test_transfers_book_in_order_against_running_balances(any_ledger: Ledger) -> None:
    # b has 0: b -> c can only book after a -> b in the same batch
    refused = any_ledger.move_many([Move("x1", B, C, 100), Move("x2", A, B, 100)])
    assert [i.outcome for i in refused] == [Outcome.INSUFFICIENT_FUNDS, Outcome.BOOKED]
    chained = any_ledger.move_many([Move("y1", A, B, 900), Move("y2", B, C, 1_000)])
    assert [i.outcome for i in chained] == [Outcome.BOOKED, Outcome.BOOKED]
    assert (any_ledger.balance(A), any_ledger.balance(B), any_ledger.balance(C)) == (0, 0, 1_000)
    any_ledger.check_books()


def test_multi_leg_transfers_and_negative_allowed_accounts(any_ledger: Ledger) -> None:
    split = TransferSpec("split", (Leg(A, -300), Leg(B, 100), Leg(C, 200)), memo="split")
    deposit = TransferSpec.move("dep", "world", C, 50)  # world may go negative
    items = any_ledger.transfer_many([split, deposit])
    assert [i.outcome for i in items] == [Outcome.BOOKED, Outcome.BOOKED]
    assert any_ledger.get_transfer("split") == items[0].transfer
    assert (any_ledger.balance(A), any_ledger.balance(B), any_ledger.balance(C)) == (700, 100, 250)
    any_ledger.check_books()


def test_pending_transfers_book_but_post_and_void_are_not_batched(any_ledger: Ledger) -> None:
    pending = TransferSpec.move("p1", A, "pending_payouts", 10, kind=TransferKind.PENDING)
    resolve = TransferSpec.move(
        "p1:post", "pending_payouts", "world", 10, kind=TransferKind.POST, pending_id="p1"
    )
    with pytest.raises(InvalidInputError, match="not batched"):
        any_ledger.transfer_many([pending, resolve])
    assert any_ledger.get_transfer("p1") is None  # the whole call was refused up front


def test_empty_and_oversized_batches(ledger: Ledger) -> None:
    assert ledger.move_many([]) == []
    with pytest.raises(InvalidInputError, match="at most"):
        ledger.move_many([Move(f"t{n}", A, B, 1) for n in range(MAX_BATCH + 1)])
    with pytest.raises(InvalidInputError):
        ledger.move_many([Move("bad id!", A, B, 1)])


def test_a_batch_touching_over_a_thousand_accounts_locks_them_in_chunks(ledger: Ledger) -> None:
    # GIVEN 1_100 players opened in one transaction and funded from world in one batch
    codes = [f"player:q{n}:available" for n in range(1_100)]
    ledger.run(
        lambda c: [
            postings.open_account(c, code, AccountKind.AVAILABLE, now_ns=1) for code in codes
        ]
    )
    funding = ledger.move_many([Move(f"f{n}", "world", code, 10) for n, code in enumerate(codes)])
    assert all(i.outcome is Outcome.BOOKED for i in funding)
    # WHEN each passes its 10 on to the next (a ring) in one batch
    ring = [Move(f"r{n}", code, codes[n - 1], 10) for n, code in enumerate(codes)]
    items = ledger.move_many(ring)
    # THEN all book and every balance is back to 10 (each gave 10 and received 10)
    assert all(i.outcome is Outcome.BOOKED for i in items)
    assert {ledger.balance(code) for code in codes} == {10}
    assert ledger.check_books().transfers == 2 * 1_100


def test_the_database_still_refuses_an_overdraft_in_a_multi_row_insert(
    any_ledger: Ledger,
) -> None:
    # the grouped balance trigger (PostgreSQL, migration 0008) and the row trigger (SQLite)
    # apply a many-leg statement; a statement leaving a forbidding account negative fails
    query = sa.select(accounts.c.id).where(accounts.c.code.in_([A, B])).order_by(accounts.c.code)
    a_id, b_id = any_ledger.run(lambda c: c.execute(query).scalars().all())
    rows = [
        {"transfer_id": "raw", "leg_no": 0, "account_id": a_id, "amount_tinybar": -1_001},
        {"transfer_id": "raw", "leg_no": 1, "account_id": b_id, "amount_tinybar": 1_001},
    ]
    with pytest.raises(InsufficientFundsError):
        any_ledger.run(lambda c: c.execute(legs.insert(), rows))
    assert any_ledger.balance(A) == 1_000
    any_ledger.check_books()


def test_concurrent_batches_on_sqlite_book_each_key_once(ledger: Ledger) -> None:
    # GIVEN 2 funded players and 300 transfers, each in two of 12 batches
    funded_player(ledger, "a", 10_000)
    funded_player(ledger, "b", 10_000)
    moves = [Move(f"t{n}", *((A, B) if n % 2 else (B, A)), n) for n in range(1, 301)]
    copies = moves + moves[::-1]
    batches = [copies[i : i + 50] for i in range(0, len(copies), 50)]
    # WHEN 8 threads book them at once (one writer at a time inside SQLite)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ledger.move_many, batches))
    # THEN every key booked once and was found booked once
    outcomes = Counter(item.outcome for items in results for item in items)
    assert outcomes == {Outcome.BOOKED: 300, Outcome.ALREADY_BOOKED: 300}
    moved = sum(m.amount_tinybar if m.to_account == A else -m.amount_tinybar for m in moves)
    assert ledger.balance(A) == 10_000 + moved
    assert ledger.check_books().transfers == 2 + 300


def _ids(ledger: Ledger, *codes: str) -> list[int]:
    query = sa.select(accounts.c.code, accounts.c.id).where(accounts.c.code.in_(codes))
    found = dict(ledger.run(lambda c: c.execute(query).all()))  # type: ignore[arg-type]
    return [found[code] for code in codes]


def _raw_many(conn: sa.Connection, leg_rows: list[tuple], headers: list[tuple]) -> None:  # type: ignore[type-arg]
    """Many legs in one statement, then many headers in one statement (as a batch does)."""
    conn.exec_driver_sql(
        "INSERT INTO ledger_legs (transfer_id, leg_no, account_id, amount_tinybar) VALUES "
        + ", ".join(f"('{t}', {n}, {a}, {v})" for t, n, a, v in leg_rows)
    )
    conn.exec_driver_sql(
        "INSERT INTO ledger_transfers (id, kind, amount_tinybar, memo, created_at_ns) VALUES "
        + ", ".join(f"('{t}', 'single', {v}, '', 0)" for t, v in headers)
    )


def test_the_database_checks_every_header_of_a_many_row_statement(any_ledger: Ledger) -> None:
    # the statement triggers of 0008 (PostgreSQL) check every row of the statement, not one
    a, b = _ids(any_ledger, A, B)
    legs_ok = [
        (f"r{n}", k, acc, v) for n in range(5) for k, (acc, v) in enumerate(((a, -1), (b, 1)))
    ]
    bad = [("r5", 0, a, -2), ("r5", 1, b, 1)]  # the last transfer does not sum to zero
    with pytest.raises(DBAPIError, match="sum to zero"), any_ledger.engine.begin() as conn:
        _raw_many(conn, legs_ok + bad, [(f"r{n}", 1) for n in range(6)])
    assert any_ledger.balance(A) == 1_000 and any_ledger.get_transfer("r0") is None
    # AND legs added to an already sealed transfer, among new ones, are refused
    any_ledger.move("sealed", A, B, 1)
    with pytest.raises(DBAPIError, match="sealed"), any_ledger.engine.begin() as conn:
        _raw_many(conn, [*legs_ok, ("sealed", 7, a, 5)], [(f"r{n}", 1) for n in range(5)])
    # AND a well-formed many-row statement books and balances follow all its legs
    with any_ledger.engine.begin() as conn:
        _raw_many(conn, legs_ok, [(f"r{n}", 1) for n in range(5)])
    assert (any_ledger.balance(A), any_ledger.balance(B)) == (1_000 - 6, 6)
    any_ledger.check_books()


# --- the same books as posting one by one -------------------------------------------------

PLAYERS = ("a", "b", "c")
moves = st.lists(
    st.tuples(
        st.integers(0, 11),  # key: small, so keys repeat (in a batch and across batches)
        st.sampled_from((*PLAYERS, "world", "ghost")),
        st.sampled_from((*PLAYERS, "ghost")),
        st.integers(1, 700),
    ),
    max_size=25,
)


def _account(name: str) -> str:
    return name if name == "world" else f"player:{name}:available"


def _one_by_one(ledger: Ledger, batch: list[Move]) -> list[Outcome]:
    """What ``postings.post`` does with each transfer in order, as outcomes."""
    outcomes = []
    for move in batch:
        stored = ledger.get_transfer(move.transfer_id)
        try:
            ledger.move(*move)
        except InsufficientFundsError:
            outcomes.append(Outcome.INSUFFICIENT_FUNDS)
        except UnknownAccountError:
            outcomes.append(Outcome.UNKNOWN_ACCOUNT)
        except IdempotencyConflictError:
            outcomes.append(Outcome.IDEMPOTENCY_CONFLICT)
        else:
            outcomes.append(Outcome.BOOKED if stored is None else Outcome.ALREADY_BOOKED)
    return outcomes


def _check_equivalence(batched: Ledger, single: Ledger, max_examples: int) -> None:
    # GIVEN two ledgers in the same state (reused across examples: each uses its own keys)
    for ledger in (batched, single):
        for p in PLAYERS:
            funded_player(ledger, p, 500)
    examples = iter(range(10**6))

    # WHEN random batches (keys repeating inside and across batches, unknown accounts,
    # overdrafts) go to one through move_many and to the other one move at a time
    @settings(
        max_examples=max_examples,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: bounded time
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(batches=st.lists(moves, min_size=1, max_size=3))
    def check(batches: list[list[tuple[int, str, str, int]]]) -> None:
        n = next(examples)
        for raw in batches:
            batch = [
                Move(f"e{n}-k{key}", _account(src), _account(dst), amount)
                for key, src, dst, amount in raw
                if src != dst
            ]
            # THEN each transfer has the outcome posting it alone would have had
            got = [item.outcome for item in batched.move_many(batch)]
            assert got == _one_by_one(single, batch)
        # AND the books are the same, every invariant holding
        for p in (*PLAYERS, "world"):
            assert batched.balance(_account(p)) == single.balance(_account(p))
        assert batched.check_books() == single.check_books()

    check()


def test_batches_give_the_books_of_posting_one_by_one(tmp_path: Path) -> None:
    engines = [make_engine(f"sqlite:///{tmp_path / name}.db") for name in ("batch", "single")]
    try:
        _check_equivalence(*(new_ledger(engine) for engine in engines), max_examples=40)
    finally:
        for engine in engines:
            engine.dispose()


def test_batches_give_the_books_of_posting_one_by_one_on_postgres(postgres_url: str) -> None:
    """The same on PostgreSQL (unnest inserts, statement triggers of 0008)."""
    with (
        postgres_schema_engine(postgres_url) as batch_engine,
        postgres_schema_engine(postgres_url) as single_engine,
    ):
        _check_equivalence(new_ledger(batch_engine), new_ledger(single_engine), max_examples=12)
