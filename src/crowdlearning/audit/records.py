"""What the audit trail hashes and publishes: canonical records and the block message.

An entry's record is canonical JSON (sorted keys, no spaces, ASCII) so that anyone holding the
same facts re-derives the same bytes and the same SHA-256:

- a verdict: ``{"kind": "verdict", "contribution", "sha256" (of ``Verdict.record``, what
  ``crowdlearning verify-verdict`` re-judges), "reward_tinybar", "penalty_tinybar", "payout"}``
- a settled Hedera transaction: ``{"kind": "payouts", "transaction", "payouts": [[payout id,
  destination account, tinybar], ...]}`` (payouts sorted by id, as the ledger lists them)

A block is published as ONE message (well under HCS's 1024-byte chunk)::

    {"app": "crowdlearning-audit", "block": 7, "entries": 256, "prev": "<hex>", "root": "<hex>",
     "v": 1}

``prev`` is the previous block's root (64 zeros for block 1): the blocks form a hash chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENESIS_ROOT",
    "BlockMessage",
    "canonical_json",
    "payouts_record",
    "record_sha256",
    "verdict_record",
]

APP = "crowdlearning-audit"
VERSION = 1
GENESIS_ROOT = "0" * 64  # the "previous root" of block 1


def canonical_json(record: Mapping[str, Any]) -> str:
    """The one JSON text of a record (sorted keys, no whitespace, ASCII only)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def record_sha256(record_json: str) -> str:
    """SHA-256 (hex) of a record's canonical JSON: the entry's hash and its Merkle leaf data."""
    return hashlib.sha256(record_json.encode()).hexdigest()


def verdict_record(contribution_id: str, verdict_sha256: str, reward_tinybar: int,
                   penalty_tinybar: int, payout_id: str | None) -> dict[str, Any]:
    """The audit record of a booked verdict."""
    return {"kind": "verdict", "contribution": contribution_id, "sha256": verdict_sha256,
            "reward_tinybar": reward_tinybar, "penalty_tinybar": penalty_tinybar,
            "payout": payout_id}


def payouts_record(transaction_id: str,
                   payouts: Iterable[tuple[str, str, int]]) -> dict[str, Any]:
    """The audit record of a settled Hedera transaction: what it paid, to whom."""
    return {"kind": "payouts", "transaction": transaction_id,
            "payouts": [[pid, destination, amount] for pid, destination, amount in payouts]}


@dataclass(frozen=True)
class BlockMessage:
    """The content of a block's HCS message."""

    block: int
    root: str  # hex SHA-256: the Merkle root over the block's entries
    entries: int
    prev: str  # the previous block's root

    def encode(self) -> bytes:
        """The exact bytes published."""
        return canonical_json({"app": APP, "v": VERSION, "block": self.block, "root": self.root,
                               "entries": self.entries, "prev": self.prev}).encode()

    @classmethod
    def decode(cls, data: bytes) -> BlockMessage:
        """Parse a topic message; ``ValueError`` if it is not an audit block message."""
        try:
            fields = json.loads(data)
            if fields.get("app") != APP or fields.get("v") != VERSION:
                raise ValueError("not a crowdlearning audit block message")
            message = cls(int(fields["block"]), str(fields["root"]), int(fields["entries"]),
                          str(fields["prev"]))
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed audit block message: {exc!r}") from exc
        return message
