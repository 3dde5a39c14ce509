"""Errors the ledger raises; each names the offending value.

CrowdLearningError
└── LedgerError
    ├── InvalidInputError              a bad amount, id or Hedera account id (also a ValueError)
    ├── UnknownAccountError            no account with that code / player not opened
    ├── UnknownTransferError           no transfer, payout or contribution with that id
    ├── IdempotencyConflictError       an id reused with different content
    ├── InsufficientFundsError         a balance would go negative
    │   ├── RewardBudgetExhaustedError the operator's reward budget cannot cover a reward
    │   └── StakeRequiredError         paid mode needs more unheld stake than the player has
    ├── ChargeNotAuthorizedError       no (or too small a) charge mandate from the player
    ├── TransferStateError             a pending transfer or payout is already resolved
    ├── BooksUnbalancedError           an invariant check found inconsistent books
    └── ConcurrencyError               a transaction kept conflicting after bounded retries
"""

from __future__ import annotations

from crowdlearning.errors import CrowdLearningError

__all__ = [
    "BooksUnbalancedError",
    "ChargeNotAuthorizedError",
    "ConcurrencyError",
    "IdempotencyConflictError",
    "InsufficientFundsError",
    "InvalidInputError",
    "LedgerError",
    "RewardBudgetExhaustedError",
    "StakeRequiredError",
    "TransferStateError",
    "UnknownAccountError",
    "UnknownTransferError",
]


class LedgerError(CrowdLearningError):
    """Base class of ledger and settlement errors."""


class InvalidInputError(LedgerError, ValueError):
    """An amount, id or Hedera account id is malformed or out of range."""


class UnknownAccountError(LedgerError, LookupError):
    """No ledger account exists with that code (e.g. a player that was never opened)."""


class UnknownTransferError(LedgerError, LookupError):
    """No transfer, payout or contribution hold exists with that id."""


class IdempotencyConflictError(LedgerError):
    """A transfer id was reused with content different from the stored transfer."""


class InsufficientFundsError(LedgerError):
    """The transfer would take a balance below zero where that is not allowed."""

    def __init__(self, message: str, account: str | None = None) -> None:
        super().__init__(message)
        self.account = account  # the code of the account that lacks funds, when known


class RewardBudgetExhaustedError(InsufficientFundsError):
    """The reward budget set by the operator cannot pay this reward; rewards stop."""


class StakeRequiredError(InsufficientFundsError):
    """Paid mode needs a locked, unheld stake that the player does not have."""


class ChargeNotAuthorizedError(LedgerError):
    """The player has not allowed this client to charge that much (no or exhausted mandate)."""


class TransferStateError(LedgerError):
    """A pending transfer, payout or hold is not in the state the operation needs."""


class BooksUnbalancedError(LedgerError):
    """The books violate an invariant (legs not summing to zero, balances not matching legs)."""


class ConcurrencyError(LedgerError):
    """A database transaction kept failing on conflicts after the bounded number of retries."""
