"""Deposit detection: hbar sent to the platform's treasury account, credited to the player.

A player deposits by sending hbar to the treasury account with the memo ``deposit:<player id>``
(the wallet page shows it). ``DepositWatcher.poll`` reads the treasury's transactions from a
mirror node REST API (the local network serves the same shape; on testnet/mainnet, the public
mirror node) after its cursor, and credits each successful transfer into the treasury whose memo
names a known player: ``Ledger.deposit`` under the id ``deposit:<transaction id>``, so reading the
same transaction twice (a restart with an old cursor, an overlapping page) credits it once.

A transfer whose memo names no known player is reported as unmatched and credited to nobody: the
money is on the treasury account and an operator refunds it; nothing is lost or guessed.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field

import httpx

from crowdlearning.ledger import InvalidInputError, Ledger, UnknownAccountError, player_account
from crowdlearning.ledger.accounts import AccountKind

__all__ = ["MEMO_PREFIX", "Deposit", "DepositWatcher", "PollResult"]

log = logging.getLogger(__name__)
MEMO_PREFIX = "deposit:"


@dataclass(frozen=True)
class Deposit:
    transaction_id: str  # mirror form: payer-seconds-nanos
    consensus_timestamp: str
    player_id: str | None  # None: the memo named no known player
    amount_tinybar: int


@dataclass
class PollResult:
    credited: list[Deposit] = field(default_factory=list)
    unmatched: list[Deposit] = field(default_factory=list)


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

    def poll(self) -> PollResult:
        """Read new treasury transactions page by page; credit deposits; advance the cursor."""
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
        if tx.get("result") != "SUCCESS" or tx.get("name") != "CRYPTOTRANSFER":
            return
        memo = base64.b64decode(tx.get("memo_base64") or "").decode(errors="replace")
        received = sum(int(t["amount"]) for t in tx.get("transfers", [])
                       if t["account"] == self.treasury_account_id and int(t["amount"]) > 0)
        if not memo.startswith(MEMO_PREFIX) or received <= 0:
            return
        player = memo.removeprefix(MEMO_PREFIX).strip()
        deposit = Deposit(tx["transaction_id"], tx["consensus_timestamp"], player, received)
        try:
            self.ledger.deposit(f"deposit:{tx['transaction_id']}",
                                player_account(player, AccountKind.AVAILABLE), received)
        except (UnknownAccountError, InvalidInputError):
            log.warning("deposit %s names unknown player %r: left for refund",
                        tx["transaction_id"], player)
            result.unmatched.append(Deposit(deposit.transaction_id,
                                            deposit.consensus_timestamp, None, received))
            return
        result.credited.append(deposit)
