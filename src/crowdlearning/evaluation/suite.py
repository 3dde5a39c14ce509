"""Hidden evaluation tracks and closed-loop, vectorized, deterministic rollouts on them.

Seed spaces: tracks served to players come from ``[0, PLAY_SEED_LIMIT)``; hidden evaluation
tracks from ``[HIDDEN_SEED_BASE, HIDDEN_SEED_BASE + HIDDEN_SEED_SPAN)``, which is disjoint, so no
player ever drives a hidden track. A suite is drawn from its ``rotation`` number: rotating the
suite changes the tracks without changing the rules.

Families (``sim.families``). Each track of a suite belongs to a family (``track_families``, empty
= all ``easy``, today's tracks). ``EvalSuite.hidden(size, rotation, families=...)`` draws within
the given families (the ones the curriculum has unlocked, ``evaluation.curriculum``): with only
``easy`` it is exactly the suite it always was (same seeds, same tracks); with several, ``size``
is split evenly (the remainder to the hardest), each family drawing its hidden seeds as ``easy``
does with the family's key added to the rotation's RNG, and the tracks interleaved (easiest
first, round robin) so every consecutive part of the suite (the verdict's looks) holds every
family. A family's grip travels with its tracks (``Track.grip``): one simulator batch evaluates
a mixed suite.

A rollout places one car per (track, start), starts at ``start_speed_mps``, and lets the policy
drive until it completes ``laps`` laps, leaves the track or runs out of ``max_steps`` ticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from crowdlearning.errors import SimulationError
from crowdlearning.policy.network import Policy
from crowdlearning.sim.families import EASY, FAMILIES, family_track, get_family
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track import Track

__all__ = [
    "HIDDEN_SEED_BASE",
    "PLAY_SEED_LIMIT",
    "EvalResult",
    "EvalSuite",
    "evaluate",
    "evaluate_many",
    "family_names",
    "is_play_seed",
]

PLAY_SEED_LIMIT = 1_000_000_000
HIDDEN_SEED_BASE = 1_500_000_000
HIDDEN_SEED_SPAN = 500_000_000


def is_play_seed(seed: int) -> bool:
    """Whether a track seed may be served to players (never a hidden evaluation seed)."""
    return 0 <= seed < PLAY_SEED_LIMIT


@cache
def _track(family: str, seed: int) -> Track:
    return family_track(family, seed)


def family_names(families: Sequence[str]) -> tuple[str, ...]:
    """``families`` as distinct known family names, easiest first (raises on an unknown one)."""
    wanted = {get_family(str(f)).name for f in families}
    if not wanted:
        raise SimulationError("at least one track family is needed")
    return tuple(f.name for f in FAMILIES if f.name in wanted)


@dataclass(frozen=True)
class EvalSuite:
    """Which hidden tracks, which starts, and the rollout limits."""

    track_seeds: tuple[int, ...]
    starts_per_track: int = 2
    start_speed_mps: float = 8.0
    laps: int = 1
    max_steps: int = 3000  # 150 s at 20 Hz
    # the family of each track (``sim.families``); empty: every track is ``easy`` (today's)
    track_families: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.track_seeds:
            raise SimulationError("an evaluation suite needs at least one track")
        families = tuple(get_family(f).name for f in self.track_families)
        if families and len(families) != len(self.track_seeds):
            raise SimulationError(f"{len(families)} track families for "
                                  f"{len(self.track_seeds)} tracks")
        if all(f == EASY.name for f in families):
            families = ()  # all easy: the same suite as one built without families
        object.__setattr__(self, "track_families", families)
        leaked = [s for s in self.track_seeds if is_play_seed(s)]
        if leaked:
            raise SimulationError(f"evaluation seeds {leaked[:3]} are play seeds: never evaluate "
                                  "on tracks players can drive")

    @classmethod
    def hidden(cls, size: int = 24, rotation: int = 0, *,
               families: Sequence[str] = (EASY.name,), **kwargs: object) -> EvalSuite:
        """The suite of ``size`` hidden tracks for ``rotation``, within ``families`` (see the
        module docstring; only ``easy``: today's suite)."""
        names = family_names(families)
        if size < len(names):
            raise SimulationError(f"a suite of {size} tracks cannot hold {len(names)} families")
        base, extra = divmod(size, len(names))
        counts = [base + (i >= len(names) - extra) for i in range(len(names))]
        drawn = [_hidden_seeds(name, count, rotation) for name, count in zip(names, counts,
                                                                           strict=True)]
        order = [(names[f], seeds[i]) for i in range(max(counts))
                 for f, seeds in enumerate(drawn) if i < len(seeds)]
        return cls(tuple(seed for _, seed in order),  # type: ignore[arg-type]
                   track_families=tuple(name for name, _ in order), **kwargs)

    @property
    def families(self) -> tuple[str, ...]:
        """The family of each track, in the suite's order."""
        return self.track_families or (EASY.name,) * len(self.track_seeds)

    @property
    def family_names(self) -> tuple[str, ...]:
        """The families the suite draws from, easiest first."""
        return family_names(self.families)

    def part(self, start: int, stop: int) -> EvalSuite:
        """Tracks ``start:stop`` of the suite (with their families), the same rollout rules."""
        return replace(self, track_seeds=self.track_seeds[start:stop],
                       track_families=self.track_families[start:stop])

    @property
    def tracks(self) -> list[Track]:
        return [_track(f, s) for f, s in zip(self.families, self.track_seeds, strict=True)]

    @property
    def num_runs(self) -> int:
        return len(self.track_seeds) * self.starts_per_track


def _hidden_seeds(family: str, size: int, rotation: int) -> list[int]:
    """``size`` hidden seeds of ``family`` for ``rotation`` (``easy``: today's draw)."""
    fam = get_family(family)
    key = [int(rotation), 0x5EED] + ([] if fam.classic else [fam.key])
    offsets = np.random.default_rng(key).choice(HIDDEN_SEED_SPAN, size=size, replace=False)
    return [int(HIDDEN_SEED_BASE + o) for o in offsets]


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Per-run outcomes (one row per track and start) and their summary."""

    track_seed: np.ndarray
    start_s_m: np.ndarray
    completed: np.ndarray  # bool: finished the laps
    progress_frac: np.ndarray  # progress / (laps * track length), in [0, 1]
    progress_m: np.ndarray  # distance driven along the centreline before stopping [m]
    exited: np.ndarray  # bool: left the track
    lap_time_s: np.ndarray  # first lap's time, NaN if none
    laps: np.ndarray
    track_family: np.ndarray | None = None  # str per run; None: all easy

    @property
    def lap_completion(self) -> float:
        return float(self.completed.mean())

    def lap_completion_by_family(self) -> dict[str, float]:
        """Share of runs that finished their laps, per track family."""
        fams = (self.track_family if self.track_family is not None
                else np.full(len(self.completed), EASY.name))
        return {name: float(self.completed[fams == name].mean()) for name in family_names(fams)}

    def summary(self) -> dict[str, float | int | None]:
        times = self.lap_time_s[np.isfinite(self.lap_time_s)]
        return {
            "lap_completion": self.lap_completion,
            "mean_progress": float(self.progress_frac.mean()),
            "exit_rate": float(self.exited.mean()),
            "mean_lap_time_s": float(times.mean()) if len(times) else None,
            "runs": len(self.completed),
        }


def evaluate(policy: Policy, suite: EvalSuite) -> EvalResult:
    """Drive ``policy`` on every (track, start) of ``suite`` at once; deterministic."""
    [result] = _evaluate([policy], suite)
    return result


def evaluate_many(policies: Sequence[Policy], suite: EvalSuite) -> list[EvalResult]:
    """Every policy on every (track, start) of ``suite`` in ONE simulator batch.

    Each car's result does not depend on the batch it is in (scalar kernels), so this equals
    one ``evaluate`` call per policy; it shares the per-step overhead (the verdict's paired
    models are evaluated together).
    """
    return _evaluate(list(policies), suite)


def _evaluate(policies: list[Policy], suite: EvalSuite) -> list[EvalResult]:
    tracks = suite.tracks
    k = suite.starts_per_track
    n = len(tracks) * k
    p = len(policies)
    track_index = np.repeat(np.arange(len(tracks)), k)
    lengths = np.array([t.length_m for t in tracks])[track_index]
    start_s = lengths * np.tile(np.arange(k) / k, len(tracks))
    sim = RaceSim(tracks, n * p, max_steps=suite.max_steps)
    sim.reset_cars(np.arange(n * p), track_index=np.tile(track_index, p),
                   start_s_m=np.tile(start_s, p), speed_mps=suite.start_speed_mps)
    exited = np.zeros(n * p, dtype=bool)
    actions = np.zeros((n * p, 2))
    while sim.alive.any():
        obs = sim.observe()
        for i, policy in enumerate(policies):
            actions[i * n:(i + 1) * n] = policy.act(obs[i * n:(i + 1) * n])
        out = sim.step(actions)
        exited |= out.terminated
        sim.alive &= sim.laps < suite.laps
    results = []
    for i in range(p):
        rows = slice(i * n, (i + 1) * n)
        laps = sim.laps[rows]
        results.append(EvalResult(
            track_seed=np.asarray(suite.track_seeds)[track_index],
            start_s_m=start_s,
            completed=laps >= suite.laps,
            progress_frac=np.clip(sim.progress_m[rows] / (suite.laps * lengths), 0.0, 1.0),
            progress_m=sim.progress_m[rows].copy(),
            exited=exited[rows].copy(),
            lap_time_s=np.where(laps >= 1, sim.best_lap_time_s[rows], np.nan),
            laps=laps.copy(),
            track_family=np.asarray(suite.families)[track_index],
        ))
    return results
