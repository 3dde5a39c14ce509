"""The screen's catalogue of the play tracks by digest (the tracks themselves:
``evaluation.curriculum.play_tracks``)."""

from __future__ import annotations

from collections.abc import Sequence

from crowdlearning.evaluation.curriculum import play_tracks
from crowdlearning.sim.families import FAMILY_NAMES
from crowdlearning.sim.track import Track

__all__ = ["TrackCatalog"]


class TrackCatalog:
    """The play tracks the screen knows, by digest: those of the families unlocked at start
    (``frontier`` of the frontier's, as the game serves them); a run on a family unlocked since
    (the game server adds its tracks at the promotion) makes it generate every family's play
    tracks once, as many of each as of a frontier (about 13 s for the seven families at 32,
    paid only then)."""

    def __init__(self, count: int, families: Sequence[str], frontier: int = 0) -> None:
        self._count, self._frontier, self._complete = count, frontier, False
        self._tracks = {t.digest: t for t in play_tracks(count, families, frontier).values()}

    def __getitem__(self, digest: str) -> Track:
        if digest not in self._tracks and not self._complete:
            # every family as a frontier (each was one once, or is): a superset of the served
            self._tracks.update({t.digest: t for t in play_tracks(
                max(self._count, self._frontier), FAMILY_NAMES).values()})
            self._complete = True
        return self._tracks[digest]
