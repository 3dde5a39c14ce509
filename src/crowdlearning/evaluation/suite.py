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
    # where each run starts, as a fraction of its track's lap, ``starts_per_track`` per track in
    # the tracks' order; empty: equally spaced from 0 (today's starts). The verdict places some
    # starts just before the corners its champion fails (``evaluation.verdict``, "focus").
    start_fracs: tuple[float, ...] = ()
    # per run (with ``start_fracs``): (speed [m/s], lateral offset [m], heading error [rad]) the
    # car starts with; empty: ``start_speed_mps`` on the centreline, aligned with the track
    start_motion: tuple[tuple[float, float, float], ...] = ()

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
        fracs = tuple(float(f) % 1.0 for f in self.start_fracs)
        if fracs and len(fracs) != len(self.track_seeds) * self.starts_per_track:
            raise SimulationError(f"{len(fracs)} start fractions for "
                                  f"{len(self.track_seeds) * self.starts_per_track} runs")
        if not self.start_motion and fracs == self.uniform_fracs(len(self.track_seeds),
                                                                 self.starts_per_track):
            fracs = ()  # equally spaced: the same suite as one built without starts
        object.__setattr__(self, "start_fracs", fracs)
        motion = tuple((float(v), float(lat), float(yaw)) for v, lat, yaw in self.start_motion)
        if motion and (not fracs or len(motion) != len(fracs)):
            raise SimulationError(f"{len(motion)} start motions for {len(fracs)} placed starts")
        object.__setattr__(self, "start_motion", motion)
        leaked = [s for s in self.track_seeds if is_play_seed(s)]
        if leaked:
            raise SimulationError(f"evaluation seeds {leaked[:3]} are play seeds: never evaluate "
                                  "on tracks players can drive")

    @classmethod
    def hidden(cls, size: int = 24, rotation: int = 0, *,
               families: Sequence[str] = (EASY.name,), frontier_share: float = 0.0,
               **kwargs: object) -> EvalSuite:
        """The suite of ``size`` hidden tracks for ``rotation``, within ``families`` (see the
        module docstring; only ``easy``: today's suite). ``frontier_share`` > 0 gives the
        hardest family (the curriculum's frontier) that share of the tracks (at least one per
        other family is kept), the others splitting the rest evenly, and interleaves the
        families in proportion, so every look of the verdict holds the same mix."""
        names = family_names(families)
        if size < len(names):
            raise SimulationError(f"a suite of {size} tracks cannot hold {len(names)} families")
        if not 0.0 <= frontier_share < 1.0:
            raise SimulationError(f"frontier_share must be in [0, 1), got {frontier_share}")
        counts = _family_counts(size, len(names), frontier_share)
        drawn = [_hidden_seeds(name, count, rotation) for name, count in zip(names, counts,
                                                                           strict=True)]
        if frontier_share > 0 and len(names) > 1:
            slots = sorted(((i + 0.5) / count, f) for f, count in enumerate(counts)
                           for i in range(count))
            taken = [0] * len(names)
            order = []
            for _, f in slots:
                order.append((names[f], drawn[f][taken[f]]))
                taken[f] += 1
        else:
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
        """Tracks ``start:stop`` of the suite (with their families and starts), the same
        rollout rules."""
        k = self.starts_per_track
        return replace(self, track_seeds=self.track_seeds[start:stop],
                       track_families=self.track_families[start:stop],
                       start_fracs=self.start_fracs[start * k:stop * k],
                       start_motion=self.start_motion[start * k:stop * k])

    @staticmethod
    def uniform_fracs(tracks: int, starts_per_track: int) -> tuple[float, ...]:
        """Equally spaced starts from 0, per track (what an empty ``start_fracs`` means)."""
        return tuple(float(i) / starts_per_track for _ in range(tracks)
                     for i in range(starts_per_track))

    @property
    def run_fracs(self) -> np.ndarray:
        """Where each run starts, as a fraction of its track's lap (num_runs,)."""
        return np.asarray(self.start_fracs or self.uniform_fracs(len(self.track_seeds),
                                                                 self.starts_per_track))

    @property
    def tracks(self) -> list[Track]:
        return [_track(f, s) for f, s in zip(self.families, self.track_seeds, strict=True)]

    @property
    def num_runs(self) -> int:
        return len(self.track_seeds) * self.starts_per_track


def _family_counts(size: int, families: int, frontier_share: float) -> list[int]:
    """Tracks per family, easiest first: even (remainder to the hardest), or the hardest
    ``frontier_share`` of them (at least one track per other family)."""
    if frontier_share <= 0 or families == 1:
        base, extra = divmod(size, families)
        return [base + (i >= families - extra) for i in range(families)]
    frontier = min(size - (families - 1), max(1, round(frontier_share * size)))
    base, extra = divmod(size - frontier, families - 1)
    return [base + (i >= families - 1 - extra) for i in range(families - 1)] + [frontier]


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
    start_s = lengths * (np.tile(np.arange(k) / k, len(tracks)) if not suite.start_fracs
                         else suite.run_fracs)
    sim = RaceSim(tracks, n * p, max_steps=suite.max_steps)
    if suite.start_motion:
        speed, lateral, heading = (np.tile(np.asarray(col, np.float64), p)
                                   for col in zip(*suite.start_motion, strict=True))
    else:
        speed, lateral, heading = suite.start_speed_mps, 0.0, 0.0
    sim.reset_cars(np.arange(n * p), track_index=np.tile(track_index, p),
                   start_s_m=np.tile(start_s, p), speed_mps=speed, lateral_m=lateral,
                   heading_offset_rad=heading)
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
