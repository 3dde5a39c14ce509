"""``Ledger``: the ledger's public face; each method is one retried database transaction."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

import sqlalchemy as sa

from crowdlearning.config import Settings
from crowdlearning.ledger import batch, postings, stakes
from crowdlearning.ledger import holds as holds_mod
from crowdlearning.ledger import payouts as payouts_mod
from crowdlearning.ledger.accounts import PLAYER_KINDS, AccountKind, client_account, player_account
from crowdlearning.ledger.db import make_engine, run_transaction
from crowdlearning.ledger.errors import StakeRequiredError
from crowdlearning.ledger.invariants import BooksSummary, check_books
from crowdlearning.ledger.migrate import upgrade_to_head
from crowdlearning.ledger.records import Transfer, TransferSpec
from crowdlearning.ledger.validation import check_amount

__all__ = ["Ledger", "Move", "PlayerBalances", "open_ledger"]

T = TypeVar("T")


@dataclass(frozen=True)
class PlayerBalances:
    """A player's three accounts, in tinybars."""

    available_tinybar: int
    stake_tinybar: int
    held_tinybar: int


class Move(NamedTuple):
    """One two-leg transfer for ``Ledger.move_many`` (the arguments of ``Ledger.move``)."""

    transfer_id: str
    from_account: str
    to_account: str
    amount_tinybar: int
    memo: str = ""

    def spec(self) -> TransferSpec:
        """The transfer this asks for (validated)."""
        return TransferSpec.move(
            self.transfer_id,
            self.from_account,
            self.to_account,
            self.amount_tinybar,
            memo=self.memo,
        )


