"""What the verdict service must not forget across a restart: the round so far, and what it saw.

Without it a restart between two round closings would lose the contributions judged *improved*
since the last one (paid for, never merged into the model) and let the same data be judged and
paid again (the screen's memory of digests and fingerprints would be empty). Layout under
``root``::

    pending/<n>.npz     an improved contribution awaiting the round's merge (Contribution bytes)
    screened.jsonl      one line per contribution the screen let through: its digest and the
                        fingerprints of its labelled states (hex of little-endian uint64s)

Writes are atomic (temporary file, then rename; a line is appended and fsync'd in one write), so
a crash leaves either the record or nothing. A pending file is removed only after the merge that
used it is registered. Files are named by a counter, not by contribution id (ids come from
clients).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from crowdlearning.learning.contribution import Contribution

__all__ = ["RoundState"]


class RoundState:
    """See the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._pending_dir = self.root / "pending"
        self._pending_dir.mkdir(parents=True, exist_ok=True)
        self._screened = self.root / "screened.jsonl"
        self._files: dict[str, Path] = {}  # contribution id -> its pending file

    # --- the round's improved contributions -----------------------------------------------
    def pending(self) -> list[Contribution]:
        """The improved contributions not merged yet, in the order they were judged."""
        found = []
        for path in sorted(self._pending_dir.glob("*.npz"), key=lambda p: int(p.stem)):
            c = Contribution.from_bytes(path.read_bytes())
            self._files[c.contribution_id] = path
            found.append(c)
        return found

    def add_pending(self, contribution: Contribution) -> None:
        numbers = [int(p.stem) for p in self._pending_dir.glob("*.npz")]
        path = self._pending_dir / f"{max(numbers, default=-1) + 1}.npz"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(contribution.to_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._files[contribution.contribution_id] = path

    def drop_pending(self, contribution_ids: Iterable[str]) -> None:
        """Forget contributions whose merge is registered."""
        for cid in contribution_ids:
            path = self._files.pop(cid, None)
            if path is not None:
                path.unlink(missing_ok=True)

    # --- the screen's memory --------------------------------------------------------------
    def add_screened(self, digest: str, fingerprints: set[int]) -> None:
        prints = np.array(sorted(fingerprints), dtype="<u8").tobytes().hex()
        line = json.dumps({"digest": digest, "fingerprints": prints}) + "\n"
        with self._screened.open("a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def screened(self) -> Iterator[tuple[str, set[int]]]:
        """Every recorded (digest, fingerprints); a torn last line (crash) is skipped."""
        if not self._screened.is_file():
            return
        with self._screened.open() as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                    prints = np.frombuffer(bytes.fromhex(record["fingerprints"]), dtype="<u8")
                except (ValueError, KeyError):
                    continue
                yield record["digest"], {int(p) for p in prints}
