"""The treasury's history, read from a mirror node: deposits credited, network fees booked.

Deposits: hbar sent to the platform's treasury account, credited to the player.

A player deposits by sending hbar to the treasury account with the memo ``deposit:<player id>``
(the wallet page shows it). ``DepositWatcher.poll`` reads the treasury's transactions from a
mirror node REST API (the local network serves the same shape; on testnet/mainnet, the public
mirror node) after its cursor, and credits each successful transfer into the treasury whose memo
names a known player: ``Ledger.deposit`` under the id ``deposit:<transaction id>``, so reading the
same transaction twice (a restart with an old cursor, an overlapping page) credits it once.

A transfer whose memo names no known player is reported as unmatched and credited to nobody: the
money is on the treasury account and an operator refunds it; nothing is lost or guessed.

Client funding: a payments API client tops up its balance the same way with the memo
``client:<client id>``: credited to ``client:<client id>`` under the same id
``deposit:<transaction id>`` (once, whoever reads it). A memo naming no known client is reported
as unmatched, like an unknown player's; the two memo forms never fall back on each other.

Network fees: every transaction the treasury *paid for* (payouts, audit messages, paid queries,
account creations) moved hbar to the network's system accounts (nodes, fee collection: numbers
up to 1000, which Hedera reserves for them): that amount is booked as ``treasury ->
network_fees`` under ``fee:<transaction id>``, again once. Anything else the treasury sent that
the books do not know (not a settlement transaction of the ledger: e.g. an operator paying from
the treasury by hand) is reported in ``PollResult.unbooked``, as is a fee the treasury's books
could not cover: both show up as drift in ``payments.settlement.reconcile``.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import sqlalchemy as sa

from crowdlearning.errors import ConfigurationError
from crowdlearning.ledger import (
    InsufficientFundsError,
    InvalidInputError,
    Ledger,
    UnknownAccountError,
    client_account,
    player_account,
)
from crowdlearning.ledger import settlement_store as store
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.ledger.cursors import insert_cursor, read_cursor, write_cursor
from crowdlearning.ledger.postings import post
from crowdlearning.ledger.records import TransferSpec

__all__ = [
    "CLIENT_MEMO_PREFIX",
    "MEMO_PREFIX",
    "OPENING_BALANCE_ID",
    "Deposit",
    "DepositWatcher",
    "Outflow",
    "PollResult",
    "ServiceDepositReader",
    "earliest",
    "is_system_account",
    "sdk_transaction_id",
    "timestamp_key",
]

log = logging.getLogger(__name__)
MEMO_PREFIX = "deposit:"
CLIENT_MEMO_PREFIX = "client:"  # a payments API client funding its balance
OPENING_BALANCE_ID = "treasury-opening-balance"  # the same id as the game server's opening
LAST_SYSTEM_ACCOUNT = 1000  # 0.0.1 .. 0.0.1000 are Hedera's system accounts (nodes, fees)


def is_system_account(account_id: str) -> bool:
    """A network account (node, fee collection, staking reward): ``0.0.n`` with n <= 1000."""
    shard, realm, num = (int(part) for part in account_id.split("."))
    return shard == 0 and realm == 0 and num <= LAST_SYSTEM_ACCOUNT


def sdk_transaction_id(mirror_id: str) -> str:
    """``payer-seconds-nanos`` (mirror) -> ``payer@seconds.nanos`` (SDK, ledger)."""
    payer, seconds, nanos = mirror_id.rsplit("-", 2)
    return f"{payer}@{seconds}.{nanos}"


@dataclass(frozen=True)
class Deposit:
    transaction_id: str  # mirror form: payer-seconds-nanos
    consensus_timestamp: str
    player_id: str | None  # None: the memo named no known player (or named a client)
    amount_tinybar: int
    client_id: str | None = None  # a client funding its balance (memo ``client:<id>``)


@dataclass(frozen=True)
class Outflow:
    """Treasury money the books do not account for (see the module docstring)."""

    transaction_id: str  # mirror form
    amount_tinybar: int
    reason: str  # "fee_not_covered" or "not_in_ledger"


@dataclass
class PollResult:
    credited: list[Deposit] = field(default_factory=list)
    unmatched: list[Deposit] = field(default_factory=list)
    fees_booked_tinybar: int = 0
    unbooked: list[Outflow] = field(default_factory=list)


@dataclass
class DepositWatcher:
    """Polls the mirror node for deposits into ``treasury_account_id`` (see module docstring)."""

    ledger: Ledger
    mirror_url: str  # e.g. http://127.0.0.1:5551/api/v1
    treasury_account_id: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))
    page_limit: int = 100
    max_pages: int = 50  # bound on one poll
    cursor: str = "0.000000000"  # consensus timestamp of the last transaction read

    def start_at_end(self) -> None:
        """Skip the history so far: the next poll reads only what comes after now. For a first
        start, when the books open with the treasury's current balance."""
        response = self.http.get(f"{self.mirror_url}/transactions", params={
            "account.id": self.treasury_account_id, "order": "desc", "limit": 1})
        response.raise_for_status()
        newest = response.json().get("transactions", [])
        if newest:
            self.cursor = newest[0]["consensus_timestamp"]

    def poll(self) -> PollResult:
        """Read new treasury transactions page by page; credit deposits, book fees; advance."""
        result = PollResult()
        for _ in range(self.max_pages):
            page = self._page()
            for tx in page:
                self._handle(tx, result)
                self.cursor = tx["consensus_timestamp"]
            if len(page) < self.page_limit:
                break
        return result

    def _page(self) -> list[dict]:
        response = self.http.get(f"{self.mirror_url}/transactions", params={
            "account.id": self.treasury_account_id, "timestamp": f"gt:{self.cursor}",
            "order": "asc", "limit": self.page_limit})
        response.raise_for_status()
        return list(response.json().get("transactions", []))

    def _handle(self, tx: dict, result: PollResult) -> None:
        if tx["transaction_id"].rsplit("-", 2)[0] == self.treasury_account_id:
            self._book_costs(tx, result)
        if tx.get("result") != "SUCCESS" or tx.get("name") != "CRYPTOTRANSFER":
            return
        memo = base64.b64decode(tx.get("memo_base64") or "").decode(errors="replace")
        received = sum(int(t["amount"]) for t in tx.get("transfers", [])
                       if t["account"] == self.treasury_account_id and int(t["amount"]) > 0)
        # a staking reward the network paid the treasury in the same transaction (the mirror
        # lists it apart) is not the depositor's money
        received -= sum(int(t["amount"]) for t in tx.get("staking_reward_transfers") or []
                        if t["account"] == self.treasury_account_id)
        if received <= 0:
            return
        if memo.startswith(MEMO_PREFIX):
            player = memo.removeprefix(MEMO_PREFIX).strip()
            deposit = Deposit(tx["transaction_id"], tx["consensus_timestamp"], player, received)
            self._credit(deposit, lambda: player_account(player, AccountKind.AVAILABLE),
                         f"player {player!r}", result)
        elif memo.startswith(CLIENT_MEMO_PREFIX):
            client = memo.removeprefix(CLIENT_MEMO_PREFIX).strip()
            deposit = Deposit(tx["transaction_id"], tx["consensus_timestamp"], None, received,
                              client_id=client)
            self._credit(deposit, lambda: client_account(client), f"client {client!r}", result)

    def _credit(self, deposit: Deposit, account: Callable[[], str], named: str,
                result: PollResult) -> None:
        """Credit ``deposit`` to ``account()`` once, or report it unmatched (unknown or invalid
        id: the account code is only built, and so validated, here)."""
        try:
            self.ledger.deposit(f"deposit:{deposit.transaction_id}", account(),
                                deposit.amount_tinybar)
        except (UnknownAccountError, InvalidInputError):
            log.warning("deposit %s names unknown %s: left for refund",
                        deposit.transaction_id, named)
            result.unmatched.append(Deposit(deposit.transaction_id,
                                            deposit.consensus_timestamp, None,
                                            deposit.amount_tinybar))
            return
        result.credited.append(deposit)

    def _book_costs(self, tx: dict, result: PollResult) -> None:
        """A transaction the treasury paid for: book what went to the network; report the rest
        unless it is one of the ledger's own settlement transactions (payouts, posted by
        settlement on its receipt)."""
        legs = [(t["account"], int(t["amount"])) for t in tx.get("transfers", [])]
        outflow = -sum(a for acc, a in legs if acc == self.treasury_account_id)
        cost = sum(a for acc, a in legs
                   if a > 0 and acc != self.treasury_account_id and is_system_account(acc))
        tx_id = tx["transaction_id"]
        if cost > 0:
            try:
                # the consensus time too: a scheduled transaction shares its schedule's id
                self.ledger.book_network_fee(f"fee:{tx_id}:{tx['consensus_timestamp']}", cost)
                result.fees_booked_tinybar += cost
            except InsufficientFundsError:
                log.error("network fee %d of %s exceeds the treasury's books: top them up",
                          cost, tx_id)
                result.unbooked.append(Outflow(tx_id, cost, "fee_not_covered"))
        rest = outflow - cost
        if rest > 0 and not self._settled_by_ledger(tx):
            log.warning("treasury paid %d tinybar in %s outside the ledger", rest, tx_id)
            result.unbooked.append(Outflow(tx_id, rest, "not_in_ledger"))

    def _settled_by_ledger(self, tx: dict) -> bool:
        sdk_id = sdk_transaction_id(tx["transaction_id"])
        stored = self.ledger.run(lambda c: store.get_transaction(c, sdk_id))
        return (stored is not None and tx.get("result") == "SUCCESS"
                and stored.state in ("succeeded", *store.LIVE_STATES))


