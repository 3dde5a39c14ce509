"""Stake held behind a paid run from its start to its verdict; voided if it is never judged.

A paid run's hold opens when the run starts (``open``, before it takes a game slot): the ledger
moves ``ledger_hold_tinybar`` of the player's stake to held (``hold:<run id>``, the run id is the
contribution id), so that unstaking or withdrawing during the run cannot empty what its verdict
may take. The judge finds that hold open when the run is submitted and books the verdict on it
(penalty from it, the rest released). A run that will never be judged gives its hold back
(``void``, ledger transfer ``void:<run id>``): it ended before its first tick, the game was full,
the verdict queue was full, the judge gave up on it, or its recording was lost in a restart.

This game server keeps one marker file per paid run it holds stake for (``<run id>.hold`` in
``paid_runs_dir``; written before the hold is opened, removed once the run is answered or
voided). At start, ``void_orphans`` voids the holds of its markers whose run is neither live nor
in the verdict backlog: those runs can no longer be judged. Game servers sharing one ledger each
have their own markers, so no server ever voids another's runs. Every void is idempotent (a
crash in between is finished at the next start) and logged.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger
from crowdlearning.server.game_loop import RunSpec

__all__ = ["RunHolds", "paid_runs_dir"]

log = logging.getLogger(__name__)
_SUFFIX = ".hold"


def paid_runs_dir(settings: Settings) -> Path:
    """This game server's markers of paid runs holding stake (one directory per server, as its
    verdict backlog)."""
    return settings.data_dir / "paid-runs" / f"{socket.gethostname()}-{settings.server_port}"


class RunHolds:
    """See the module docstring. Methods touch the ledger: call them off the event loop."""

    def __init__(self, ledger: Ledger, root: Path) -> None:
        self.ledger = ledger
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def open(self, spec: RunSpec) -> None:
        """Hold stake behind a paid run that is about to start (raises ``StakeRequiredError``
        when the player's unheld stake is not enough: then nothing is held or kept)."""
        self._mark(spec)
        try:
            self.ledger.hold_for_contribution(spec.player_id, spec.run_id)
        except BaseException:
            self._path(spec.run_id).unlink(missing_ok=True)
            raise

    def void(self, run_id: str, why: str) -> bool:
        """The run will not be judged (any more): give back what is still held behind it and
        forget it. A hold its verdict settled is left as it is. False if the ledger could not be
        reached (the marker stays: the next start voids it)."""
        try:
            hold = self.ledger.void_hold(run_id)
        except Exception:  # the database is unreachable: the marker keeps the work
            log.exception("voiding the hold of run %s failed; the next start tries again", run_id)
            return False
        if hold is not None and hold.state == "voided":
            log.info("hold of run %s (%s, %d tinybar) voided: %s", run_id, hold.player_id,
                     hold.amount_tinybar, why)
        self._path(run_id).unlink(missing_ok=True)
        return True

    def marked(self) -> set[str]:
        """The run ids this server holds stake for (as far as its markers say)."""
        return {p.name.removesuffix(_SUFFIX) for p in self.root.glob(f"*{_SUFFIX}")}

    def void_orphans(self, keep: Iterable[str]) -> list[str]:
        """At start: void the hold of every marked run not in ``keep`` (the runs still live or
        waiting in the verdict backlog); returns the run ids voided."""
        alive = set(keep)
        orphans = sorted(self.marked() - alive)
        for run_id in orphans:
            self.void(run_id, "the run was lost before it reached the judge (server restart)")
        if orphans:
            log.warning("%d paid runs lost in a restart: their holds were voided", len(orphans))
        return orphans

    def _path(self, run_id: str) -> Path:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.root / f"{run_id}{_SUFFIX}"

    def _mark(self, spec: RunSpec) -> None:
        path = self._path(spec.run_id)
        tmp = path.with_suffix(".tmp")
        body = {"run_id": spec.run_id, "player_id": spec.player_id, "started_at": time.time()}
        with tmp.open("w") as fh:
            fh.write(json.dumps(body))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
