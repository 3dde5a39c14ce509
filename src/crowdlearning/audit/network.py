"""What publishing the audit trail needs from a Hedera network (``SdkHederaTransport`` has it).

Publishing follows settlement's exactly-once pattern (``hedera.transport``): the message is
signed with a client-chosen transaction id, the signed bytes are stored with the block, and those
same bytes are submitted as often as needed (``DUPLICATE_TRANSACTION`` counts as accepted); a
new transaction is signed only once the stored one can never execute (its window passed with no
receipt, or it failed). So a block sealed but not confirmed before a crash is re-sent as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from crowdlearning.hedera.transport import PreparedTransaction, SubmitOutcome

__all__ = ["AuditNetwork", "MessageReceipt"]


@dataclass(frozen=True)
class MessageReceipt:
    """The consensus outcome of a topic message."""

    transaction_id: str
    status: str  # "SUCCESS" or the failure code name
    sequence_number: int | None = None  # the message's number on its topic (on SUCCESS)


@runtime_checkable
class AuditNetwork(Protocol):
    """Create the topic once; sign, submit (repeatably) and confirm one message per block."""

    def create_audit_topic(self) -> str:
        """Create a topic only the operator may post to; return its id (``shard.realm.num``)."""
        ...

    def prepare_audit_message(self, topic_id: str, message: bytes) -> PreparedTransaction:
        """Sign a message for ``topic_id`` with a fresh transaction id (not sent yet)."""
        ...

    def submit(self, prepared: PreparedTransaction) -> SubmitOutcome:
        """Send the signed bytes (safe to repeat)."""
        ...

    def audit_message_receipt(self, transaction_id: str) -> MessageReceipt | None:
        """The final outcome of a message, or ``None`` while the network does not know it."""
        ...
