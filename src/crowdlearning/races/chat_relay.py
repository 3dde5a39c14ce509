"""Race chat across game servers: what is written (or deleted) on one reaches the others.

Several game servers behind the load balancer each run the same race (same plan, same seed,
``races/service.py``) for their own spectators; without this, each would have its own chat. With
``CROWDLEARNING_JUDGE_URL`` set (the Redis the servers already share, ``judging/remote.py``), a
server publishes each message it accepts and each deletion on the Redis channel
``{prefix}:race-chat``, and delivers the other servers' ones into its own race's ``ChatRoom``
(``inject``: the line then rides its next frame, as a local one). Ids are random (``ChatRoom``),
so they do not collide between servers; the writer's user id travels with the line, so a
moderator on any server can mute them (mutes are in the shared database). The rate limit and
reports stay per server.

Publishing never waits (a task per message; a failure is logged and the line stays on this
server); the subscriber resubscribes after a Redis outage. A message published while a server
is not subscribed (restarting) does not reach it: chat is live, not a log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from crowdlearning.races.spectators import Spectators

__all__ = ["ChatRelay"]

log = logging.getLogger(__name__)
RETRY_S = 1.0  # after Redis failed, subscribe again this much later


class ChatRelay:
    """See the module docstring. ``run`` on the event loop; ``publish`` from it."""

    def __init__(self, redis_url: str, *, prefix: str = "crowdlearning",
                 server_id: str = "") -> None:
        import redis.asyncio

        self._redis: Any = redis.asyncio.Redis.from_url(redis_url)
        self.channel = f"{prefix}:race-chat"
        self.server_id = server_id or uuid.uuid4().hex
        self.subscribed = asyncio.Event()
        self._sending: set[asyncio.Task] = set()

    def publish(self, race_id: str, kind: str, **fields: Any) -> None:
        """Tell the other servers: ``kind`` ``"line"`` (``line``, ``author``) or ``"removed"``
        (``id``). Does not wait."""
        payload = json.dumps({"server": self.server_id, "race": race_id, "kind": kind,
                              **fields}, separators=(",", ":"), ensure_ascii=False)
        task = asyncio.get_running_loop().create_task(self._publish(payload))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, payload: str) -> None:
        try:
            await self._redis.publish(self.channel, payload)
        except Exception as exc:  # Redis away: the line stays on this server
            log.warning("race chat not relayed to the other servers: %r", exc)

    async def run(self, channel_of: Callable[[str], Spectators | None]) -> None:
        """Deliver the other servers' chat to this server's races (``channel_of(race_id)``)
        until cancelled."""
        try:
            while True:
                pubsub = self._redis.pubsub()
                try:
                    await pubsub.subscribe(self.channel)
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.deliver(message["data"], channel_of)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("race chat relay: %r; subscribing again in %.0f s", exc,
                                RETRY_S)
                    self.subscribed.clear()
                    await asyncio.sleep(RETRY_S)
                finally:
                    await pubsub.aclose()
        finally:
            for task in list(self._sending):
                task.cancel()
            await self._redis.aclose()

    def deliver(self, raw: bytes | str,
                channel_of: Callable[[str], Spectators | None]) -> None:
        """One relayed message into this server's race (nothing if it is this server's own,
        malformed, or for a race not watched here)."""
        try:
            data = json.loads(raw)
        except ValueError:
            return
        if not isinstance(data, dict) or data.get("server") == self.server_id:
            return
        channel = channel_of(str(data.get("race")))
        room = channel.chat if channel is not None else None
        if channel is None or room is None or channel.closed:
            return
        message_id = data.get("id")
        if data.get("kind") == "line" and isinstance(data.get("line"), dict) \
                and isinstance(data.get("author"), int):
            if room.inject(data["line"], data["author"]):
                channel.chat_posted()
        elif data.get("kind") == "removed" and isinstance(message_id, int):
            room.drop(message_id)
            channel.event({"type": "chat_removed", "id": message_id})
