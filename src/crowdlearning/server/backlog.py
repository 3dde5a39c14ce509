"""Finished runs waiting for their verdict, kept on disk; paid runs first, each kind in
arrival order.

A run a player finished is work the platform owes them a verdict for: a judge that is busy (more
runs finish per second than it judges, e.g. 500 players on one 2-core machine) or a server
restart must not lose it. The referee writes each finished run here before judging it and removes
it once its verdict is delivered; a restart judges what is left. One file per run::

    <sequence, 12 digits>.run     a paid run: 4-byte big-endian length, the RunSpec as JSON, the
                                  contribution
    p<sequence, 12 digits>.run    a practice run, the same

Practice is judged at low priority: the names sort practice after every paid run, so a busy
judge answers the players with money at stake first (a practice run waits, it is never dropped).

written atomically (temporary file, fsync, rename). A file that cannot be read is moved aside
(``*.bad``) and reported, never judged and never silently deleted.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from dataclasses import asdict
from pathlib import Path

from crowdlearning.server.game_loop import RunSpec

__all__ = ["VerdictBacklog"]

log = logging.getLogger(__name__)
_HEADER = struct.Struct(">I")
_PRACTICE = "p"  # key prefix of practice runs: sorts after the digits of paid runs


class VerdictBacklog:
    """See the module docstring. Thread-safe (the worker writes and judges; shutdown writes
    what is left)."""

    def __init__(self, root: str | Path) -> None:
        self._lock = threading.RLock()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._keys = sorted(p.stem for p in self.root.glob("*.run"))
        self._next = max((int(k.lstrip(_PRACTICE)) for k in self._keys), default=-1) + 1
        self.set_aside = 0  # unreadable entries moved to *.bad since start

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)

    def push(self, spec: RunSpec, contribution: bytes) -> int:
        """Keep a finished run; returns its place in the line (1 = next; paid runs go before
        every practice run)."""
        with self._lock:
            key = f"{'' if spec.paid else _PRACTICE}{self._next:012d}"
            self._next += 1
        header = json.dumps(asdict(spec)).encode()
        path = self.root / f"{key}.run"
        tmp = self.root / f"{key}.tmp"
        with tmp.open("wb") as fh:
            fh.write(_HEADER.pack(len(header)) + header + contribution)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        with self._lock:
            self._keys.append(key)
            self._keys.sort()
            return self._keys.index(key) + 1

    def head(self, n: int) -> list[tuple[str, RunSpec, bytes]]:
        """The oldest ``n`` runs (unreadable files are set aside)."""
        out: list[tuple[str, RunSpec, bytes]] = []
        with self._lock:
            keys = list(self._keys)
        for key in keys:
            if len(out) >= n:
                break
            path = self.root / f"{key}.run"
            try:
                raw = path.read_bytes()
                (size,) = _HEADER.unpack_from(raw)
                spec = RunSpec(**json.loads(raw[_HEADER.size:_HEADER.size + size]))
                out.append((key, spec, raw[_HEADER.size + size:]))
            except (OSError, ValueError, TypeError, struct.error) as exc:
                log.error("unreadable backlog entry %s (%s): set aside as %s.bad", key, exc, key)
                if path.exists():
                    path.replace(path.with_suffix(".bad"))
                self._drop(key)
                with self._lock:
                    self.set_aside += 1
        return out

    def run_ids(self) -> set[str]:
        """The ids of the runs waiting (read from the headers only; an unreadable entry names
        none: ``head`` sets it aside)."""
        ids: set[str] = set()
        with self._lock:
            keys = list(self._keys)
        for key in keys:
            try:
                with (self.root / f"{key}.run").open("rb") as fh:
                    (size,) = _HEADER.unpack(fh.read(_HEADER.size))
                    ids.add(str(json.loads(fh.read(size))["run_id"]))
            except (OSError, ValueError, TypeError, KeyError, struct.error):
                continue
        return ids

    def remove(self, key: str) -> None:
        """The run's verdict was delivered (or failed for good): forget it."""
        (self.root / f"{key}.run").unlink(missing_ok=True)
        self._drop(key)

    def _drop(self, key: str) -> None:
        with self._lock:
            if key in self._keys:
                self._keys.remove(key)
