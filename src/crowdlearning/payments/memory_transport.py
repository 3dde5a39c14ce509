"""``MemoryTransport``: an in-memory twin of a Hedera network, behind ``HederaTransport``.

It keeps the rules settlement relies on: signed bytes (an HMAC stands in for ed25519), duplicate
transaction ids answered ``DUPLICATE_TRANSACTION``, the valid-start + valid-duration window, at most
``max_transfers_per_transaction`` adjustments, transfer lists summing to zero, existing accounts and
sufficient balances. Transactions reach "consensus" the moment they are accepted. Faults can be
injected to test crashes and lost answers; ``executed`` lists every transaction that moved money.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from crowdlearning.errors import HederaRequestError
from crowdlearning.hedera.transport import PreparedTransaction, SubmitOutcome, TransferReceipt

__all__ = ["MemoryTransport"]

_KEY = b"memory-transport-operator-key"
_BACKDATE_NS = 5 * 10**9


class MemoryTransport:
    """A single-node in-memory Hedera network plus operator; see the module docstring."""

    def __init__(
        self,
        *,
        treasury_account_id: str = "0.0.2",
        balances: dict[str, int] | None = None,
        clock: Callable[[], int] = time.time_ns,
        max_transfers: int = 10,
        valid_duration_s: int = 120,
    ) -> None:
        self._treasury = treasury_account_id
        self.balances: dict[str, int] = {treasury_account_id: 0, **(balances or {})}
        self.clock = clock  # epoch nanoseconds, shared by client and "network"
        self._max_transfers = max_transfers
        self.valid_duration_s = valid_duration_s
        self.receipts: dict[str, TransferReceipt] = {}
        self.executed: list[str] = []  # transaction ids that moved money, in order
        self.audit_messages: list[bytes] = []
        self.public_keys: dict[str, str | None] = {}  # account -> DER hex (None: not one key)
        self.fail_next_submits = 0  # raise before the node sees the bytes
        self.lose_next_answers = 0  # execute, then raise as if the answer was lost
        self.ignore_next_submits = 0  # answer OK but never execute (lost before consensus)
        # answer "unknown" to receipt queries, as during consensus lag: only while the transaction's
        # window is open (after it, "unknown" means "never executed": the contract's premise)
        self.hide_next_receipts = 0
        self.fail_next_receipts = 0  # raise on receipt queries (node unreachable)
        self._seq = itertools.count(1)

    @property
    def treasury_account_id(self) -> str:
        """The operator account that pays payouts."""
        return self._treasury

    @property
    def max_transfers_per_transaction(self) -> int:
        """Limit on balance adjustments in one transfer list."""
        return self._max_transfers

    def prepare_transfer(self, transfers: dict[str, int], *, memo: str = "") -> PreparedTransaction:
        """Build and sign a transfer with a fresh transaction id (valid from now)."""
        if sum(transfers.values()) != 0:
            raise ValueError(f"transfers must sum to zero: {transfers}")
        # back-dated like the SDK does, so a slightly fast node clock accepts it; the sequence
        # number keeps ids unique within one clock tick
        start_ns = self.clock() - _BACKDATE_NS + next(self._seq)
        tx_id = f"{self._treasury}@{start_ns // 10**9}.{start_ns % 10**9:09d}"
        payload = {
            "id": tx_id,
            "start": start_ns,
            "duration": self.valid_duration_s,
            "transfers": transfers,
            "memo": memo,
        }
        raw = json.dumps(payload, sort_keys=True).encode()
        body = json.dumps({"payload": raw.decode(), "sig": _sign(raw)}).encode()
        return PreparedTransaction(tx_id, start_ns, self.valid_duration_s, body)

    def submit(self, prepared: PreparedTransaction) -> SubmitOutcome:
        """Pre-check and, if accepted, execute the signed bytes."""
        if self.fail_next_submits:
            self.fail_next_submits -= 1
            raise ConnectionError("memory transport: node unreachable (injected)")
        status = self._precheck(prepared)
        outcome = SubmitOutcome(
            prepared.transaction_id, status in ("OK", "DUPLICATE_TRANSACTION"), status
        )
        if status != "OK":
            return outcome
        if self.ignore_next_submits:
            self.ignore_next_submits -= 1
            return outcome
        self._execute(json.loads(json.loads(prepared.body)["payload"]))
        if self.lose_next_answers:
            self.lose_next_answers -= 1
            raise ConnectionError("memory transport: answer lost (injected)")
        return outcome

    def _precheck(self, prepared: PreparedTransaction) -> str:
        try:
            envelope = json.loads(prepared.body)
            raw = envelope["payload"].encode()
            payload = json.loads(raw)
        except (ValueError, KeyError, TypeError):
            return "INVALID_TRANSACTION_BODY"
        if not hmac.compare_digest(envelope.get("sig", ""), _sign(raw)):
            return "INVALID_SIGNATURE"
        if payload["id"] != prepared.transaction_id:
            return "INVALID_TRANSACTION_ID"
        if payload["id"] in self.receipts:
            return "DUPLICATE_TRANSACTION"
        now = self.clock()
        if now < payload["start"]:
            return "INVALID_TRANSACTION_START"
        if now >= payload["start"] + payload["duration"] * 10**9:
            return "TRANSACTION_EXPIRED"
        if len(payload["transfers"]) > self._max_transfers:
            return "TRANSFER_LIST_SIZE_LIMIT_EXCEEDED"
        return "OK"

    def _execute(self, payload: dict[str, Any]) -> None:
        transfers: dict[str, int] = payload["transfers"]
        status = "SUCCESS"
        if any(account not in self.balances for account in transfers):
            status = "INVALID_ACCOUNT_ID"
        elif any(self.balances[a] + v < 0 for a, v in transfers.items()):
            status = "INSUFFICIENT_ACCOUNT_BALANCE"
        if status == "SUCCESS":
            for account, value in transfers.items():
                self.balances[account] += value
            self.executed.append(payload["id"])
        self.receipts[payload["id"]] = TransferReceipt(payload["id"], status, self.clock())

    def get_receipt(self, transaction_id: str) -> TransferReceipt | None:
        """The receipt of an executed (or failed at consensus) transaction, else ``None``."""
        if self.fail_next_receipts:
            self.fail_next_receipts -= 1
            raise ConnectionError("memory transport: node unreachable (injected)")
        if self.hide_next_receipts and self._window_open(transaction_id):
            self.hide_next_receipts -= 1
            return None
        return self.receipts.get(transaction_id)

    def _window_open(self, transaction_id: str) -> bool:
        seconds, _, nanos = transaction_id.partition("@")[2].partition(".")
        start_ns = int(seconds) * 10**9 + int(nanos)
        return self.clock() < start_ns + self.valid_duration_s * 10**9

    def account_balance(self, account_id: str) -> int:
        """Current balance in tinybars (0 for an account never seen)."""
        return self.balances.get(account_id, 0)

    def account_public_key(self, account_id: str) -> str | None:
        """The key registered in ``public_keys``; unknown accounts raise like the network."""
        if account_id not in self.public_keys:
            raise HederaRequestError(f"account {account_id}: INVALID_ACCOUNT_ID")
        return self.public_keys[account_id]

    def publish_audit(self, message: bytes) -> str:
        """Record an audit message; return a transaction id."""
        self.audit_messages.append(message)
        start_ns = self.clock() + next(self._seq)
        return f"{self._treasury}@{start_ns // 10**9}.{start_ns % 10**9:09d}"


def _sign(raw: bytes) -> str:
    return hmac.new(_KEY, raw, hashlib.sha256).hexdigest()
