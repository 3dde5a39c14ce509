"""Double-entry ledger in integer tinybars: accounts, immutable transfers, stakes, payouts.

Data flow: verdict -> ``Ledger.settle_contribution`` (penalty, release, reward) -> player's
available balance -> ``Ledger.request_payout`` (pending) -> ``payments.settlement`` sends it on
Hedera -> posted or voided. See docs/ledger.md.

    book.py         Ledger, the facade: one retried transaction per method
    postings.py     post / resolve transfers inside a transaction (idempotency, locks, checks)
    stakes.py       holds, penalties, rewards            payouts.py   two-phase payouts
    holds.py        reading and voiding holds
    accounts.py     the chart of accounts                records.py   Leg, TransferSpec, Transfer
    schema.py       tables                               migrations/  Alembic (env + versions)
    migrate.py      upgrade_to_head                      db.py        engines, retries
    invariants.py   whole-book checks                    validation.py  amounts, ids, Hedera ids
    errors.py       the error tree
"""

from __future__ import annotations

from crowdlearning.ledger.accounts import AccountKind, client_account, player_account
from crowdlearning.ledger.book import Ledger, PlayerBalances, open_ledger
from crowdlearning.ledger.db import make_engine, run_transaction
from crowdlearning.ledger.errors import (
    BooksUnbalancedError,
    ChargeNotAuthorizedError,
    ConcurrencyError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    LedgerError,
    RewardBudgetExhaustedError,
    StakeRequiredError,
    TransferStateError,
    UnknownAccountError,
    UnknownTransferError,
)
from crowdlearning.ledger.holds import Hold
from crowdlearning.ledger.migrate import upgrade_to_head
from crowdlearning.ledger.payouts import Payout, PayoutState
from crowdlearning.ledger.records import Leg, Transfer, TransferKind, TransferSpec
from crowdlearning.ledger.stakes import HoldSettlement

__all__ = [
    "AccountKind",
    "BooksUnbalancedError",
    "ChargeNotAuthorizedError",
    "ConcurrencyError",
    "Hold",
    "HoldSettlement",
    "IdempotencyConflictError",
    "InsufficientFundsError",
    "InvalidInputError",
    "Ledger",
    "LedgerError",
    "Leg",
    "Payout",
    "PayoutState",
    "PlayerBalances",
    "RewardBudgetExhaustedError",
    "StakeRequiredError",
    "Transfer",
    "TransferKind",
    "TransferSpec",
    "TransferStateError",
    "UnknownAccountError",
    "UnknownTransferError",
    "client_account",
    "make_engine",
    "open_ledger",
    "player_account",
    "run_transaction",
    "upgrade_to_head",
]
