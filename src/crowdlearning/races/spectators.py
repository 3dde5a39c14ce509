"""The spectators of one race: a bounded send queue each, frames encoded once for all.

Each spectator has an ``Outbox`` (``server/game_loop.py``): frames beyond ``queue`` waiting are
dropped oldest first (a frame holds the whole race, so a slow spectator just skips ahead),
events (hello, result) are never dropped, and a spectator letting 64 of them pile up is cut off.
The race loop only appends to queues: it never waits for a socket.

The fast path (``docs/benchmarks.md``, "Race spectators"): a frame is JSON-encoded and framed as
a WebSocket text message once (``ws_text_frame``), and those bytes are written straight to each
spectator's transport by ``SpectatorBox.wire`` (set by the socket, ``server/play_socket.py``
``wire_writer``) when nothing is queued or being sent before it and the transport takes it
without waiting; otherwise the frame goes to the queue as above (so a slow spectator still skips
ahead, never holds the race). That spares the socket's sending task a wake-up and Starlette's and
uvicorn's per-message path per frame per spectator. A frame is handed out ``WRITE_BATCH``
spectators per turn of the event loop, so that the game loop's tick waits for one batch at most,
not for thousands of writes.

Reactions: signed-in spectators may send one of ``REACTIONS``, at most ``per_min`` a minute each
(``server/throttle.Throttle``, per user); they are counted and the counts since the last frame go
out with the next frame (``"reactions": {"🔥": 3}``), so a crowd reacting costs one small field
per frame, never a message per reaction per spectator.

Chat (``races/chat.py``): the race's ``ChatRoom`` holds the new messages until the next frame,
which carries them (``"chat": [{"id", "name", "text", "at"}, ...]``, at most
``races_chat_lines_per_frame``): still one frame encoded once for all. While no frames flow (a
race scheduled or on the grid), ``chat_posted`` schedules a ``{"type": "chat", "chat": [...]}``
message ``CHAT_FLUSH_S`` later, carrying everything written meanwhile, handed out like a frame
(framed once, droppable for a slow spectator) but never the ``last_frame`` a joiner is given.
A deletion (``chat_removed``) is an event: rare, and never dropped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable

from crowdlearning.races.chat import ChatRoom
from crowdlearning.server.game_loop import Outbox
from crowdlearning.server.play_socket import ws_text_frame
from crowdlearning.server.throttle import Throttle, TooManyRequestsError

__all__ = ["REACTIONS", "SpectatorBox", "Spectators", "ws_text_frame"]

REACTIONS = ("🔥", "👏", "😮", "😂", "🏁", "💥")
WRITE_BATCH = 250  # spectators a frame is handed to per turn of the event loop
CHAT_FLUSH_S = 0.25  # while no frames flow, chat goes out this long after it was written
FRAMES_IDLE_S = 0.5  # no frame for this long: frames are not flowing


class SpectatorBox(Outbox):
    """A spectator's queue; ``awaiting`` counts the verdicts due to them as a labeller
    (``races/crowd.py``): the socket stays open after the race until they are out."""

    def __init__(self, max_frames: int, max_events: int = 64) -> None:
        super().__init__(max_frames, max_events)
        self.awaiting = 0
        # writes one framed message (``ws_text_frame``) to the socket at once, if it can
        self.wire: Callable[[bytes], bool] | None = None
        self.direct_frames = 0  # frames that went through ``wire``

    def frame(self, text: str, wire: bytes | None = None) -> None:
        """A frame: written at once through ``wire`` (its bytes, ``ws_text_frame(text)``) when
        nothing waits before it and the socket takes it, else queued (``Outbox.frame``)."""
        if (wire is not None and self.wire is not None and not self._items
                and not self.sending and self.wire(wire)):
            self.direct_frames += 1
            return
        super().frame(text)

    def event(self, message: dict | str) -> None:
        if isinstance(message, dict) and self.awaiting and (
                message.get("type") == "verdict" or message.get("code") in (
                    "verdict_failed", "verdict_queue_full")):
            self.awaiting -= 1
        super().event(message)


class Spectators:
    """See the module docstring."""

    def __init__(self, max_spectators: int, queue: int, reactions: Throttle | None,
                 batch: int = WRITE_BATCH, chat: ChatRoom | None = None) -> None:
        self.max_spectators, self.queue, self.batch = max_spectators, queue, batch
        self._boxes: set[SpectatorBox] = set()
        # the rest of a frame being handed out: (text, wire bytes, boxes, next index)
        self._rest: tuple[str, bytes, list[SpectatorBox], int] | None = None
        self._rest_handle: asyncio.Handle | None = None
        self._reactions = reactions
        self.pending: Counter[str] = Counter()
        self.closed = False  # the race is over: the last event is out, sockets may close
        self.last_frame = ""
        self.chat = chat
        self._frame_at = float("-inf")  # time.monotonic() of the last frame
        self._chat_handle: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._boxes)

    def join(self) -> SpectatorBox | None:
        """A new spectator's queue (None when the race has ``max_spectators`` already)."""
        if len(self._boxes) >= self.max_spectators:
            return None
        box = SpectatorBox(self.queue)
        self._boxes.add(box)
        return box

    def leave(self, box: SpectatorBox) -> None:
        self._boxes.discard(box)

    def frame(self, frame: dict) -> None:
        """Send a frame to everyone (with the reactions counted since the last one): ``batch``
        spectators now, the next ``batch`` at the event loop's next turn, and so on, so that
        thousands of writes never hold the game loop's tick for long. The rest of a frame is
        handed out before the next frame or event (nothing overtakes it)."""
        self.flush()
        if self.pending:
            frame = {**frame, "reactions": dict(self.pending)}
            self.pending = Counter()
        if self.chat is not None and self.chat.pending:
            frame = {**frame, "chat": self.chat.take()}
        self._frame_at = time.monotonic()
        frame["spectators"] = len(self._boxes)
        self.last_frame = text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        self._hand_out(text, ws_text_frame(text), list(self._boxes), 0)

    def _hand_out(self, text: str, wire: bytes, boxes: list[SpectatorBox], start: int) -> None:
        end = len(boxes)
        loop = None
        if end - start > self.batch:
            try:
                loop = asyncio.get_running_loop()
                end = start + self.batch
            except RuntimeError:  # no loop (a plain call): everyone at once
                pass
        for box in boxes[start:end]:
            box.frame(text, wire)
        if loop is not None and end < len(boxes):
            self._rest = (text, wire, boxes, end)
            self._rest_handle = loop.call_soon(self._next_batch)
        else:
            self._rest = self._rest_handle = None

    def _next_batch(self) -> None:
        if self._rest is not None:
            self._hand_out(*self._rest)

    def flush(self) -> None:
        """Hand out the rest of the frame being handed out, now."""
        if self._rest is not None:
            text, wire, boxes, start = self._rest
            if self._rest_handle is not None:
                self._rest_handle.cancel()
            self._rest = self._rest_handle = None
            for box in boxes[start:]:
                box.frame(text, wire)

    def event(self, message: dict) -> None:
        self.flush()
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        for box in self._boxes:
            box.event(text)

    def close(self, message: dict) -> None:
        """The last event (the result, or why the race did not run), marked ``"final": true``:
        each socket closes once it has sent it."""
        self.closed = True
        if self._chat_handle is not None:
            self._chat_handle.cancel()
            self._chat_handle = None
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

    def chat_posted(self) -> None:
        """A chat message waits for a frame: if frames are not flowing, it goes out in a
        ``chat`` message within ``CHAT_FLUSH_S`` (with any other written meanwhile)."""
        if self._chat_handle is not None or self.closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a plain call): the next frame or ``flush_chat``
            return
        self._chat_handle = loop.call_later(CHAT_FLUSH_S, self.flush_chat)

    def flush_chat(self) -> None:
        """Send the waiting chat now in a ``chat`` message, unless frames flow (the next one
        carries it)."""
        self._chat_handle = None
        if (self.chat is None or not self.chat.pending or self.closed
                or time.monotonic() - self._frame_at < FRAMES_IDLE_S):
            return
        self.flush()
        message = {"type": "chat", "chat": self.chat.take(), "spectators": len(self._boxes)}
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        self._hand_out(text, ws_text_frame(text), list(self._boxes), 0)
        if self.chat.pending:  # more than a frame's worth: the rest shortly
            self.chat_posted()
