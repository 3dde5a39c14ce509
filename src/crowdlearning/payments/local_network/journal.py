"""Durable state: a JSON snapshot plus an append-only journal of executed transactions.

``FILE`` holds the snapshot (``NetworkState.save``); ``FILE.journal`` holds one JSON line per
transaction executed since, ``{"consensus_ns": ..., "transaction": "<Transaction protobuf hex>"}``.
Execution is deterministic given the state, the rules and the consensus time, so loading replays
the journal on the snapshot, then compacts (writes a new snapshot, empties the journal). Appending
one line per transaction keeps the cost of durability constant as the state grows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .state import NetworkState
from .submission import Submission

__all__ = ["Journal"]


class Journal:
    """Snapshot + journal files for one network state."""

    def __init__(self, snapshot_path: Path) -> None:
        self.snapshot_path = snapshot_path
        self.journal_path = snapshot_path.with_name(snapshot_path.name + ".journal")

    def exists(self) -> bool:
        return self.snapshot_path.exists()

    def load(self, replay: Callable[[NetworkState, int, bytes], None]) -> NetworkState:
        """The snapshot with every journaled transaction re-executed by ``replay``, compacted."""
        state = NetworkState.load(self.snapshot_path)
        if self.journal_path.exists():
            for line in self.journal_path.read_text().splitlines():
                if line.strip():  # a torn last line (crash mid-append) is cut below
                    entry = _parse(line)
                    if entry is not None:
                        replay(state, *entry)
        self.compact(state)
        return state

    def compact(self, state: NetworkState) -> None:
        """Write a fresh snapshot and start an empty journal."""
        state.save(self.snapshot_path)
        self.journal_path.write_text("")

    def append(self, consensus_ns: int, sub: Submission) -> None:
        """Record one executed transaction (flushed before the caller answers the client)."""
        line = json.dumps({"consensus_ns": consensus_ns, "transaction": sub.raw.hex()})
        with self.journal_path.open("a") as journal:
            journal.write(line + "\n")
            journal.flush()


def _parse(line: str) -> tuple[int, bytes] | None:
    try:
        entry = json.loads(line)
        return int(entry["consensus_ns"]), bytes.fromhex(entry["transaction"])
    except (ValueError, KeyError, TypeError):
        return None