class Ledger:
    """Double-entry books in a SQL database (schema from ``ledger.migrate.upgrade_to_head``)."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        stake_minimum_tinybar: int,
        hold_tinybar: int,
        clock: Callable[[], int] = time.time_ns,
        attempts: int = 8,
    ) -> None:
        self.engine = engine
        self.stake_minimum_tinybar = stake_minimum_tinybar
        self.hold_tinybar = check_amount(hold_tinybar, what="hold_tinybar")
        self.clock = clock  # epoch nanoseconds
        self.attempts = attempts

    def run(self, work: Callable[[sa.Connection], T]) -> T:
        """Run ``work(conn)`` as one transaction, retried on conflicts."""
        return run_transaction(self.engine, work, attempts=self.attempts)

    # --- accounts ---------------------------------------------------------------------------
    def open_player(self, player_id: str) -> None:
        """Create the player's available, stake and held accounts (idempotent)."""
        codes = [(player_account(player_id, kind), kind) for kind in PLAYER_KINDS]
        self.run(
            lambda c: [
                postings.open_account(c, code, kind, now_ns=self.clock()) for code, kind in codes
            ]
        )

    def open_client(self, client_id: str) -> str:
        """Create a third-party client's account (idempotent); return its code."""
        code = client_account(client_id)
        self.run(lambda c: postings.open_account(c, code, AccountKind.CLIENT, now_ns=self.clock()))
        return code

    def balance(self, account: str) -> int:
        """The balance of an account, in tinybars."""
        return self.run(lambda c: postings.balance(c, account))

    def player_balances(self, player_id: str) -> PlayerBalances:
        """A player's available, stake and held balances."""
        codes = [player_account(player_id, kind) for kind in PLAYER_KINDS]
        return PlayerBalances(*self.run(lambda c: [postings.balance(c, code) for code in codes]))

    # --- transfers --------------------------------------------------------------------------
    def transfer(self, spec: TransferSpec) -> Transfer:
        """Post a transfer (idempotent on ``spec.id``)."""
        return self.run(lambda c: postings.post(c, spec, now_ns=self.clock()))

    def move(
        self,
        transfer_id: str,
        from_account: str,
        to_account: str,
        amount_tinybar: int,
        memo: str = "",
    ) -> Transfer:
        """Post a two-leg transfer (idempotent on ``transfer_id``)."""
        return self.transfer(
            TransferSpec.move(transfer_id, from_account, to_account, amount_tinybar, memo=memo)
        )

    def transfer_many(self, specs: Sequence[TransferSpec]) -> list[batch.BatchItem]:
        """Book many transfers in one database transaction, in order (each idempotent on its
        ``id``); one ``BatchItem`` per spec: booked, already booked, or refused on its own
        (insufficient funds, unknown account, idempotency conflict) while the others book."""
        with _sqlite_writer(self.engine):
            return self.run(lambda c: batch.book_many(c, specs, now_ns=self.clock()))

    def move_many(
        self, moves: Iterable[Move | tuple[str, str, str, int] | tuple[str, str, str, int, str]]
    ) -> list[batch.BatchItem]:
        """Book many two-leg transfers ``(id, from, to, amount[, memo])`` (``Move`` or plain
        tuples: the arguments of ``move``) in one database transaction; see ``transfer_many``."""
        return self.transfer_many([Move(*move).spec() for move in moves])

    def get_transfer(self, transfer_id: str) -> Transfer | None:
        """The stored transfer, or ``None``."""
        return self.run(lambda c: postings.get_transfer(c, transfer_id))

    def history(self, account: str, *, limit: int, offset: int = 0) -> list[Transfer]:
        """Transfers touching ``account``, newest first."""
        return self.run(lambda c: postings.history(c, account, limit=limit, offset=offset))

    # --- money in and out of the platform ---------------------------------------------------
    def deposit(self, transfer_id: str, account: str, amount_tinybar: int) -> Transfer:
        """Credit money that arrived on chain (``transfer_id``: e.g. from the Hedera tx id)."""
        return self.move(transfer_id, "world", account, amount_tinybar, memo="deposit")

    def book_network_fee(self, transfer_id: str, amount_tinybar: int) -> Transfer:
        """Record a fee the treasury paid to Hedera (e.g. from a transaction record)."""
        return self.move(transfer_id, "treasury", "network_fees", amount_tinybar, memo="fee")

    def fund_reward_budget(self, transfer_id: str, amount_tinybar: int) -> Transfer:
        """The operator moves treasury funds into the reward budget."""
        return self.move(
            transfer_id, "treasury", "reward_budget", amount_tinybar, memo="fund reward budget"
        )

    def request_payout(
        self, payout_id: str, from_account: str, destination: str, amount_tinybar: int
    ) -> payouts_mod.Payout:
        """Reserve a payout to a Hedera account; the settlement job sends it."""
        return self.run(
            lambda c: payouts_mod.request_payout(
                c, payout_id, from_account, destination, amount_tinybar, now_ns=self.clock()
            )
        )

    def withdraw(
        self, payout_id: str, player_id: str, destination: str, amount_tinybar: int
    ) -> payouts_mod.Payout:
        """A player withdraws from the available balance to their own Hedera account."""
        source = player_account(player_id, AccountKind.AVAILABLE)
        return self.request_payout(payout_id, source, destination, amount_tinybar)

    def get_payout(self, payout_id: str) -> payouts_mod.Payout:
        """A payout by id."""
        return self.run(lambda c: payouts_mod.get_payout(c, payout_id))

    # --- stakes -----------------------------------------------------------------------------
    def lock_stake(self, transfer_id: str, player_id: str, amount_tinybar: int) -> Transfer:
        """Lock part of the available balance as stake (needed for paid mode)."""
        available, stake = (player_account(player_id, k) for k in PLAYER_KINDS[:2])
        return self.move(transfer_id, available, stake, amount_tinybar, memo="lock stake")

    def unlock_stake(self, transfer_id: str, player_id: str, amount_tinybar: int) -> None:
        """Unlock unheld stake back to the available balance."""
        self.run(
            lambda c: stakes.unlock_stake(
                c, player_id, amount_tinybar, transfer_id, now_ns=self.clock()
            )
        )

    def is_paid_mode(self, player_id: str) -> bool:
        """Whether the player's stake allows a paid contribution now (else: practice mode)."""
        try:
            self.run(
                lambda c: stakes.require_paid_mode(
                    c, player_id, self.hold_tinybar, self.stake_minimum_tinybar
                )
            )
        except StakeRequiredError:
            return False
        return True

    def hold_for_contribution(self, player_id: str, contribution_id: str) -> None:
        """Hold stake behind a paid contribution until its verdict (idempotent; raises
        ``StakeRequiredError`` if the unheld stake is not enough)."""
        self.run(
            lambda c: stakes.open_hold(
                c,
                player_id,
                contribution_id,
                hold_tinybar=self.hold_tinybar,
                stake_minimum_tinybar=self.stake_minimum_tinybar,
                now_ns=self.clock(),
            )
        )

    def settle_contribution(
        self, contribution_id: str, *, reward_tinybar: int, penalty_tinybar: int
    ) -> stakes.HoldSettlement:
        """Apply a verdict: penalty from the hold, the rest released, reward from the budget."""
        return self.run(
            lambda c: stakes.settle_hold(
                c,
                contribution_id,
                reward_tinybar=reward_tinybar,
                penalty_tinybar=penalty_tinybar,
                now_ns=self.clock(),
            )
        )

    def hold_of(self, contribution_id: str) -> holds_mod.Hold | None:
        """The hold behind a contribution (open, settled or voided), or ``None``."""
        return self.run(lambda c: holds_mod.find_hold(c, contribution_id))

    def open_holds(self, player_id: str, *, limit: int = 100) -> list[holds_mod.Hold]:
        """What the player's held balance is made of: their open holds, oldest first."""
        return self.run(lambda c: holds_mod.open_holds_of(c, player_id, limit=limit))

    def void_hold(self, contribution_id: str) -> holds_mod.Hold | None:
        """Give back the hold of a contribution that will never be judged (idempotent; a
        settled hold is left as it is). Returns the hold afterwards, ``None`` if there was
        none."""
        return self.run(lambda c: holds_mod.void_hold(c, contribution_id, now_ns=self.clock()))

    # --- checks -----------------------------------------------------------------------------
    def check_books(self) -> BooksSummary:
        """Check all invariants (raises ``BooksUnbalancedError``)."""
        return self.run(check_books)


_SQLITE_WRITERS: weakref.WeakKeyDictionary[sa.Engine, threading.Lock] = weakref.WeakKeyDictionary()
_SQLITE_WRITERS_LOCK = threading.Lock()


def _sqlite_writer(engine: sa.Engine) -> AbstractContextManager[object]:
    """On SQLite, one batch at a time per engine in this process. SQLite has one writer anyway
    (``BEGIN IMMEDIATE``); queueing batch writers on a Python lock hands the database over as
    soon as a batch commits, where SQLite's busy handler would have them sleep and poll (up to
    100 ms a try). Other processes still meet the busy timeout."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _SQLITE_WRITERS_LOCK:
        return _SQLITE_WRITERS.setdefault(engine, threading.Lock())


def open_ledger(settings: Settings, *, clock: Callable[[], int] = time.time_ns) -> Ledger:
    """The ledger at ``settings.database_url``, migrated to the newest schema."""
    url = settings.database_url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    upgrade_to_head(engine)
    return Ledger(
        engine,
        stake_minimum_tinybar=settings.ledger_stake_minimum_tinybar,
        hold_tinybar=settings.ledger_hold_tinybar,
        clock=clock,
        attempts=settings.ledger_transaction_attempts,
    )
