"""Holds behind paid runs: read, voided when the run is never judged, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from crowdlearning.ledger import (
    InsufficientFundsError,
    Ledger,
    StakeRequiredError,
    TransferStateError,
)
from tests.ledger.factories import HOLD, STAKE_MINIMUM, funded_player, new_ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def any_ledger(request: pytest.FixtureRequest) -> Ledger:
    """A migrated ledger on each supported database, Alice with twice the minimum stake."""
    engine_fixture = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    ledger = new_ledger(request.getfixturevalue(engine_fixture))
    funded_player(ledger, "alice", 1_000, stake=2 * STAKE_MINIMUM)
    return ledger


def test_held_stake_is_listed_by_run_and_cannot_be_unlocked(any_ledger: Ledger) -> None:
    # GIVEN two paid runs of Alice's holding stake
    any_ledger.hold_for_contribution("alice", "run-1")
    any_ledger.hold_for_contribution("alice", "run-2")
    # THEN her held balance is made of exactly those holds, named by run
    held = any_ledger.open_holds("alice")
    assert [(h.contribution_id, h.amount_tinybar, h.state) for h in held] == [
        ("run-1", HOLD, "open"), ("run-2", HOLD, "open")]
    assert any_ledger.player_balances("alice").held_tinybar == 2 * HOLD
    # AND unlocking the whole stake is refused; only the unheld part moves
    with pytest.raises(InsufficientFundsError, match="held behind contributions"):
        any_ledger.unlock_stake("u1", "alice", 2 * STAKE_MINIMUM)
    any_ledger.unlock_stake("u2", "alice", 2 * STAKE_MINIMUM - 2 * HOLD)
    assert any_ledger.player_balances("alice").held_tinybar == 2 * HOLD
    any_ledger.check_books()


def test_a_void_gives_the_hold_back_once_and_no_verdict_follows(any_ledger: Ledger) -> None:
    any_ledger.hold_for_contribution("alice", "run-1")
    # WHEN the run is voided, twice (a retry after a crash)
    first = any_ledger.void_hold("run-1")
    again = any_ledger.void_hold("run-1")
    # THEN the whole hold went back to the stake once, through void:<run>
    assert first is not None and first.state == "voided" and again == first
    balances = any_ledger.player_balances("alice")
    assert (balances.stake_tinybar, balances.held_tinybar) == (2 * STAKE_MINIMUM, 0)
    void = any_ledger.get_transfer("void:run-1")
    assert void is not None and void.leg_for("player:alice:stake") == HOLD
    assert any_ledger.open_holds("alice") == []
    # AND a verdict arriving after the void moves nothing
    with pytest.raises(TransferStateError, match="voided"):
        any_ledger.settle_contribution("run-1", reward_tinybar=0, penalty_tinybar=HOLD)
    assert any_ledger.player_balances("alice").stake_tinybar == 2 * STAKE_MINIMUM
    any_ledger.check_books()


def test_a_settled_hold_is_not_voided_and_an_unknown_one_is_nothing(any_ledger: Ledger) -> None:
    any_ledger.hold_for_contribution("alice", "run-1")
    any_ledger.settle_contribution("run-1", reward_tinybar=0, penalty_tinybar=HOLD // 2)
    after = any_ledger.void_hold("run-1")
    assert after is not None and after.state == "settled"
    assert any_ledger.get_transfer("void:run-1") is None
    assert any_ledger.player_balances("alice").stake_tinybar == 2 * STAKE_MINIMUM - HOLD // 2
    assert any_ledger.void_hold("never-held") is None
    assert any_ledger.hold_of("never-held") is None
    any_ledger.check_books()


def test_an_open_hold_is_reused_by_id_even_when_the_free_stake_is_gone(
        any_ledger: Ledger) -> None:
    # GIVEN a run's hold opened, then every unheld tinybar of stake unlocked
    any_ledger.hold_for_contribution("alice", "run-1")
    any_ledger.unlock_stake("u1", "alice", 2 * STAKE_MINIMUM - HOLD)
    assert not any_ledger.is_paid_mode("alice")
    with pytest.raises(StakeRequiredError):
        any_ledger.hold_for_contribution("alice", "run-2")
    # WHEN the same run's hold is asked for again (idempotent on the run id)
    any_ledger.hold_for_contribution("alice", "run-1")
    # THEN it is the same hold, and the verdict's penalty is taken from it
    hold = any_ledger.hold_of("run-1")
    assert hold is not None and (hold.player_id, hold.state) == ("alice", "open")
    any_ledger.settle_contribution("run-1", reward_tinybar=0, penalty_tinybar=HOLD)
    assert any_ledger.player_balances("alice").held_tinybar == 0
    assert any_ledger.balance("treasury") == HOLD
    any_ledger.check_books()
