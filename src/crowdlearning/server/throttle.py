"""Limits on how often a client may try to sign up or sign in (this process's memory).

Passwords are hashed with Argon2id, deliberately slow (tens of ms of CPU): without a limit, a
password-guessing client both guesses freely and takes CPU from the game. Two limits:

- per client address, every sign-up and sign-in attempt (``server_auth_per_ip_per_min``);
- per (name, address), failed sign-ins (``server_login_failures``, per 15 minutes); a success
  clears it. Keyed by the pair, so a stranger cannot lock a player out of their own account.

Beyond a limit the answer is 429 ``too_many_requests`` with ``Retry-After``. Several game servers
each count their own. The address is the connection's peer: ``X-Forwarded-For`` is believed only
from the proxies named in ``server_trusted_proxies`` (none by default), so a client cannot pick a
new address per attempt; behind a load balancer, name it there, or every client counts as the
balancer.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

from crowdlearning.errors import CrowdLearningError

__all__ = ["Throttle", "TooManyRequestsError"]


class TooManyRequestsError(CrowdLearningError):
    """Too many attempts; ``retry_after_s`` says when to try again."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Throttle:
    """At most ``limit`` events per key in any ``window_s`` (sliding window). Thread-safe; keeps
    at most ``max_keys`` keys (the least recently seen are forgotten first)."""

    def __init__(self, limit: int, window_s: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"limit {limit} and window {window_s} s must be positive")
        self.limit, self.window_s, self.max_keys, self.clock = limit, window_s, max_keys, clock
        self._events: OrderedDict[Hashable, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, key: Hashable) -> float:
        """Seconds until ``key`` may act again (0: now)."""
        with self._lock:
            return self._wait(self._recent(key))

    def hit(self, key: Hashable) -> None:
        """Count one event of ``key``."""
        with self._lock:
            self._record(key, self._recent(key))

    def reset(self, key: Hashable) -> None:
        with self._lock:
            self._events.pop(key, None)

    def check(self, key: Hashable, what: str) -> None:
        """Raise ``TooManyRequestsError`` if ``key`` is over its limit."""
        _raise_if_waiting(self.wait_s(key), what)

    def acquire(self, key: Hashable, what: str) -> None:
        """Count one event of ``key``, or raise ``TooManyRequestsError`` without counting it:
        one step, so that concurrent requests cannot all pass before any is counted."""
        with self._lock:
            events = self._recent(key)
            _raise_if_waiting(self._wait(events), what)
            self._record(key, events)

    def _wait(self, events: deque[float] | None) -> float:
        if events is None or len(events) < self.limit:
            return 0.0
        return max(0.0, events[0] + self.window_s - self.clock())

    def _record(self, key: Hashable, events: deque[float] | None) -> None:
        if events is None:
            events = self._events[key] = deque()
        events.append(self.clock())
        self._events.move_to_end(key)
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)

    def _recent(self, key: Hashable) -> deque[float] | None:
        events = self._events.get(key)
        if events is not None:
            horizon = self.clock() - self.window_s
            while events and events[0] <= horizon:
                events.popleft()
        return events


def _raise_if_waiting(wait: float, what: str) -> None:
    if wait > 0:
        raise TooManyRequestsError(
            f"too many {what}; try again in {math.ceil(wait)} s", retry_after_s=wait)
