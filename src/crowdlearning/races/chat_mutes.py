"""Race chat mutes (``races/chat.py``): who a moderator muted, until when.

``MuteStore`` keeps them in the ledger's database (``race_chat_mutes``, migration 0010), which the
game servers of a deployment share: a mute holds across restarts and on every server. Each
server reads the active mutes at most every ``MUTES_REFRESH_S`` (off the event loop: the socket
calls ``refresh`` through a thread, ``Chat.fresh_mutes``). ``MemoryMutes``: without a database
(tests, a race service built without the ledger's engine).
"""

from __future__ import annotations

import threading
from typing import Protocol

import sqlalchemy as sa

from crowdlearning.ledger.db import run_transaction
from crowdlearning.ledger.schema import race_chat_mutes

__all__ = ["MUTES_REFRESH_S", "MemoryMutes", "MuteStore", "Mutes"]

MUTES_REFRESH_S = 5.0  # a mute set on another server holds here within this long


class Mutes(Protocol):
    """Who is muted until when (Unix s)."""

    def until(self, user_id: int, now: float) -> float | None: ...
    def mute(self, user_id: int, until: float, moderator_id: int, now: float) -> None: ...
    def stale(self, now: float) -> bool: ...
    def refresh(self, now: float) -> None: ...


class MemoryMutes:
    """Mutes in this process only (no database: tests, a server without a ledger)."""

    def __init__(self) -> None:
        self._until: dict[int, float] = {}

    def until(self, user_id: int, now: float) -> float | None:
        until = self._until.get(user_id)
        return until if until is not None and until > now else None

    def mute(self, user_id: int, until: float, moderator_id: int, now: float) -> None:
        self._until[user_id] = until

    def stale(self, now: float) -> bool:
        return False

    def refresh(self, now: float) -> None:
        pass


class MuteStore:
    """Mutes in the ledger's database (``race_chat_mutes``), with an in-memory copy of the
    active ones read at most every ``MUTES_REFRESH_S``. ``mute`` and ``refresh`` touch the
    database (blocking: call them off the event loop); ``until`` and ``stale`` do not."""

    def __init__(self, engine: sa.Engine, refresh_s: float = MUTES_REFRESH_S) -> None:
        self.engine, self.refresh_s = engine, refresh_s
        self._until: dict[int, float] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def until(self, user_id: int, now: float) -> float | None:
        until = self._until.get(user_id)
        return until if until is not None and until > now else None

    def stale(self, now: float) -> bool:
        return now - self._read_at >= self.refresh_s

    def refresh(self, now: float) -> None:
        """Read the mutes active at ``now``."""
        query = sa.select(race_chat_mutes.c.user_id, race_chat_mutes.c.until_ns).where(
            race_chat_mutes.c.until_ns > int(now * 1e9))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except Exception:
            self._read_at = now  # not again before ``refresh_s``
            raise
        with self._lock:
            self._until = {int(r.user_id): r.until_ns / 1e9 for r in rows}
            self._read_at = now

    def mute(self, user_id: int, until: float, moderator_id: int, now: float) -> None:
        """Mute ``user_id`` until ``until`` (replaces an earlier mute of theirs)."""
        def work(conn: sa.Connection) -> None:
            conn.execute(race_chat_mutes.delete().where(race_chat_mutes.c.user_id == user_id))
            conn.execute(race_chat_mutes.insert().values(
                user_id=user_id, until_ns=int(until * 1e9), moderator_id=moderator_id,
                created_at_ns=int(now * 1e9)))

        run_transaction(self.engine, work)
        with self._lock:
            self._until[user_id] = until
