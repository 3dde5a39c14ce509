"""Race chat: signed-in spectators write, everyone watching the race reads.

- ``Chat`` (one per game server, ``RaceService.chat``): the rules from ``Settings``
  (``races_chat_*``, ``races_moderators``), the per-user rate (``server/throttle.Throttle``, as
  reactions), the blocked words and the mutes; ``room()`` makes the chat of one race.
- ``ChatRoom`` (one per race, held by its ``Spectators``): the recent messages (at most
  ``races_chat_history``, sent to a spectator who joins), the new ones waiting for the next
  frame (``take``: at most ``races_chat_lines_per_frame`` per frame, so a crowd chatting costs
  one field per frame, never a message per chat line per spectator), deletions and reports.
- ``chat_mutes.py``: who a moderator muted, in the ledger's database the game servers share.
- ``chat_relay.py``: the chat of a race shared by the game servers (``ChatRoom.inject``).

A message is refused (the ``error`` code in brackets) when it is empty after trimming (``empty``),
longer than ``races_chat_max_chars`` (``too_long``), holds control characters or bidi overrides
(``bad_characters``), holds a blocked word (``blocked_word``: whole words, case-insensitive, after
NFKC normalization), comes too fast (``rate_limited``) or from a muted user (``muted``, with
``until``). Logs name message ids and user ids, never the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from crowdlearning.config import Settings
from crowdlearning.races.chat_mutes import MemoryMutes, Mutes, MuteStore
from crowdlearning.server.throttle import Throttle, TooManyRequestsError

__all__ = ["Chat", "ChatRefusal", "ChatRoom", "MemoryMutes", "MuteStore", "Mutes",
           "blocked_pattern", "clean_text", "parse_ids"]

log = logging.getLogger(__name__)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


@dataclass(frozen=True)
class ChatRefusal:
    """Why a chat request was refused: the ``error`` code, words for the user, and for
    ``muted`` the end of the mute (Unix s)."""

    code: str
    message: str
    until: float | None = None

    def to_message(self) -> dict:
        out: dict = {"type": "error", "code": self.code, "message": self.message,
                     "about": "chat"}
        if self.until is not None:
            out["until"] = self.until
        return out


def clean_text(text: object, max_chars: int) -> str | ChatRefusal:
    """The message trimmed, or why it is refused (empty, too long, control characters)."""
    if not isinstance(text, str):
        return ChatRefusal("bad_message", 'send {"type": "chat", "text": "..."}')
    text = text.strip()
    if not text:
        return ChatRefusal("empty", "write something first")
    if len(text) > max_chars:
        return ChatRefusal("too_long", f"at most {max_chars} characters")
    for ch in text:
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs"):
            return ChatRefusal("bad_characters",
                               "control characters (line breaks, tabs, ...) are not allowed")
    return text


def blocked_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any of ``words`` as a whole word (None: none)."""
    cleaned = sorted({unicodedata.normalize("NFKC", w).strip().casefold() for w in words} - {""},
                     key=len, reverse=True)
    if not cleaned:
        return None
    alternatives = "|".join(re.escape(w) for w in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def parse_ids(text: str) -> frozenset[int]:
    """User ids from a comma-separated setting (``races_moderators``)."""
    out = set()
    for part in text.split(","):
        part = part.strip()
        if part:
            if not part.isdigit():
                raise ValueError(f"races_moderators: {part!r} is not a user id (comma-separated "
                                 "numbers)")
            out.add(int(part))
    return frozenset(out)


class Chat:
    """The chat rules of a game server (see the module docstring)."""

    def __init__(self, settings: Settings, mutes: Mutes | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_chars = settings.races_chat_max_chars
        self.per_min = settings.races_chat_per_min
        self.history = settings.races_chat_history
        self.per_frame = settings.races_chat_lines_per_frame
        self.max_mute_s = settings.races_chat_max_mute_s
        self.moderators = parse_ids(settings.races_moderators)
        self.blocked = blocked_pattern(settings.races_chat_blocked_words.split(","))
        self.mutes: Mutes = mutes or MemoryMutes()
        self.clock = clock
        self.throttle = Throttle(self.per_min, 60.0) if self.per_min else None
        self._refreshing: asyncio.Future[None] | None = None

    async def fresh_mutes(self) -> None:
        """Read the mutes again if they are older than ``MUTES_REFRESH_S`` (in a thread, one
        read at a time however many sockets ask; a failed read is logged and the mutes known
        so far hold)."""
        now = self.clock()
        if not self.mutes.stale(now):
            return
        future = self._refreshing
        if future is None:
            future = asyncio.ensure_future(asyncio.to_thread(self.mutes.refresh, now))
            self._refreshing = future
            future.add_done_callback(self._refreshed)
        with contextlib.suppress(Exception):  # the database away: the mutes read before hold
            await asyncio.shield(future)

    def _refreshed(self, future: asyncio.Future[None]) -> None:
        self._refreshing = None
        if not future.cancelled() and future.exception() is not None:
            log.warning("race chat: reading the mutes failed: %r", future.exception())

    @property
    def enabled(self) -> bool:
        return self.throttle is not None

    def is_moderator(self, user_id: int) -> bool:
        return user_id in self.moderators

    def room(self, race_id: str) -> ChatRoom:
        return ChatRoom(self, race_id)

    def check(self, user_id: int, text: object) -> str | ChatRefusal:
        """The text to publish, or why not (muted, cleaned text, blocked words, then the
        rate: a refused message does not count against it)."""
        if self.throttle is None:
            return ChatRefusal("chat_off", "chat is off on this server")
        now = self.clock()
        until = self.mutes.until(user_id, now)
        if until is not None:
            return ChatRefusal("muted", f"a moderator muted you until {_utc(until)}",
                               until=round(until, 3))
        cleaned = clean_text(text, self.max_chars)
        if isinstance(cleaned, ChatRefusal):
            return cleaned
        if self.blocked is not None and self.blocked.search(
                unicodedata.normalize("NFKC", cleaned)):
            return ChatRefusal("blocked_word", "that message holds a word this chat does not "
                               "allow")
        try:
            self.throttle.acquire(user_id, "chat messages")
        except TooManyRequestsError as exc:
            return ChatRefusal("rate_limited", str(exc))
        return cleaned


class ChatRoom:
    """The chat of one race (see the module docstring). Not thread-safe: the event loop's."""

    def __init__(self, chat: Chat, race_id: str) -> None:
        self.chat, self.race_id = chat, race_id
        self._history: deque[dict] = deque(maxlen=chat.history or None)
        self._pending: deque[dict] = deque()
        self._authors: OrderedDict[int, int] = OrderedDict()  # message id -> user id
        self._reporters: dict[int, set[int]] = {}
        self.dropped = 0  # messages that never went out in a frame (too many waiting)

    def post(self, user_id: int, name: str, text: object) -> dict | ChatRefusal:
        """Publish a message (in the next frame): the message, or why it is refused."""
        checked = self.chat.check(user_id, text)
        if isinstance(checked, ChatRefusal):
            return checked
        line: dict = {"id": self._new_id(), "name": name, "text": checked,
                      "at": round(self.chat.clock(), 3)}
        if self.chat.is_moderator(user_id):
            line["mod"] = True
        self._add(line, user_id)
        return line

    def inject(self, line: dict, user_id: int) -> bool:
        """A message written on another game server (``chat_relay.py``): published here too
        (False: already here, or not a message)."""
        if (not _is_id(line.get("id")) or line["id"] in self._authors
                or not isinstance(line.get("name"), str) or not isinstance(line.get("text"), str)
                or not isinstance(line.get("at"), int | float)):
            return False
        self._add({k: line[k] for k in ("id", "name", "text", "at", "mod") if k in line},
                  user_id)
        return True

    def _new_id(self) -> int:
        """A random id (unique across the game servers relaying the race's chat; exact in
        JavaScript's numbers)."""
        while True:
            message_id = secrets.randbits(53)
            if message_id and message_id not in self._authors:
                return message_id

    def _add(self, line: dict, user_id: int) -> None:
        self._authors[line["id"]] = user_id
        while len(self._authors) > 4 * max(self.chat.history, 50):
            old, _ = self._authors.popitem(last=False)
            self._reporters.pop(old, None)
        if self.chat.history:
            self._history.append(line)
        self._pending.append(line)
        while len(self._pending) > max(self.chat.history, self.chat.per_frame):
            self._pending.popleft()
            self.dropped += 1

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[dict]:
        """The new messages for the next frame (at most ``races_chat_lines_per_frame``)."""
        n = min(len(self._pending), self.chat.per_frame)
        return [self._pending.popleft() for _ in range(n)]

    def history(self) -> list[dict]:
        """The recent messages (oldest first), for a spectator who joins."""
        return list(self._history)

    def author(self, message_id: int) -> int | None:
        return self._authors.get(message_id)

    def remove(self, moderator_id: int, message_id: object) -> ChatRefusal | None:
        """A moderator deletes a message (from the history and from what waits for a frame);
        the caller tells everyone (``chat_removed``)."""
        refused = self._moderated(moderator_id, message_id)
        if refused is not None:
            return refused
        assert isinstance(message_id, int)
        self.drop(message_id)
        log.info("race chat %s: moderator %d removed message %d of user %d", self.race_id,
                 moderator_id, message_id, self._authors[message_id])
        return None

    def drop(self, message_id: int) -> None:
        """Take a message out of the history and of what waits for a frame (no questions:
        ``remove`` checks the moderator; a relayed deletion was checked where it was made)."""
        self._history = deque((m for m in self._history if m["id"] != message_id),
                              maxlen=self._history.maxlen)
        self._pending = deque(m for m in self._pending if m["id"] != message_id)

    def mute_target(self, moderator_id: int, message_id: object,
                    seconds: object) -> tuple[int, float] | ChatRefusal:
        """Who a moderator mutes (the writer of ``message_id``) and until when; the caller
        stores it (``Chat.mutes.mute``, off the event loop)."""
        refused = self._moderated(moderator_id, message_id)
        if refused is not None:
            return refused
        if (not isinstance(seconds, int | float) or isinstance(seconds, bool)
                or not 1 <= seconds <= self.chat.max_mute_s):
            return ChatRefusal("bad_message",
                               f"seconds must be 1..{self.chat.max_mute_s}")
        assert isinstance(message_id, int)
        user_id = self._authors[message_id]
        until = self.chat.clock() + float(seconds)
        log.info("race chat %s: moderator %d muted user %d (message %d) for %d s",
                 self.race_id, moderator_id, user_id, message_id, int(seconds))
        return user_id, until

    def report(self, reporter_id: int, message_id: object) -> int | ChatRefusal:
        """A spectator reports a message: how many have reported it (once per reporter)."""
        if not _is_id(message_id) or message_id not in self._authors:
            return ChatRefusal("unknown_message", "no such message in this race's chat")
        assert isinstance(message_id, int)
        reporters = self._reporters.setdefault(message_id, set())
        if reporter_id in reporters:
            return ChatRefusal("already_reported", "you reported that message already")
        reporters.add(reporter_id)
        log.warning("race chat %s: user %d reported message %d of user %d (%d reports)",
                    self.race_id, reporter_id, message_id, self._authors[message_id],
                    len(reporters))
        return len(reporters)

    def reports(self, message_id: int) -> int:
        return len(self._reporters.get(message_id, ()))

    def _moderated(self, moderator_id: int, message_id: object) -> ChatRefusal | None:
        if not self.chat.is_moderator(moderator_id):
            return ChatRefusal("not_moderator", "only the chat's moderators may do that")
        if not _is_id(message_id) or message_id not in self._authors:
            return ChatRefusal("unknown_message", "no such message in this race's chat")
        return None


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
