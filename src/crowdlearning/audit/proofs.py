"""``InclusionProof``: one audit entry's path to the Merkle root its block publishes.

Anyone with the proof and the record checks it without the database: hash the record
(``records.record_sha256``), hash that as a leaf, follow the path to a root, and compare the root
with the block's message on the topic (``verify.py`` does all of it, reading the topic from a
mirror node).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from crowdlearning.audit.merkle import leaf_hash, root_from_path
from crowdlearning.audit.records import record_sha256

__all__ = ["InclusionProof"]


@dataclass(frozen=True)
class InclusionProof:
    """Where an entry is in its block, and the hashes that lead from it to the block's root."""

    kind: str  # "verdict" | "payouts"
    subject: str  # the contribution id / the settlement transaction id
    entry_id: int
    record: str  # canonical record JSON
    record_sha256: str  # as journaled
    block: int
    leaf_index: int
    tree_size: int
    path: tuple[str, ...]  # sibling hashes (hex), leaf to root
    root: str  # the block's root as journaled (hex)
    prev_root: str
    published: bool
    topic_id: str | None = None
    topic_sequence: int | None = None  # the block message's sequence number on the topic
    transaction_id: str | None = None  # the HCS transaction that published it

    def computed_root(self) -> str | None:
        """The root the record and the path lead to (hex), ``None`` for an impossible path."""
        leaf = leaf_hash(bytes.fromhex(record_sha256(self.record)))
        found = root_from_path(leaf, self.leaf_index, self.tree_size,
                               [bytes.fromhex(p) for p in self.path])
        return None if found is None else found.hex()

    def proves(self, expected_root: str | None = None) -> bool:
        """Whether the record is in the tree whose root is ``expected_root`` (by default the
        journaled one; pass the root read from the topic to check against the chain)."""
        return self.computed_root() == (expected_root or self.root)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {**asdict(self), "path": list(self.path)}
