"""``MoveBatcher``: one-at-a-time callers, booked together, see what ``Ledger.move`` gives."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from crowdlearning.ledger import (
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    Ledger,
    TransferKind,
    TransferSpec,
    UnknownAccountError,
)
from crowdlearning.ledger.batcher import MoveBatcher
from tests.ledger.factories import funded_player

A, B = "player:a:available", "player:b:available"


@pytest.fixture
def funded(ledger: Ledger) -> Ledger:
    funded_player(ledger, "a", 1_000)
    funded_player(ledger, "b", 0)
    return ledger


def test_a_caller_gets_the_transfer_or_the_error_move_would_give(funded: Ledger) -> None:
    with MoveBatcher(funded) as batcher:
        booked = batcher.move("t1", A, B, 600, memo="hi")
        assert booked == funded.get_transfer("t1")
        assert batcher.move("t1", A, B, 600, memo="hi") == booked  # idempotent
        with pytest.raises(InsufficientFundsError) as refused:
            batcher.move("t2", A, B, 600)
        assert refused.value.account == A
        with pytest.raises(UnknownAccountError):
            batcher.move("t3", A, "player:ghost:available", 1)
        with pytest.raises(IdempotencyConflictError):
            batcher.move("t1", A, B, 1)
        with pytest.raises(InvalidInputError):  # refused alone, before it is queued
            batcher.transfer(
                TransferSpec.move("v", B, A, 1, kind=TransferKind.VOID, pending_id="t1")
            )
    assert (funded.balance(A), funded.balance(B)) == (400, 600)
    funded.check_books()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.move("t4", A, B, 1)


def test_concurrent_callers_share_transactions_and_each_key_books_once(funded: Ledger) -> None:
    # GIVEN 8 callers released together, 200 transfers of 1, each submitted twice
    jobs = [f"t{n}" for n in range(200)] * 2
    start = threading.Barrier(8)

    def call(tid: str) -> str:
        return batcher.move(tid, A, B, 1).id

    def caller(chunk: list[str]) -> list[str]:
        start.wait()
        return [call(tid) for tid in chunk]

    # WHEN they book one at a time through one batcher that waits up to 20 ms for company
    with MoveBatcher(funded, max_wait_s=0.02) as batcher, ThreadPoolExecutor(8) as pool:
        done = [tid for ids in pool.map(caller, [jobs[k::8] for k in range(8)]) for tid in ids]
    # THEN every call returned its transfer, each key moved money once,
    assert sorted(done) == sorted(jobs)
    assert (funded.balance(A), funded.balance(B)) == (800, 200)
    assert funded.check_books().transfers == 1 + 200
    # AND the 400 calls took far fewer transactions than one each
    assert batcher.batches < 200


def test_a_failing_batch_fails_each_of_its_callers(funded: Ledger) -> None:
    funded.engine.dispose()

    class Broken(Ledger):
        def transfer_many(self, specs):  # type: ignore[no-untyped-def, override]
            raise RuntimeError("database down")

    broken = Broken(funded.engine, stake_minimum_tinybar=1, hold_tinybar=1)
    with MoveBatcher(broken) as batcher:
        with pytest.raises(RuntimeError, match="database down"):
            batcher.move("t1", A, B, 1)
        assert batcher.batches == 1
    assert funded.get_transfer("t1") is None
