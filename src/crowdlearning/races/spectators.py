"""The spectators of one race: a bounded send queue each, frames encoded once for all.

Each spectator has an ``Outbox`` (``server/game_loop.py``): frames beyond ``queue`` waiting are
dropped oldest first (a frame holds the whole race, so a slow spectator just skips ahead),
events (hello, result) are never dropped, and a spectator letting 64 of them pile up is cut off.
The race loop only appends to queues: it never waits for a socket.

Reactions: signed-in spectators may send one of ``REACTIONS``, at most ``per_min`` a minute each
(``server/throttle.Throttle``, per user); they are counted and the counts since the last frame go
out with the next frame (``"reactions": {"🔥": 3}``), so a crowd reacting costs one small field
per frame, never a message per reaction per spectator.
"""

from __future__ import annotations

import json
from collections import Counter

from crowdlearning.server.game_loop import Outbox
from crowdlearning.server.throttle import Throttle, TooManyRequestsError

__all__ = ["REACTIONS", "SpectatorBox", "Spectators"]

REACTIONS = ("🔥", "👏", "😮", "😂", "🏁", "💥")


class SpectatorBox(Outbox):
    """A spectator's queue; ``awaiting`` counts the verdicts due to them as a labeller
    (``races/crowd.py``): the socket stays open after the race until they are out."""

    def __init__(self, max_frames: int, max_events: int = 64) -> None:
        super().__init__(max_frames, max_events)
        self.awaiting = 0

    def event(self, message: dict | str) -> None:
        if isinstance(message, dict) and self.awaiting and (
                message.get("type") == "verdict" or message.get("code") in (
                    "verdict_failed", "verdict_queue_full")):
            self.awaiting -= 1
        super().event(message)


class Spectators:
    """See the module docstring."""

    def __init__(self, max_spectators: int, queue: int, reactions: Throttle | None) -> None:
        self.max_spectators, self.queue = max_spectators, queue
        self._boxes: set[Outbox] = set()
        self._reactions = reactions
        self.pending: Counter[str] = Counter()
        self.closed = False  # the race is over: the last event is out, sockets may close
        self.last_frame = ""

    def __len__(self) -> int:
        return len(self._boxes)

    def join(self) -> SpectatorBox | None:
        """A new spectator's queue (None when the race has ``max_spectators`` already)."""
        if len(self._boxes) >= self.max_spectators:
            return None
        box = SpectatorBox(self.queue)
        self._boxes.add(box)
        return box

    def leave(self, box: Outbox) -> None:
        self._boxes.discard(box)

    def frame(self, frame: dict) -> None:
        """Send a frame to everyone (with the reactions counted since the last one)."""
        if self.pending:
            frame = {**frame, "reactions": dict(self.pending)}
            self.pending = Counter()
        frame["spectators"] = len(self._boxes)
        self.last_frame = text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        for box in self._boxes:
            box.frame(text)

    def event(self, message: dict) -> None:
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        for box in self._boxes:
            box.event(text)

    def close(self, message: dict) -> None:
        """The last event (the result, or why the race did not run), marked ``"final": true``:
        each socket closes once it has sent it."""
        self.closed = True
        self.event({**message, "final": True})

    def react(self, user_id: int, emoji: str) -> str | None:
        """Count a reaction; the refusal's code if it is not counted."""
        if self._reactions is None:
            return "reactions_off"
        if emoji not in REACTIONS:
            return "bad_message"
        try:
            self._reactions.acquire(user_id, "reactions")
        except TooManyRequestsError:
            return "rate_limited"
        self.pending[emoji] += 1
        return None
