"""The aggregated dataset: append-only on disk, one shard per contribution.

Layout under ``root``::

    shards/<seq>-<contribution_id>.npz   label rows of one contribution (no pickles)
    index.jsonl                          one line per shard: seq, id, contributor, rows, sha256

A shard is written to a temporary file and renamed into place before its index line is appended
and flushed, so a crash leaves either a complete entry or none (a shard without an index line is
ignored). Nothing is ever rewritten; a contribution id appears at most once.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from crowdlearning.errors import CrowdLearningError
from crowdlearning.learning.labels import LabelSet

__all__ = ["AggregatedDataset", "DatasetError"]


class DatasetError(CrowdLearningError):
    """The dataset on disk is inconsistent, or an append would rewrite it."""


class AggregatedDataset:
    """Append-only store of label rows, keyed by contribution id."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        (self.root / "shards").mkdir(parents=True, exist_ok=True)
        self._index_path = self.root / "index.jsonl"
        self._index = self._read_index()

    def _read_index(self) -> list[dict]:
        if not self._index_path.exists():
            return []
        entries = []
        for line in self._index_path.read_text().splitlines():
            if line.strip():
                entries.append(json.loads(line))
        return entries

    @property
    def contribution_ids(self) -> list[str]:
        return [e["contribution_id"] for e in self._index]

    def __len__(self) -> int:
        return sum(e["rows"] for e in self._index)

    def entries(self) -> list[dict]:
        """The index in append order: ``seq``, ``contribution_id``, ``contributor_id``,
        ``rows``, ``file``, ``sha256`` of each shard (copies)."""
        return [dict(e) for e in self._index]

    def append(self, contribution_id: str, contributor_id: str, labels: LabelSet) -> dict:
        """Store ``labels`` of one contribution; the same id twice is refused."""
        if contribution_id in set(self.contribution_ids):
            raise DatasetError(f"contribution {contribution_id} is already in the dataset")
        seq = len(self._index)
        name = f"{seq:07d}-{contribution_id}.npz"
        data = _pack(labels)
        tmp = self.root / "shards" / (name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / "shards" / name)
        entry = {"seq": seq, "contribution_id": contribution_id, "contributor_id": contributor_id,
                 "rows": len(labels), "file": name, "sha256": hashlib.sha256(data).hexdigest()}
        with open(self._index_path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._index.append(entry)
        return entry

    def load(self, contribution_ids: Iterable[str] | None = None) -> LabelSet:
        """All rows, or those of the given contributions, in append order."""
        wanted = None if contribution_ids is None else set(contribution_ids)
        parts = []
        for entry in self._index:
            if wanted is not None and entry["contribution_id"] not in wanted:
                continue
            raw = (self.root / "shards" / entry["file"]).read_bytes()
            if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
                raise DatasetError(f"shard {entry['file']} does not match its recorded hash")
            parts.append(_unpack(raw))
        return LabelSet.concat(parts)

    def digest(self, contribution_ids: Iterable[str] | None = None) -> str:
        """Hash naming exactly which shards (in order) a training run saw."""
        wanted = None if contribution_ids is None else set(contribution_ids)
        h = hashlib.sha256()
        for e in self._index:
            if wanted is None or e["contribution_id"] in wanted:
                h.update(e["sha256"].encode())
        return h.hexdigest()


_FIELDS = ("observations", "targets", "mask", "weights", "sources")


def _pack(labels: LabelSet) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{f: getattr(labels, f) for f in _FIELDS})
    return buf.getvalue()


def _unpack(raw: bytes) -> LabelSet:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        return LabelSet(*(npz[f] for f in _FIELDS))
