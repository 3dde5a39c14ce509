"""Posting transfers: balances, idempotency, bad inputs that change nothing."""

from __future__ import annotations

import pytest

from crowdlearning.ledger import (
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    Ledger,
    Leg,
    TransferSpec,
    UnknownAccountError,
)
from crowdlearning.ledger.validation import INT64_MAX
from tests.ledger.factories import funded_player


def test_deposit_then_move_updates_both_balances(ledger: Ledger) -> None:
    # GIVEN two players, one funded
    funded_player(ledger, "alice", 1_000)
    ledger.open_player("bob")
    # WHEN alice pays bob
    ledger.move("t1", "player:alice:available", "player:bob:available", 300)
    # THEN both balances moved and the world carries the deposit
    assert ledger.balance("player:alice:available") == 700
    assert ledger.balance("player:bob:available") == 300
    assert ledger.balance("world") == -1_000
    ledger.check_books()


def test_same_id_same_content_returns_the_same_transfer(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000)
    first = ledger.move("t1", "player:alice:available", "treasury", 100)
    again = ledger.move("t1", "player:alice:available", "treasury", 100)
    assert again == first
    assert ledger.balance("treasury") == 100


def test_same_id_different_content_is_refused(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000)
    ledger.move("t1", "player:alice:available", "treasury", 100)
    with pytest.raises(IdempotencyConflictError, match="t1"):
        ledger.move("t1", "player:alice:available", "treasury", 101)
    assert ledger.balance("treasury") == 100


def test_multi_leg_transfer(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000)
    spec = TransferSpec(
        id="split",
        legs=(
            Leg("player:alice:available", -600),
            Leg("treasury", 100),
            Leg("reward_budget", 500),
        ),
    )
    assert ledger.transfer(spec).amount_tinybar == 600
    assert ledger.balance("reward_budget") == 500
    ledger.check_books()


def test_overdraft_is_refused_and_changes_nothing(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 100)
    with pytest.raises(InsufficientFundsError, match="holds 100"):
        ledger.move("t1", "player:alice:available", "treasury", 101)
    assert ledger.balance("player:alice:available") == 100
    assert ledger.get_transfer("t1") is None


@pytest.mark.parametrize("amount", [0, -5, INT64_MAX + 1, 2**70, 1.5, "10", True, None], ids=repr)
def test_bad_amounts_are_refused(ledger: Ledger, amount: object) -> None:
    funded_player(ledger, "alice", 100)
    with pytest.raises(InvalidInputError, match="amount"):
        ledger.move("t1", "player:alice:available", "treasury", amount)  # type: ignore[arg-type]
    assert ledger.balance("player:alice:available") == 100


def test_unknown_account_is_refused(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 100)
    with pytest.raises(UnknownAccountError, match="player:nobody:available"):
        ledger.move("t1", "player:alice:available", "player:nobody:available", 10)
    assert ledger.balance("player:alice:available") == 100
    with pytest.raises(UnknownAccountError):
        ledger.balance("nope")


@pytest.mark.parametrize("bad_id", ["", " x", "a" * 129, "x/y", "bad id", None])
def test_bad_transfer_ids_are_refused(ledger: Ledger, bad_id: object) -> None:
    with pytest.raises(InvalidInputError, match="transfer id"):
        ledger.move(bad_id, "world", "treasury", 1)  # type: ignore[arg-type]


def test_unbalanced_legs_are_refused_in_python() -> None:
    with pytest.raises(InvalidInputError, match="sum to zero"):
        TransferSpec(id="x", legs=(Leg("world", -5), Leg("treasury", 4)))
    with pytest.raises(InvalidInputError, match="two legs"):
        TransferSpec(id="x", legs=(Leg("world", -5),))
    with pytest.raises(InvalidInputError, match="twice"):
        TransferSpec(id="x", legs=(Leg("world", -5), Leg("world", 5)))


def test_balance_overflow_beyond_int64_is_refused(ledger: Ledger) -> None:
    ledger.deposit("d1", "treasury", INT64_MAX)
    with pytest.raises(InsufficientFundsError, match="overflow"):
        ledger.deposit("d2", "treasury", 1)
    assert ledger.balance("treasury") == INT64_MAX


def test_history_lists_transfers_newest_first(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000)
    ledger.move("t1", "player:alice:available", "treasury", 1)
    ledger.move("t2", "player:alice:available", "treasury", 2)
    ids = [t.id for t in ledger.history("player:alice:available", limit=10)]
    assert ids == ["t2", "t1", "dep-alice"]
    assert [t.id for t in ledger.history("player:alice:available", limit=1, offset=1)] == ["t1"]
