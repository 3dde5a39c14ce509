"""The local network's core: one node that pre-checks, reaches "consensus" at once, and answers.

``LocalNetwork`` is transport-free (the gRPC services in ``services.py`` and the mirror REST view in
``mirror.py`` sit on top of it). By default consensus is immediate: a transaction that passes
pre-check is executed before the submit call returns, so its receipt is available to the very next
query. With ``consensus_delay_s > 0`` admitted transactions wait that long (receipt ``UNKNOWN``,
resubmission ``DUPLICATE_TRANSACTION``) and execute in arrival order, as on the real network;
pending transactions are not persisted (a restart loses them, like a node crash before consensus).
All access is serialized by one lock. With a state path, every executed transaction is journaled
before the client hears of it (see ``journal.py``), and the state is reloaded at the next start.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from hiero_sdk_python import PrivateKey
from hiero_sdk_python.hapi.services import transaction_pb2

from .execution import execute
from .ids import transaction_id_key
from .journal import Journal
from .precheck import precheck
from .rules import NetworkRules
from .state import Account, NetworkState, Outcome, TopicMessage
from .submission import MAX_TRANSACTION_BYTES, Submission, decode_transaction

__all__ = ["GENESIS_SUPPLY_TINYBAR", "DevOperator", "LocalNetwork"]

GENESIS_SUPPLY_TINYBAR = 50_000_000_000 * 100_000_000  # 50 billion HBAR, as on the real network
MAX_PENDING = 10_000  # admitted transactions awaiting consensus; beyond this the node is BUSY
TREASURY_ACCOUNT_ID = "0.0.2"


@dataclass(frozen=True)
class DevOperator:
    """A funded development account and its private key (DER hex); development only."""

    account_id: str
    private_key_der_hex: str

    def private_key(self) -> PrivateKey:
        return PrivateKey.from_string_der(self.private_key_der_hex)


class LocalNetwork:
    """A single-node Hedera-compatible ledger in memory (optionally persisted to JSON)."""

    def __init__(
        self,
        state: NetworkState,
        *,
        rules: NetworkRules | None = None,
        state_path: Path | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        consensus_delay_s: float = 0.0,
        receipt_ttl_s: float | None = None,
    ) -> None:
        if not 0.0 <= consensus_delay_s <= 60.0:
            raise ValueError(f"consensus_delay_s={consensus_delay_s} outside [0, 60]")
        self._state = state
        self.rules = rules or NetworkRules()
        self._journal = Journal(state_path) if state_path is not None else None
        self._clock_ns = clock_ns
        self._delay_ns = int(consensus_delay_s * 1e9)
        # None: receipts and records answered forever; else forgotten this long after consensus,
        # as the real network does (~180 s); the mirror view keeps the history regardless
        self._receipt_ttl_ns = None if receipt_ttl_s is None else int(receipt_ttl_s * 1e9)
        self._pending: deque[tuple[int, str, Submission]] = deque()  # (due_ns, tx id, submission)
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        *,
        state_path: Path | None = None,
        rules: NetworkRules | None = None,
        operator_balance_tinybar: int = 1_000_000 * 100_000_000,
        operator_key_type: str = "ed25519",
        consensus_delay_s: float = 0.0,
        clock_ns: Callable[[], int] = time.time_ns,
        receipt_ttl_s: float | None = None,
    ) -> LocalNetwork:
        """Load ``state_path`` if it exists, else start from genesis with a new dev operator."""
        rules = rules or NetworkRules()
        journal = Journal(state_path) if state_path is not None else None
        if journal is not None and journal.exists():
            state = journal.load(partial(_replay, rules=rules))
        else:
            state = _genesis(rules, operator_balance_tinybar, operator_key_type)
            if journal is not None:
                journal.compact(state)
        return cls(
            state,
            rules=rules,
            state_path=state_path,
            clock_ns=clock_ns,
            consensus_delay_s=consensus_delay_s,
            receipt_ttl_s=receipt_ttl_s,
        )

    @property
    def node_account_id(self) -> str:
        return self.rules.node_account_id

    @property
    def operator(self) -> DevOperator:
        """The funded development operator created at genesis."""
        account_id = min(self._state.dev_keys, key=lambda a: int(a.split(".")[2]))
        return DevOperator(account_id, self._state.dev_keys[account_id])

    def submit(self, transaction: transaction_pb2.Transaction) -> str:
        """Pre-check and, if admitted, execute (now or after the delay); returns the code name."""
        if transaction.ByteSize() > MAX_TRANSACTION_BYTES:
            return "TRANSACTION_OVERSIZE"
        sub = decode_transaction(transaction)
        if sub is None:
            return "INVALID_TRANSACTION"
        with self._settled() as now_ns:
            code = precheck(sub, self._state, self.rules, now_ns)
            tx_id = transaction_id_key(sub.body.transactionID) if code == "OK" else ""
            if code == "OK" and any(pending_id == tx_id for _, pending_id, _ in self._pending):
                return "DUPLICATE_TRANSACTION"
            if code == "OK" and len(self._pending) >= MAX_PENDING:
                return "BUSY"
            if code == "OK":
                self._pending.append((now_ns + self._delay_ns, tx_id, sub))
                self._execute_due(now_ns)
        return code

    def outcome(self, transaction_id: str) -> Outcome | None:
        """The consensus outcome, or ``None`` if unknown or still pending (see ``is_pending``)."""
        with self._settled():
            return self._state.outcomes.get(transaction_id)

    def receipt_outcome(self, transaction_id: str) -> Outcome | None:
        """The outcome as the receipt and record queries see it: ``None`` once the receipt
        lifetime (``receipt_ttl_s`` after consensus) is over."""
        with self._settled() as now_ns:
            outcome = self._state.outcomes.get(transaction_id)
            if outcome is None or self._receipt_ttl_ns is None:
                return outcome
            return outcome if now_ns <= outcome.consensus_ns + self._receipt_ttl_ns else None

    def is_pending(self, transaction_id: str) -> bool:
        """Admitted by pre-check but not yet executed (only with a consensus delay)."""
        with self._settled():
            return any(pending_id == transaction_id for _, pending_id, _ in self._pending)

    def balance(self, account_id: str) -> int | None:
        with self._settled():
            account = self._state.accounts.get(account_id)
            return None if account is None else account.balance_tinybar

    def account_key(self, account_id: str) -> bytes | None:
        """The account's key (a serialized ``Key`` protobuf), or ``None`` if there is no such
        account."""
        with self._settled():
            account = self._state.accounts.get(account_id)
            return None if account is None else account.key

    def account_memo(self, account_id: str) -> str:
        with self._settled():
            account = self._state.accounts.get(account_id)
            return "" if account is None else account.memo

    def outcomes_for_account(self, account_id: str) -> list[Outcome]:
        """Outcomes that moved hbar in or out of ``account_id``, oldest first."""
        with self._settled():
            found = [
                o
                for o in self._state.outcomes.values()
                if any(a == account_id for a, _ in o.transfers)
            ]
        return sorted(found, key=lambda o: o.consensus_ns)

    def all_outcomes(self) -> list[Outcome]:
        with self._settled():
            return sorted(self._state.outcomes.values(), key=lambda o: o.consensus_ns)

    def final_through_ns(self) -> int:
        """Consensus time up to which history is complete: any transaction still to execute
        gets a later consensus timestamp (the mirror's newest "block" ends here)."""
        with self._settled() as now_ns:
            final = max(now_ns, self._state.last_consensus_ns)
            if self._pending:
                final = min(final, self._pending[0][0] - 1)
            return final

    def topic_messages(self, topic_id: str) -> list[TopicMessage] | None:
        with self._settled():
            topic = self._state.topics.get(topic_id)
            return None if topic is None else list(topic.messages)

    @contextmanager
    def _settled(self) -> Iterator[int]:
        """Hold the lock, with every transaction that is due executed; yields now [ns]."""
        with self._lock:
            now_ns = self._clock_ns()
            self._execute_due(now_ns)
            yield now_ns

    def _execute_due(self, now_ns: int) -> None:
        while self._pending and self._pending[0][0] <= now_ns:
            due_ns, _, sub = self._pending.popleft()
            consensus_ns = max(due_ns, self._state.last_consensus_ns + 1)
            execute(sub, self._state, self.rules, consensus_ns)
            if self._journal is not None:
                self._journal.append(consensus_ns, sub)


def _replay(state: NetworkState, consensus_ns: int, raw: bytes, *, rules: NetworkRules) -> None:
    """Re-execute one journaled transaction (it passed pre-check when it first ran)."""
    sub = decode_transaction(transaction_pb2.Transaction.FromString(raw))
    if sub is None:
        raise ValueError(f"unreadable journaled transaction at consensus time {consensus_ns}")
    execute(sub, state, rules, consensus_ns)


def _genesis(rules: NetworkRules, operator_balance: int, key_type: str) -> NetworkState:
    if not 0 < operator_balance <= GENESIS_SUPPLY_TINYBAR:
        raise ValueError(f"operator_balance_tinybar={operator_balance} outside (0, genesis supply]")
    state = NetworkState()
    treasury_key = PrivateKey.generate_ed25519()
    state.accounts[TREASURY_ACCOUNT_ID] = Account(
        key=_key_bytes(treasury_key), balance_tinybar=GENESIS_SUPPLY_TINYBAR - operator_balance
    )
    state.accounts[rules.node_account_id] = Account(key=_key_bytes(treasury_key), balance_tinybar=0)
    operator_key = PrivateKey.generate(key_type)
    operator_id = state.new_entity_id()
    state.accounts[operator_id] = Account(
        key=_key_bytes(operator_key), balance_tinybar=operator_balance
    )
    state.dev_keys[operator_id] = operator_key.to_string_der()
    return state


def _key_bytes(private_key: PrivateKey) -> bytes:
    return private_key.public_key().to_proto_key().SerializeToString()
