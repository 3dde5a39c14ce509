"""The timetable: a race every ``interval_s`` seconds, aligned to the epoch (UTC).

Race ``k`` starts at ``k * interval_s`` (Unix time); its id is ``r<start, integer seconds>`` and
its seed is derived from the id and ``races_seed``, so every game server computes the same
timetable, the same seeds and the same tracks. A race's track is drawn from its seed within the
track families unlocked at the time it is planned (``evaluation/curriculum.py``): the family,
then a play seed of that family (``rank x 1e8 + i``, as ``curriculum.play_seeds`` numbers play
tracks), so a race never runs on a hidden evaluation track.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crowdlearning.evaluation.curriculum import FAMILY_PLAY_SEED_STRIDE
from crowdlearning.sim.families import family_track, get_family
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_gen import named_track

__all__ = ["RaceSlot", "Timetable", "TrackChoice", "choose_track", "race_seed"]


@dataclass(frozen=True)
class RaceSlot:
    """One scheduled race: its id, start (Unix seconds) and seed."""

    race_id: str
    starts_at: float
    seed: int


def race_seed(base_seed: int, race_id: str) -> int:
    """The race's seed: 62 bits of SHA-256 over the base seed and the race id."""
    digest = hashlib.sha256(f"crowdlearning-race:{base_seed}:{race_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


class Timetable:
    """The scheduled races (see the module docstring)."""

    def __init__(self, interval_s: float, base_seed: int = 0) -> None:
        if not interval_s >= 1:
            raise ValueError(f"interval_s must be >= 1 s, got {interval_s}")
        self.interval_s, self.base_seed = float(interval_s), int(base_seed)

    def slot(self, k: int) -> RaceSlot:
        """Race number ``k`` (the one starting at ``k * interval_s``)."""
        starts_at = k * self.interval_s
        race_id = f"r{math.floor(starts_at)}"
        return RaceSlot(race_id, starts_at, race_seed(self.base_seed, race_id))

    def upcoming(self, now: float, count: int) -> list[RaceSlot]:
        """The next ``count`` races starting after ``now``, soonest first."""
        first = math.floor(now / self.interval_s) + 1
        return [self.slot(k) for k in range(first, first + count)]

    def latest(self, now: float) -> RaceSlot:
        """The race that started last at or before ``now``."""
        return self.slot(math.floor(now / self.interval_s))

    def slot_of(self, race_id: str) -> RaceSlot | None:
        """The slot named ``race_id`` (``r<seconds>``), or None if no race has that id."""
        if not (race_id.startswith("r") and race_id[1:].isdigit() and len(race_id) <= 16):
            return None
        k = round(int(race_id[1:]) / self.interval_s)
        slot = self.slot(k)
        return slot if slot.race_id == race_id else None


@dataclass(frozen=True)
class TrackChoice:
    """Where a race runs: a family's play track (``family_track(family, track_seed)``) or a
    named track (``family`` "named", ``track_seed`` 0)."""

    family: str
    track_seed: int
    name: str

    def track(self) -> Track:
        if self.family == "named":
            return named_track(self.name)
        return family_track(self.family, self.track_seed)


def choose_track(seed: int, families: Sequence[str], named: str = "",
                 play_tracks: int = 0) -> TrackChoice:
    """The race's track, drawn from its seed within ``families`` (or the ``named`` track).

    ``play_tracks`` > 0: one of the family's first ``play_tracks`` play seeds, the tracks players
    drive and the judge's screen knows (``judging.tracks``), so labels given during the race can
    be judged; 0: any play seed of the family."""
    if named:
        return TrackChoice("named", 0, named)
    if not families:
        raise ValueError("no unlocked track family to race on")
    rng = np.random.default_rng([seed, 0x7ACE])
    family = families[int(rng.integers(len(families)))]
    track_seed = (get_family(family).rank * FAMILY_PLAY_SEED_STRIDE
                  + int(rng.integers(play_tracks or FAMILY_PLAY_SEED_STRIDE)))
    name = f"gen-{track_seed}" if family == "easy" else f"{family}-{track_seed}"
    return TrackChoice(family, track_seed, name)
