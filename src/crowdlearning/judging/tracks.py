"""The screen's catalogue of the play tracks by digest (the tracks themselves:
``evaluation.curriculum.play_tracks``)."""

from __future__ import annotations

from collections.abc import Sequence

from crowdlearning.evaluation.curriculum import play_tracks
from crowdlearning.sim.families import FAMILY_NAMES
from crowdlearning.sim.track import Track

__all__ = ["TrackCatalog"]


class TrackCatalog:
    """The play tracks the screen knows, by digest: those of the families unlocked at start;
    a run on a family unlocked since (the game server adds its tracks at the promotion) makes
    it generate every family's play tracks once (about 3 s for the seven families, paid only
    then)."""

    def __init__(self, count: int, families: Sequence[str]) -> None:
        self._count, self._complete = count, False
        self._tracks = {t.digest: t for t in play_tracks(count, families).values()}

    def __getitem__(self, digest: str) -> Track:
        if digest not in self._tracks and not self._complete:
            self._tracks.update({t.digest: t for t in
                                 play_tracks(self._count, FAMILY_NAMES).values()})
            self._complete = True
        return self._tracks[digest]