def timestamp_key(consensus_timestamp: str) -> tuple[int, int]:
    """A mirror consensus timestamp ``seconds.nanos`` as a sortable ``(seconds, nanos)``."""
    seconds, _, nanos = consensus_timestamp.partition(".")
    return int(seconds), int(nanos.ljust(9, "0")[:9])


def earliest(*timestamps: str) -> str:
    """The earliest of consensus timestamps (``seconds.nanos``)."""
    return min(timestamps, key=timestamp_key)


class ServiceDepositReader:
    """The treasury reader of every process booking one ledger's treasury: the payments service
    (``payments/worker.py`` runs ``poll``) and the game server (``server/referee.py``).

    Its position lives in the ledger's database (``payments_cursors``, name
    ``deposits:<treasury>``): ONE per treasury account, shared by every reader of that ledger,
    so whichever process starts first opens the books and the others resume where the readers
    got to, in any start order. Invariant: every deposit and fee of the treasury up to the
    stored position is booked. Each reader reads from its own place in memory and, after a
    poll's ledger writes, moves the stored position forward to where it read (never back:
    ``advance``); a ``kill -9`` in between leaves it behind, and reading a page again credits
    nothing twice (``deposit:<transaction id>``) and books no fee twice (``fee:<transaction
    id>:<consensus time>``), whoever reads it. Several readers running at once read the same
    history (same ids: booked once), which costs reads, not money.

    ``open`` (before the process serves): with a stored position, resume there (or at the
    caller's own older position, ``own_cursor``: a game server's copy in its database, read
    again rather than skipped). Else, first start: the position is taken at the newest treasury
    transaction on the mirror, then the books open with the treasury's balance read from the
    network (``world -> treasury``, ``treasury-opening-balance``) in ONE database transaction
    with the stored position, so from then on every change of the treasury on chain is
    explained by the books and ``reconcile`` shows no drift; two readers opening at once end
    with one opening and one position (the second finds the first's). Books opened without a
    stored position (by a game server from before the shared position) resume at
    ``own_cursor`` when given; else the caller chooses: refuse (``unknown_position="refuse"``,
    the game server: reading from the start would book everything twice) or start at the
    mirror's end (the service: that older game server reads the gap from its own position)."""

    def __init__(self, watcher: DepositWatcher, *, clock: Callable[[], int] = time.time_ns
                 ) -> None:
        self.watcher, self.ledger, self.clock = watcher, watcher.ledger, clock
        self.cursor_name = f"deposits:{watcher.treasury_account_id}"
        self._lock = threading.Lock()  # one poll at a time moves this reader's place

    def stored_cursor(self) -> str | None:
        """The shared position stored in the ledger, or ``None`` before the books open."""
        return self.ledger.run(lambda c: read_cursor(c, self.cursor_name))

    def open(self, treasury_balance: Callable[[], int], *, own_cursor: str | None = None,
             unknown_position: str = "start_at_end") -> bool:
        """Resume or open the books (see the class doc); whether this call opened them."""
        if unknown_position not in ("start_at_end", "refuse"):
            raise ValueError(f"unknown_position: {unknown_position!r}")
        with self._lock:
            stored = self.stored_cursor()
            if stored is not None:
                self.watcher.cursor = (stored if own_cursor is None
                                       else earliest(stored, own_cursor))
                return False
            if self.ledger.get_transfer(OPENING_BALANCE_ID) is not None:
                return self._adopt(own_cursor, unknown_position)
            self.watcher.start_at_end()
            cursor = self.watcher.cursor
            opening = treasury_balance()
            spec = TransferSpec.move(OPENING_BALANCE_ID, "world", "treasury", opening,
                                     memo="opening balance")

            def both(conn: sa.Connection) -> str | None:
                found = read_cursor(conn, self.cursor_name)
                if found is not None:  # another reader opened them meanwhile
                    return found
                # the position first: a reader opening at the same time waits on its key
                insert_cursor(conn, self.cursor_name, cursor, now_ns=self.clock())
                post(conn, spec, now_ns=self.clock())
                return None

            found = self.ledger.run(both)
            if found is not None:
                self.watcher.cursor = found
                return False
            log.info("books opened with the treasury's %d tinybar; reading deposits after %s",
                     opening, cursor)
            return True

    def _adopt(self, own_cursor: str | None, unknown_position: str) -> bool:
        """Books opened, no stored position (see the class doc)."""
        if own_cursor is not None:
            self.watcher.cursor = own_cursor
        elif unknown_position == "refuse":
            raise ConfigurationError(
                "the ledger's books are open but neither the ledger nor this server's database "
                f"holds the treasury reader's position ({self.cursor_name!r} in "
                "payments_cursors): restore it, or store the consensus timestamp the books were "
                "last read to; reading the history from the start would book it twice")
        else:
            self.watcher.start_at_end()
            log.warning("the books were opened by a reader that kept no shared position: this "
                        "one reads from %s on (that reader reads what came before)",
                        self.watcher.cursor)
        self.advance(self.watcher.cursor)
        return False

    def advance(self, cursor: str) -> None:
        """Move the stored position forward to ``cursor`` (never back), once everything up to
        it is booked."""
        def forward(conn: sa.Connection) -> None:
            stored = read_cursor(conn, self.cursor_name, for_update=True)
            if stored is None or timestamp_key(cursor) > timestamp_key(stored):
                write_cursor(conn, self.cursor_name, cursor, now_ns=self.clock())

        self.ledger.run(forward)

    def poll(self) -> PollResult:
        """Read what is new since this reader's place, credit and book it, then move the stored
        position forward."""
        with self._lock:
            result = self.watcher.poll()
            self.advance(self.watcher.cursor)
        for deposit in result.unmatched:
            log.warning("deposit %s of %d tinybar names no known client or player: refund it "
                        "by hand", deposit.transaction_id, deposit.amount_tinybar)
        return result

    def close(self) -> None:
        """Close the mirror HTTP client."""
        self.watcher.http.close()
