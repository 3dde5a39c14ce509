"""What spectators see: one snapshot per watch tick for all of them, from every game server.

Before this, every spectator socket built and encoded its own snapshot ten times a second: about
a millisecond of the game server's one core each time, so a few hundred spectators took the CPU
the players' ticks need (``docs/benchmarks.md``, "Spectators"). ``WatchFeed`` builds the snapshot
once per watch tick, encodes it once, and every spectator sends the same text; a spectator that
falls behind skips to the newest snapshot (it never queues old ones).

With several game servers (``CROWDLEARNING_JUDGE_URL`` set, see ``judging/remote.py``) each server
also publishes its own runs to Redis (``{prefix}:watch:<server>``, expiring after 3 s) and
merges what the others published, so a spectator on any server sees every live run, each marked
with the server it is played on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

from crowdlearning.server.game_loop import GameLoop

__all__ = ["WatchFeed"]

log = logging.getLogger(__name__)
PEER_TTL_S = 3.0


class WatchFeed:
    """See the module docstring; run ``run_forever`` on the event loop."""

    def __init__(self, game: GameLoop, *, hz: float, max_runs: int, redis_url: str = "",
                 server_id: str = "", prefix: str = "crowdlearning") -> None:
        self.game, self.period, self.max_runs = game, 1.0 / hz, max_runs
        self.server_id = server_id or socket.gethostname()
        self._prefix = prefix
        self._redis: Any = None
        if redis_url:
            import redis.asyncio

            self._redis = redis.asyncio.Redis.from_url(redis_url)
        self.snapshot: dict = {}
        self.text = ""
        self.version = 0
        self._changed = asyncio.Event()

    async def run_forever(self) -> None:
        """Refresh the snapshot every watch tick until cancelled."""
        try:
            while True:
                try:
                    await self.refresh()
                except Exception:  # a spectator feed must never stop the server
                    log.exception("watch snapshot failed")
                await asyncio.sleep(self.period)
        finally:
            if self._redis is not None:
                await self._redis.aclose()

    async def refresh(self) -> None:
        own = self.game.snapshot(self.max_runs)
        for car in own["runs"]:
            car["server"] = self.server_id
        snap = own
        if self._redis is not None:
            try:
                snap = await self._merge(own)
            except Exception as exc:  # Redis away: this server's own runs, still live
                log.warning("spectator feed without the other servers: %s", exc)
        self.snapshot = snap
        self.text = json.dumps(snap, separators=(",", ":"))
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _merge(self, own: dict) -> dict:
        key = f"{self._prefix}:watch:{self.server_id}"
        shards = f"{self._prefix}:watch:servers"
        now = time.time()
        pipe = self._redis.pipeline()
        pipe.set(key, json.dumps({"players": own["players"], "runs": own["runs"]}),
                 px=int(PEER_TTL_S * 1000))
        pipe.zadd(shards, {self.server_id: now})
        pipe.zremrangebyscore(shards, 0, now - PEER_TTL_S)
        pipe.zrange(shards, 0, -1)
        *_, servers = await pipe.execute()
        others = [s.decode() for s in servers if s.decode() != self.server_id]
        merged = dict(own, runs=list(own["runs"]))
        if others:
            for raw in await self._redis.mget([f"{self._prefix}:watch:{s}" for s in others]):
                if raw is None:
                    continue
                peer = json.loads(raw)
                merged["players"] += int(peer["players"])
                merged["runs"].extend(peer["runs"])
        merged["runs"] = merged["runs"][: self.max_runs]
        merged["servers"] = 1 + len(others)
        return merged

    async def next(self, after: int) -> tuple[int, str]:
        """The newest snapshot after version ``after`` (waits for the next one if needed)."""
        while self.version <= after or not self.text:
            await self._changed.wait()
        return self.version, self.text
