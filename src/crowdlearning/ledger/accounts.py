"""The chart of accounts: which accounts exist, how they are named, which may go negative.

Balances are signed sums of legs: money moving *into* an account is a positive leg. Internal
accounts hold what the platform's Hedera treasury holds on chain; the two external accounts are the
counterparts of money that entered or left the platform.

    code                   kind            negative?        what it holds
    world                  world           yes (external)   counterpart of deposits, withdrawals
    network_fees           network_fees    no  (external)   fees paid to Hedera, an expense
    treasury               treasury        no               the platform's own funds
    reward_budget          reward_budget   no               what rewards may still be paid from
    pending_payouts        pending_payouts no               payouts sent or about to be sent
    player:<id>:available  available       no               a player's spendable balance
    player:<id>:stake      stake           no               locked stake, free to unlock
    player:<id>:held       held            no               stake behind contributions judged
    client:<id>            client          no               a third-party API client's balance
"""

from __future__ import annotations

from enum import StrEnum

from crowdlearning.ledger.validation import DERIVED_ID_MAX, check_identifier

__all__ = [
    "CLIENT_ID_MAX",
    "EXTERNAL_KINDS",
    "PLAYER_KINDS",
    "SYSTEM_ACCOUNTS",
    "AccountKind",
    "client_account",
    "player_account",
]


CLIENT_ID_MAX = 48  # api:<client>:<request id up to 64> must fit a transfer id [chars]


class AccountKind(StrEnum):
    """What an account is for; see the module docstring."""

    WORLD = "world"
    NETWORK_FEES = "network_fees"
    TREASURY = "treasury"
    REWARD_BUDGET = "reward_budget"
    PENDING_PAYOUTS = "pending_payouts"
    AVAILABLE = "available"
    STAKE = "stake"
    HELD = "held"
    CLIENT = "client"


EXTERNAL_KINDS = frozenset({AccountKind.WORLD, AccountKind.NETWORK_FEES})

# code -> (kind, allow_negative); created by the first migration.
SYSTEM_ACCOUNTS: dict[str, tuple[AccountKind, bool]] = {
    "world": (AccountKind.WORLD, True),
    "network_fees": (AccountKind.NETWORK_FEES, False),
    "treasury": (AccountKind.TREASURY, False),
    "reward_budget": (AccountKind.REWARD_BUDGET, False),
    "pending_payouts": (AccountKind.PENDING_PAYOUTS, False),
}

# in this order: available, stake, held
PLAYER_KINDS = (AccountKind.AVAILABLE, AccountKind.STAKE, AccountKind.HELD)


def player_account(player_id: str, kind: AccountKind) -> str:
    """The code of one of a player's accounts (``available``, ``stake`` or ``held``)."""
    check_identifier(player_id, what="player_id", max_length=DERIVED_ID_MAX)
    if kind not in PLAYER_KINDS:
        raise ValueError(f"not a player account kind: {kind!r}")
    return f"player:{player_id}:{kind.value}"


def client_account(client_id: str) -> str:
    """The code of a third-party API client's account."""
    check_identifier(client_id, what="client_id", max_length=CLIENT_ID_MAX)
    return f"client:{client_id}"
