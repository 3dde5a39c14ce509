"""What the verdict service must not forget across a restart: the round so far, and what it saw.

Without it a restart between two round closings would lose the contributions judged *improved*
since the last one (paid for, never merged into the model) and let the same data be judged and
paid again (the screen's memory of digests and fingerprints would be empty). Layout under
``root``::

    pending/<n>.npz     an improved contribution awaiting the round's merge (Contribution bytes)
    pool/<n>.npz        a "no effect" run that may join the round's pool (``evaluation.pooled``)
    pool_decision.json  an improved pool whose shares are being paid (written before any money
                        moves, removed once they are booked)
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


class _Folder:
    """Contributions kept one file each, named by a counter, in the order they were added."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, Path] = {}  # contribution id -> its file
        self.load()  # so that ``add`` knows what is kept from the start

    def load(self) -> list[Contribution]:
        found = []
        for path in sorted(self.root.glob("*.npz"), key=lambda p: int(p.stem)):
            c = Contribution.from_bytes(path.read_bytes())
            if c.contribution_id in self._files and self._files[c.contribution_id] != path:
                path.unlink(missing_ok=True)  # a second copy (kept before ``add`` checked)
                continue
            self._files[c.contribution_id] = path
            found.append(c)
        return found

    def add(self, contribution: Contribution) -> None:
        """Keep ``contribution`` (once: a run already kept is not written again)."""
        if contribution.contribution_id in self._files:
            return
        numbers = [int(p.stem) for p in self.root.glob("*.npz")]
        path = self.root / f"{max(numbers, default=-1) + 1}.npz"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(contribution.to_bytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        self._files[contribution.contribution_id] = path

    def drop(self, contribution_ids: Iterable[str]) -> None:
        for cid in contribution_ids:
            path = self._files.pop(cid, None)
            if path is not None:
                path.unlink(missing_ok=True)


class RoundState:
    """See the module docstring."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._pending = _Folder(self.root / "pending")
        self._pool = _Folder(self.root / "pool")
        self._pool_decision = self.root / "pool_decision.json"
        self._screened = self.root / "screened.jsonl"

    # --- the round's improved contributions -----------------------------------------------
    def pending(self) -> list[Contribution]:
        """The improved contributions not merged yet, in the order they were judged."""
        return self._pending.load()

    def add_pending(self, contribution: Contribution) -> None:
        self._pending.add(contribution)

    def drop_pending(self, contribution_ids: Iterable[str]) -> None:
        """Forget contributions whose merge is registered."""
        self._pending.drop(contribution_ids)

    # --- the round's pool candidates (``evaluation.pooled``) ------------------------------
    def pool_candidates(self) -> list[Contribution]:
        """The runs that may join this round's pool, as judged, in the order they were."""
        return self._pool.load()

    def add_pool_candidate(self, contribution: Contribution) -> None:
        self._pool.add(contribution)

    def drop_pool_candidates(self, contribution_ids: Iterable[str]) -> None:
        """Forget candidates once their round's pool was decided (and merged, if improved)."""
        self._pool.drop(contribution_ids)

    def save_pool_decision(self, record: dict) -> None:
        """Keep an improved pool's decision and shares until ``clear_pool_decision``."""
        tmp = self._pool_decision.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write(json.dumps(record, sort_keys=True))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._pool_decision)

    def pool_decision(self) -> dict | None:
        """The improved pool whose shares were being paid when the service stopped, if any."""
        if not self._pool_decision.is_file():
            return None
        return json.loads(self._pool_decision.read_text())

    def clear_pool_decision(self) -> None:
        self._pool_decision.unlink(missing_ok=True)

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
