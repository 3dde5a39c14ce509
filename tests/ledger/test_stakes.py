"""Stakes, holds, penalties, rewards and the reward budget."""

from __future__ import annotations

import pytest

from crowdlearning.ledger import (
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    Ledger,
    RewardBudgetExhaustedError,
    StakeRequiredError,
    UnknownTransferError,
)
from tests.ledger.factories import HOLD, STAKE_MINIMUM, funded_player


@pytest.fixture
def staked(ledger: Ledger) -> Ledger:
    """Alice with the minimum stake locked, and an operator-funded reward budget."""
    funded_player(ledger, "alice", 1_000, stake=STAKE_MINIMUM)
    ledger.deposit("op-funding", "treasury", 100_000)
    ledger.fund_reward_budget("budget-1", 5_000)
    return ledger


def test_practice_mode_without_stake(ledger: Ledger) -> None:
    funded_player(ledger, "newbie", 0)
    assert not ledger.is_paid_mode("newbie")
    with pytest.raises(StakeRequiredError, match="practice mode"):
        ledger.hold_for_contribution("newbie", "c1")


def test_paid_contribution_holds_stake_which_cannot_be_unlocked(staked: Ledger) -> None:
    assert staked.is_paid_mode("alice")
    staked.hold_for_contribution("alice", "c1")
    balances = staked.player_balances("alice")
    assert (balances.stake_tinybar, balances.held_tinybar) == (STAKE_MINIMUM - HOLD, HOLD)
    with pytest.raises(InsufficientFundsError, match="held behind contributions"):
        staked.unlock_stake("u1", "alice", STAKE_MINIMUM)
    staked.unlock_stake("u2", "alice", STAKE_MINIMUM - HOLD)  # the unheld part is free
    assert staked.player_balances("alice").available_tinybar == 1_000 + STAKE_MINIMUM - HOLD
    staked.check_books()


def test_verdict_takes_penalty_releases_rest_and_pays_reward(staked: Ledger) -> None:
    staked.hold_for_contribution("alice", "c1")
    result = staked.settle_contribution("c1", reward_tinybar=700, penalty_tinybar=3_000)
    assert result.released_tinybar == HOLD - 3_000
    balances = staked.player_balances("alice")
    assert balances.held_tinybar == 0
    assert balances.stake_tinybar == STAKE_MINIMUM - 3_000
    assert balances.available_tinybar == 1_000 + 700
    assert staked.balance("treasury") == 100_000 - 5_000 + 3_000
    assert staked.balance("reward_budget") == 5_000 - 700
    staked.check_books()


def test_verdict_is_idempotent_and_conflicts_are_refused(staked: Ledger) -> None:
    staked.hold_for_contribution("alice", "c1")
    staked.hold_for_contribution("alice", "c1")  # replay: one hold
    assert staked.player_balances("alice").held_tinybar == HOLD
    first = staked.settle_contribution("c1", reward_tinybar=10, penalty_tinybar=0)
    assert staked.settle_contribution("c1", reward_tinybar=10, penalty_tinybar=0) == first
    with pytest.raises(IdempotencyConflictError, match="already settled"):
        staked.settle_contribution("c1", reward_tinybar=11, penalty_tinybar=0)
    assert staked.player_balances("alice").available_tinybar == 1_010


def test_rewards_stop_when_the_budget_runs_out(staked: Ledger) -> None:
    staked.hold_for_contribution("alice", "c1")
    with pytest.raises(RewardBudgetExhaustedError, match="reward budget cannot pay"):
        staked.settle_contribution("c1", reward_tinybar=5_001, penalty_tinybar=0)
    # nothing changed: the hold is still open and can be judged once the operator tops up
    assert staked.player_balances("alice").held_tinybar == HOLD
    staked.fund_reward_budget("budget-2", 1)
    staked.settle_contribution("c1", reward_tinybar=5_001, penalty_tinybar=0)
    assert staked.balance("reward_budget") == 0
    staked.check_books()


def test_bad_verdicts_are_refused(staked: Ledger) -> None:
    staked.hold_for_contribution("alice", "c1")
    with pytest.raises(InvalidInputError, match="exceeds"):
        staked.settle_contribution("c1", reward_tinybar=0, penalty_tinybar=HOLD + 1)
    with pytest.raises(InvalidInputError, match="reward_tinybar"):
        staked.settle_contribution("c1", reward_tinybar=-1, penalty_tinybar=0)
    with pytest.raises(UnknownTransferError, match="c2"):
        staked.settle_contribution("c2", reward_tinybar=0, penalty_tinybar=0)
    assert staked.player_balances("alice").held_tinybar == HOLD


def test_overlong_contribution_id_is_refused(staked: Ledger) -> None:
    with pytest.raises(InvalidInputError, match="contribution_id"):
        staked.hold_for_contribution("alice", "c" * 97)
    assert staked.player_balances("alice").held_tinybar == 0


def test_stake_runs_out_after_holds(staked: Ledger) -> None:
    for n in range(STAKE_MINIMUM // HOLD):
        staked.hold_for_contribution("alice", f"c{n}")
    with pytest.raises(StakeRequiredError):
        staked.hold_for_contribution("alice", "one-too-many")
    assert not staked.is_paid_mode("alice")
