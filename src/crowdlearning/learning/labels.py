"""From contributions to training labels: the two DAgger modes and the reaction-delay correction.

- **label mode** (DAgger): every player input labels a state the learner visited; weight 1.
- **takeover mode** (HG-DAgger): only ticks where the player held control are labels, weighted
  ``intervention_weight`` (intervention-weighted regression: the few states where a human had to
  step in matter more than the many where the policy was fine).

Reaction delay: an input that answers tick ``k`` (the newest frame the player had seen) was decided
on what the player saw about ``delay`` ticks earlier, so it labels the state of tick
``k - delay``. The delay is the run's own estimate (``meta["reaction_delay_ticks"]``, set by
``learning.reaction`` when the platform accepts the run) when ``estimate_delay`` is on and there
is one; else ``keyboard_delay_ticks`` (4 ticks, a person's 200 ms) for a run played on a keyboard
and ``reaction_delay_ticks`` for others. When several inputs land on one state, the latest wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from crowdlearning.config import Settings
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.device import device_codes, device_targets

__all__ = [
    "COVERED_META_KEY",
    "DELAY_META_KEY",
    "MIN_CORRECTION",
    "LabelConfig",
    "LabelSet",
    "correction_ticks",
    "covered_rows",
    "extract_labels",
    "label_rows",
    "labels_of",
    "mix_actions",
    "ranges_of",
]

DELAY_META_KEY = "reaction_delay_ticks"
COVERED_META_KEY = "covered_ticks"  # ticks already accepted this round (``evaluation.coverage``)
MIN_CORRECTION = 0.05  # |player - proposed| steering, 5-tick average, that counts as a correction


def ranges_of(rows: np.ndarray) -> list[list[int]]:
    """Sorted row indexes as ``[start, end)`` ranges (compact, JSON-friendly)."""
    out: list[list[int]] = []
    for r in np.sort(np.asarray(rows, np.int64)).tolist():
        if out and out[-1][1] == r:
            out[-1][1] = r + 1
        else:
            out.append([r, r + 1])
    return out


def covered_rows(contribution: Contribution) -> np.ndarray:
    """The row indexes ``meta["covered_ticks"]`` names (empty when none)."""
    spans = contribution.meta.get(COVERED_META_KEY) or []
    if not spans:
        return np.zeros(0, np.int64)
    return np.concatenate([np.arange(int(a), int(b)) for a, b in spans])


def correction_ticks(contribution: Contribution) -> np.ndarray:
    """Ticks (bool per tick) at which the player *corrected* the car: their steering input,
    averaged over 5 ticks, differs from the car's proposal by at least ``MIN_CORRECTION``.

    Averaging is what separates intent from noise: a correction lasts, noise does not (a copier
    adding noise of std 0.03 crosses the line about once in 5,000 ticks). Where a player agrees
    with the car, their input says nothing new and nothing about when they reacted.
    """
    c = contribution
    # the input as sent (a keyboard's wheel value): the delay estimate compares that same
    # column with the expert, and a key held is a correction whatever its gain turns out to be
    given = np.isfinite(c.player[:, 0])
    gap = np.where(given, c.player[:, 0] - c.proposed[:, 0], 0.0)
    # centred 5-tick average, one value per tick (``mode="same"`` would return 5 values for a
    # run shorter than 5 ticks: a 1-tick crowd segment then claimed corrections at ticks it
    # does not have, and the delay estimate indexed past its end)
    smooth = np.convolve(gap, np.ones(5) / 5, mode="full")[2:2 + len(gap)]
    return given & (np.abs(smooth) >= MIN_CORRECTION)


@dataclass(frozen=True)
class LabelConfig:
    reaction_delay_ticks: int = 0  # when a run has no estimate of its own
    # when a run played on a keyboard has no estimate (too few corrections): a person's 200 ms
    keyboard_delay_ticks: int = 4
    intervention_weight: float = 3.0
    estimate_delay: bool = True  # estimate each run's delay (``learning.reaction``)
    max_delay_ticks: int = 15  # the largest delay estimated or applied

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelConfig:
        return cls(reaction_delay_ticks=settings.reaction_delay_ticks,
                   keyboard_delay_ticks=settings.reaction_delay_keyboard_ticks,
                   intervention_weight=settings.intervention_weight,
                   estimate_delay=settings.reaction_delay_estimate,
                   max_delay_ticks=settings.reaction_delay_max_ticks)

    def delay_of(self, contribution: Contribution) -> int:
        """The delay applied to ``contribution``'s inputs (see the module docstring)."""
        estimate = contribution.meta.get(DELAY_META_KEY) if self.estimate_delay else None
        if isinstance(estimate, int) and 0 <= estimate <= self.max_delay_ticks:
            return estimate
        if (device_codes(contribution) >= 0).any():  # keys come from a person's hands
            return self.keyboard_delay_ticks
        return self.reaction_delay_ticks

    def __post_init__(self) -> None:
        if self.reaction_delay_ticks < 0:
            raise ValueError(f"reaction_delay_ticks must be >= 0, got {self.reaction_delay_ticks}")
        if not 0 <= self.keyboard_delay_ticks <= self.max_delay_ticks:
            raise ValueError(f"keyboard_delay_ticks must be in [0, max_delay_ticks], got "
                             f"{self.keyboard_delay_ticks}")
        if not 0 <= self.max_delay_ticks <= 40:
            raise ValueError(f"max_delay_ticks must be in [0, 40], got {self.max_delay_ticks}")
        if self.intervention_weight <= 0:
            raise ValueError(f"intervention_weight must be > 0, got {self.intervention_weight}")


