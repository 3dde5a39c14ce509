"""Screening before judging: refuse data that is forged, repeated, or submitted too often.

Checks, cheapest first:

1. **rate limit**: at most ``max_per_window`` submissions per contributor per ``window_s``;
2. **exact duplicate**: the same per-tick data (``Contribution.digest``) was seen before;
3. **replay**: the recorded states and observations must re-simulate bit for bit from the
   recorded start and executed actions on the named track (the server's own action log), so a
   client cannot invent states;
4. **near duplicate**: the contribution's labelled (state, label) pairs, quantized, overlap an
   already accepted contribution's by ``near_duplicate_overlap`` or more (replaying the same
   states with the same answers).

Only ``accept`` records a contribution as seen (after its verdict), so a rejected submission
leaves nothing behind. The clock is passed in (tests use a fake one).
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from crowdlearning.config import Settings
from crowdlearning.errors import ReplayMismatchError, SimulationError
from crowdlearning.learning.contribution import Contribution
from crowdlearning.sim.replay import simulate
from crowdlearning.sim.track import Track

__all__ = ["ScreenConfig", "Screener", "screen_config"]


@dataclass(frozen=True)
class ScreenConfig:
    max_per_window: int = 30  # submissions per contributor per window
    window_s: float = 3600.0
    near_duplicate_overlap: float = 0.9  # share of labelled pairs already seen
    quantum: float = 0.05  # quantization of observations and labels for fingerprints
    max_episode_steps: int = 20 * 60 * 30


def screen_config(settings: Settings) -> ScreenConfig:
    """The screening limits from the platform settings."""
    return ScreenConfig(max_per_window=settings.screen_max_per_hour, window_s=3600.0,
                        near_duplicate_overlap=settings.screen_near_duplicate_overlap)


class Screener:
    """Stateful screen for one platform (see the module docstring)."""

    def __init__(self, tracks: Callable[[str], Track], *, config: ScreenConfig | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tracks, self.config, self.clock = tracks, config or ScreenConfig(), clock
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._digests: set[str] = set()
        self._fingerprints: set[int] = set()

    def check(self, c: Contribution) -> str:
        """The reason to reject ``c``, or "" if it may be judged."""
        return (self._rate_limited(c) or self._duplicate(c) or self._replay(c)
                or self._near_duplicate(c))

    def accept(self, c: Contribution) -> tuple[set[int], set[int]]:
        """Remember a judged contribution; returns its fingerprints and those of them that were
        new (persist the first with its digest, see ``remember``; give the second to ``forget``
        to take the acceptance back)."""
        prints = self._fingerprint(c)
        added = prints - self._fingerprints
        self._digests.add(c.digest)
        self._fingerprints.update(added)
        return prints, added

    def forget(self, digest: str, added: set[int], keep: set[int] = frozenset()) -> None:
        """Take back an ``accept`` whose verdict was never booked (``added``: what it added),
        so that the contribution can be judged when it comes again; ``keep``: fingerprints
        that other accepted contributions still hold."""
        self._digests.discard(digest)
        self._fingerprints.difference_update(added - keep)

    def remember(self, digest: str, fingerprints: set[int]) -> None:
        """Restore what ``accept`` learnt about a contribution (after a restart)."""
        self._digests.add(digest)
        self._fingerprints.update(fingerprints)

    def _rate_limited(self, c: Contribution) -> str:
        now, window = self.clock(), self._recent[c.contributor_id]
        while window and now - window[0] > self.config.window_s:
            window.popleft()
        if len(window) >= self.config.max_per_window:
            return (f"rate limit: {self.config.max_per_window} submissions per "
                    f"{self.config.window_s:.0f} s")
        window.append(now)
        return ""

    def _duplicate(self, c: Contribution) -> str:
        return "duplicate: the same data was already submitted" if c.digest in self._digests else ""

    def _replay(self, c: Contribution) -> str:
        try:
            track = self.tracks(c.start.track_digest)
        except (KeyError, LookupError):
            return f"unknown track {c.start.track_digest[:12]}"
        try:
            replay = simulate(track, c.start, c.executed, observe=True,
                              max_steps=self.config.max_episode_steps)
        except (ReplayMismatchError, SimulationError) as exc:
            return f"replay failed: {exc}"
        states_ok = np.array_equal(replay.poses[:-1], c.states)
        obs_ok = replay.observations is not None and np.array_equal(
            replay.observations, c.observations)
        if not (states_ok and obs_ok):
            return "replay mismatch: the states do not follow from the executed actions"
        return ""

    def _fingerprint(self, c: Contribution) -> set[int]:
        rows = np.flatnonzero(c.label_ticks)
        q = self.config.quantum
        obs = np.round(c.observations[rows] / q).astype(np.int32)
        lab = np.round(np.nan_to_num(c.player[rows], nan=9.0) / q).astype(np.int32)
        keys = np.ascontiguousarray(np.concatenate([obs, lab], axis=1))
        return {int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "big")
                for row in keys}

    def _near_duplicate(self, c: Contribution) -> str:
        prints = self._fingerprint(c)
        if not prints or not self._fingerprints:
            return ""
        overlap = len(prints & self._fingerprints) / len(prints)
        if overlap >= self.config.near_duplicate_overlap:
            return f"near duplicate: {overlap:.0%} of its labelled states were already submitted"
        return ""
