"""What is new in a contribution: its labelled states and labels not already accepted this round.

The same information must be paid at most once per round, whoever sends it and however it is
re-played. Exact fingerprints (``screening``) miss a run driven again with tiny input noise, a
run re-created from the same start, or a copy of part of a run: every state then differs a
little. So coverage is measured in state/label space: a labelled tick of a new contribution is
*covered* when an accepted contribution of the round (judged improved, not yet merged) holds a
labelled tick within ``radius`` of it, in the space of the observation (18 fields) and the
steering label (weighted x2, so a label differing by 0.05 alone is at the radius). Measured
(`docs/verdict.md`): a replay with input noise up to 0.01 is 96-100% covered, the deterministic
expert driving the same track from another start 97%, a human-like player (noise 0.2) 0-5%.

Covered ticks are dropped from what is judged and merged (``meta["covered_ticks"]``, ranges of
row indexes), so a partly new run is paid for its new part only; a run whose new part is under
``min_new_share`` is refused as a near duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial import cKDTree

from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.labels import COVERED_META_KEY, covered_rows, ranges_of

__all__ = ["COVERED_META_KEY", "Coverage", "covered_rows", "ranges_of"]

LABEL_SCALE = 2.0  # steering label weight against the observation fields


def _labelled(c: Contribution) -> np.ndarray:
    return np.flatnonzero(c.label_ticks)


def _features(c: Contribution, rows: np.ndarray) -> np.ndarray:
    steer = np.nan_to_num(c.player[rows, :1], nan=0.0)
    return np.concatenate([c.observations[rows].astype(np.float64), LABEL_SCALE * steer], axis=1)


@dataclass
class Coverage:
    """The round's accepted labelled ticks, and how much of a new contribution they cover."""

    radius: float = 0.1
    min_new_share: float = 0.2

    def __post_init__(self) -> None:
        self._tree: cKDTree | None = None
        self._key: tuple[str, ...] = ()

    def _index(self, accepted: Sequence[Contribution]) -> cKDTree | None:
        key = tuple(c.contribution_id for c in accepted)
        if key != self._key:
            parts = [_features(c, _labelled(c)) for c in accepted]
            parts = [p for p in parts if len(p)]
            self._tree = cKDTree(np.concatenate(parts)) if parts else None
            self._key = key
        return self._tree

    def mark(self, contribution: Contribution, accepted: Sequence[Contribution]
             ) -> tuple[Contribution, str]:
        """``contribution`` with its covered ticks in meta, and a refusal reason ("" if judged)."""
        meta = {k: v for k, v in contribution.meta.items() if k != COVERED_META_KEY}
        tree = self._index(accepted)
        rows = _labelled(contribution)
        if tree is None or len(rows) == 0:
            return replace(contribution, meta=meta), ""
        distance, _ = tree.query(_features(contribution, rows), distance_upper_bound=self.radius)
        covered = rows[distance < self.radius]
        new_share = 1.0 - len(covered) / len(rows)
        if len(covered):
            meta[COVERED_META_KEY] = ranges_of(covered)
        marked = replace(contribution, meta=meta)
        if new_share < self.min_new_share:
            return marked, (f"near duplicate: {1 - new_share:.0%} of its labelled states and "
                            "labels were already accepted this round")
        return marked, ""