@dataclass(frozen=True, eq=False)
class LabelSet:
    """Training rows: observation, target action, per-dimension mask, weight, source id."""

    observations: np.ndarray  # (N, obs_dim) float32
    targets: np.ndarray  # (N, 2) float32 (0 where masked)
    mask: np.ndarray  # (N, 2) bool: which dimensions are labelled
    weights: np.ndarray  # (N,) float32
    sources: np.ndarray  # (N,) str: contribution id of each row

    def __len__(self) -> int:
        return len(self.weights)

    @classmethod
    def empty(cls, obs_dim: int = 18) -> LabelSet:
        return cls(np.zeros((0, obs_dim), np.float32), np.zeros((0, 2), np.float32),
                   np.zeros((0, 2), bool), np.zeros(0, np.float32), np.zeros(0, dtype="<U64"))

    @classmethod
    def concat(cls, parts: Sequence[LabelSet]) -> LabelSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("observations", "targets", "mask", "weights", "sources")))

    def select(self, rows: np.ndarray) -> LabelSet:
        return LabelSet(self.observations[rows], self.targets[rows], self.mask[rows],
                        self.weights[rows], self.sources[rows])

    @classmethod
    def from_actions(cls, observations: np.ndarray, actions: np.ndarray, source: str,
                     weight: float = 1.0) -> LabelSet:
        """Fully labelled rows (e.g. expert demonstrations)."""
        n = len(observations)
        return cls(np.asarray(observations, np.float32), np.asarray(actions, np.float32),
                   np.ones((n, 2), bool), np.full(n, weight, np.float32),
                   np.full(n, source, dtype="<U64"))


def label_rows(contribution: Contribution, config: LabelConfig | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Which input rows label which state rows under the run's mode (module docstring): the
    rows whose input is a label and not covered this round, and the state each one labels after
    the reaction delay, the latest input per state; both sorted by state."""
    cfg = config or LabelConfig()
    c = contribution
    rows = np.flatnonzero(c.label_ticks)
    rows = rows[~np.isin(rows, covered_rows(c))]  # already accepted this round
    state_rows = c.input_tick[rows] - cfg.delay_of(c) - c.ticks[0]
    keep = state_rows >= 0
    rows, state_rows = rows[keep], state_rows[keep]
    # the latest input per labelled state wins
    _, last = np.unique(state_rows[::-1], return_index=True)
    pick = len(rows) - 1 - last
    return rows[pick], state_rows[pick]


def extract_labels(contribution: Contribution, config: LabelConfig | None = None) -> LabelSet:
    """The labels a contribution provides under its mode (see the module docstring)."""
    cfg = config or LabelConfig()
    c = contribution
    rows, state_rows = label_rows(c, cfg)
    player = device_targets(c)[rows]  # each device's meaning (``learning.device``)
    mask = np.isfinite(player)
    weight = cfg.intervention_weight if c.mode == "takeover" else 1.0
    return LabelSet(
        observations=c.observations[state_rows].astype(np.float32),
        targets=np.where(mask, player, 0.0).astype(np.float32),
        mask=mask,
        weights=np.full(len(rows), weight, np.float32),
        sources=np.full(len(rows), c.contribution_id, dtype="<U64"),
    )


def labels_of(contributions: Iterable[Contribution], config: LabelConfig | None = None
              ) -> LabelSet:
    return LabelSet.concat([extract_labels(c, config) for c in contributions])


def mix_actions(takeover: np.ndarray, proposed: np.ndarray, player: np.ndarray,
                intervention: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The action the server executes for each session (rows), per its mode.

    label mode: ``beta * player + (1 - beta) * policy`` for each dimension the player gave, else
    the policy; takeover mode: the player's input while intervening (the policy for dimensions
    not given), else the policy.
    """
    given = np.isfinite(player)
    safe = np.where(given, player, proposed)
    b = np.asarray(beta, dtype=np.float64).reshape(-1, 1)
    label = np.where(given, b * safe + (1.0 - b) * proposed, proposed)
    held = np.asarray(intervention, dtype=bool)[:, None]
    return np.where(np.asarray(takeover, dtype=bool)[:, None],
                    np.where(held, safe, proposed), label)
