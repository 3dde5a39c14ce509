"""The play tracks: those players drive, and the screen's catalogue of them by digest.

``play_tracks`` is used by the game server too (its play tracks at start and after a promotion
that unlocked a family); it is here, beside the judge's catalogue, until it moves below both
(next to ``evaluation.curriculum.play_seeds``).
"""

from __future__ import annotations

from collections.abc import Sequence

from crowdlearning.evaluation.curriculum import play_seeds
from crowdlearning.evaluation.suite import family_names, is_play_seed
from crowdlearning.sim.families import FAMILY_NAMES, family_track
from crowdlearning.sim.track import Track

__all__ = ["TrackCatalog", "play_tracks"]


def play_tracks(count: int, families: Sequence[str] = ("easy",)) -> dict[int, Track]:
    """The tracks players drive: ``count`` per family in ``families`` (the unlocked ones,
    ``evaluation.curriculum.unlocked_families``), keyed by play seed (never a hidden seed):
    ``easy`` has play seeds ``0..count-1`` as always, a harder family the seeds
    ``curriculum.play_seeds`` gives it (its rank x 1e8 + i)."""
    tracks = {}
    for family in family_names(families):
        for seed in play_seeds(family, count):
            if is_play_seed(seed):
                tracks[seed] = family_track(family, seed)
    return tracks


class TrackCatalog:
    """The play tracks the screen knows, by digest: those of the families unlocked at start;
    a run on a family unlocked since (the game server adds its tracks at the promotion) makes
    it generate every family's play tracks once (about 2.6 s, paid only then)."""

    def __init__(self, count: int, families: Sequence[str]) -> None:
        self._count, self._complete = count, False
        self._tracks = {t.digest: t for t in play_tracks(count, families).values()}

    def __getitem__(self, digest: str) -> Track:
        if digest not in self._tracks and not self._complete:
            self._tracks.update({t.digest: t for t in
                                 play_tracks(self._count, FAMILY_NAMES).values()})
            self._complete = True
        return self._tracks[digest]
