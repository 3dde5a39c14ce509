"""An in-memory HCS for the audit tests: topics, signed message bytes, receipts, faults."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator

from crowdlearning.audit.mirror import TopicMessage
from crowdlearning.audit.network import MessageReceipt
from crowdlearning.hedera.transport import PreparedTransaction, SubmitOutcome

OPERATOR = "0.0.2"


class MemoryAuditNetwork:
    """``AuditNetwork`` and ``TopicReader`` in memory. A transaction id is executed once (a
    resubmission answers ``DUPLICATE_TRANSACTION``); faults: ``down`` (every call raises),
    ``lose_answers`` (the message is posted, the answer is lost), ``gate`` (submissions wait for
    it: a hung network)."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self.clock = clock
        self.topics: dict[str, list[tuple[bytes, str]]] = {}  # topic -> [(message, consensus)]
        self.receipts: dict[str, MessageReceipt] = {}
        self.submits = 0
        self.created = 0
        self.down = False
        self.lose_answers = 0
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("memory audit network: unreachable (injected)")

    # --- AuditNetwork -------------------------------------------------------------------
    def create_audit_topic(self) -> str:
        self._check()
        with self._lock:
            self.created += 1
            topic = f"0.0.{5000 + next(self._ids)}"
            self.topics[topic] = []
            return topic

    def prepare_audit_message(self, topic_id: str, message: bytes) -> PreparedTransaction:
        start = self.clock() - 5 * 10**9 + next(self._ids)
        tx_id = f"{OPERATOR}@{start // 10**9}.{start % 10**9:09d}"
        body = json.dumps({"id": tx_id, "topic": topic_id,
                           "message": base64.b64encode(message).decode()}).encode()
        return PreparedTransaction(tx_id, start, 120, body)

    def submit(self, prepared: PreparedTransaction) -> SubmitOutcome:
        if self.gate is not None:
            self.gate.wait()
        self._check()
        payload = json.loads(prepared.body)
        with self._lock:
            self.submits += 1
            if prepared.transaction_id in self.receipts:
                return SubmitOutcome(prepared.transaction_id, True, "DUPLICATE_TRANSACTION")
            messages = self.topics.get(payload["topic"])
            if messages is None:
                self.receipts[prepared.transaction_id] = MessageReceipt(
                    prepared.transaction_id, "INVALID_TOPIC_ID")
            else:
                messages.append((base64.b64decode(payload["message"]), f"{self.clock()}"))
                self.receipts[prepared.transaction_id] = MessageReceipt(
                    prepared.transaction_id, "SUCCESS", len(messages))
        if self.lose_answers:
            self.lose_answers -= 1
            raise ConnectionError("memory audit network: answer lost (injected)")
        return SubmitOutcome(prepared.transaction_id, True, "OK")

    def audit_message_receipt(self, transaction_id: str) -> MessageReceipt | None:
        self._check()
        return self.receipts.get(transaction_id)

    # --- TopicReader ----------------------------------------------------------------------
    def message(self, topic_id: str, sequence_number: int) -> TopicMessage | None:
        messages = self.topics.get(topic_id, [])
        if not 1 <= sequence_number <= len(messages):
            return None
        data, consensus = messages[sequence_number - 1]
        return TopicMessage(topic_id, sequence_number, data, consensus, OPERATOR)

    def messages(self, topic_id: str, after: int = 0) -> Iterator[TopicMessage]:
        for n in range(after + 1, len(self.topics.get(topic_id, [])) + 1):
            found = self.message(topic_id, n)
            assert found is not None
            yield found

    def all_messages(self) -> list[bytes]:
        """Every message on every topic."""
        return [m for messages in self.topics.values() for m, _ in messages]
