"""Missions: the runs the Play page offers where the champion needs help most (issue 11.3).

``MissionBoard`` turns the champion's segment record (``learning.uncertainty``: an ensemble
fine-tuned from the champion, then a survey of the champion driving every play track, scored
per 25-m segment) into ``count`` missions (``learning.routing.plan_missions``: a track, a start
a few seconds before the segment aimed at, why, and the segment's score as the mission's value).

Where the champion fails fewer segments than the board offers missions, the board looks further
along the frontier family's play tracks (the hardest unlocked; the game serves
``server_frontier_play_tracks`` of it): the first ``per_family`` served tracks of each other
family (a former frontier's further tracks are still served, not surveyed) and the first
``first_frontier`` of the frontier's are surveyed, then ``widen_batch`` more of the frontier's at
a time (issue 11: a champion that drives its frontier's first play tracks cleanly can still fail
a quarter of the family's hidden laps; missions planned on the clean tracks sent players to
corners it already drove). The simulated market's missions do the same
(``crowd.simulation.mission_starts``).

A mission aimed at a segment the champion failed starts on the champion's own approach to that
failure (``approach``, ``learning.routing.meet_failures``): where it was 3 s before failing,
at its speed, offset and heading, so the player meets the corner as the car meets it (from 8 m/s
on the centreline the champion mostly drove through the corners it fails at racing speed).

The record costs a few seconds of CPU (about 4 s on one core for eight tracks). It is computed
lazily, on the first request after the champion changes (``GameLoop.model_version`` differs from
the board's), on a thread of the board's own at the lowest CPU priority (on Linux a thread's
nice value is its own); the caller gets the board as it is (``ready`` false and no missions while
it is being computed) and never waits: the game loop and the routes only read the cached plan.

A mission's id names the champion version it was planned for; a run can start on a mission of
the current board only (``find``): a mission planned for an older champion is stale.
Plans are deterministic from the champion's version (the generator is seeded with it), so every
game server sharing a registry offers the same missions for a version.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from crowdlearning.evaluation.curriculum import FAMILY_PLAY_SEED_STRIDE
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.routing import Mission, RouterConfig, meet_failures, plan_missions
from crowdlearning.learning.uncertainty import (
    EnsembleConfig,
    SegmentRecord,
    survey_segments,
    train_ensemble,
    widened,
)
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track import Track

__all__ = ["ChampionRecords", "MissionBoard", "OfferedMission", "champion_record"]

log = logging.getLogger(__name__)
_PLAN_SALT = 0x3155  # the plan's generator: (champion version, this)
RETRY_AFTER_S = 60.0  # a record that could not be computed is tried again after this long

# (champion version, the play tracks in order) -> the champion's segment record on them
RecordSource = Callable[[int, Sequence[Track]], SegmentRecord]
# (champion version, its record, missions planned on it) -> the missions, started on the
# champion's approaches to the failures they aim at (``learning.routing.meet_failures``)
Approach = Callable[[int, SegmentRecord, list[Mission]], list[Mission]]


@dataclass(frozen=True)
class OfferedMission:
    """A mission as offered to players (``GET /api/game/missions``)."""

    id: str
    track_seed: int
    track_name: str
    start_s_m: float  # where the run starts (arc length along the centreline)
    target_m: float  # arc length where the segment aimed at starts
    segment_m: float  # its length
    reason: str  # "failed", "unsure" or "explore" (``learning.routing.Mission``)
    value: float  # the segment's score: relative steering spread + weighted failure rate
    model_version: int
    # how the car moves at the start: the champion's own speed, offset and heading on its
    # approach to the failure aimed at; None: drawn from the run's secret seed, as any run's
    speed_mps: float | None = None
    lateral_m: float | None = None
    heading_rad: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class ChampionRecords:
    """The production record source (``champion_record``) and its ``approach``."""

    def __init__(self, trainer: DaggerTrainer, members: int, max_rows: int,
                 approach_ticks: int = 60, passing: bool = False) -> None:
        self.trainer, self.members, self.max_rows = trainer, members, max_rows
        self.passing = passing  # every mission on the champion's own driving, not only failed
        self.approach_ticks = approach_ticks  # a mission on an approach starts this long before
        # the last version's model and ensemble: a widening board asks again for the same
        self.model = functools.lru_cache(maxsize=1)(self._model)

    def _model(self, version: int) -> tuple[Policy, list[Policy]]:
        net, _ = self.trainer.registry.load(version)
        data = self.trainer.dataset.load()
        if len(data) > self.max_rows:
            rng = np.random.default_rng([version, _PLAN_SALT])
            data = data.select(np.sort(rng.choice(len(data), self.max_rows, replace=False)))
        ensemble = train_ensemble(net, data, EnsembleConfig(members=self.members, seed=version))
        return Policy(net), ensemble

    def __call__(self, version: int, tracks: Sequence[Track]) -> SegmentRecord:
        return survey_segments(*self.model(version), tracks)

    def approach(self, version: int, record: SegmentRecord, missions: list[Mission]
                 ) -> list[Mission]:
        return meet_failures(self.model(version)[0], record, missions,
                             lead_ticks=self.approach_ticks, passing=self.passing)


def champion_record(trainer: DaggerTrainer, *, members: int = 5, max_rows: int = 50_000,
                    approach_ticks: int = 60, passing: bool = False) -> ChampionRecords:
    """The production record source: ``version`` loaded from the registry, an ensemble of
    ``members`` fine-tuned on (at most ``max_rows`` rows drawn from) the aggregated data, and
    the survey of the version driving the tracks; its ``approach`` moves missions onto the
    version's approaches to its failures. The last version's model and ensemble are kept: a
    widening board asks again for more tracks of the same version."""
    return ChampionRecords(trainer, members, max_rows, approach_ticks, passing)


def _lower_priority() -> None:
    """This thread at the lowest CPU priority (Linux: per thread; elsewhere best effort)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class MissionBoard:
    """See the module docstring. ``source`` computes a version's record (``champion_record``)."""

    def __init__(self, source: RecordSource, count: int = 6,
                 router: RouterConfig | None = None, *, per_family: int = 8,
                 first_frontier: int = 16, widen_batch: int = 8,
                 approach: Approach | None = None) -> None:
        if min(per_family, first_frontier, widen_batch) < 1:
            raise ValueError(f"per_family, first_frontier and widen_batch must be >= 1, got "
                             f"{per_family}, {first_frontier} and {widen_batch}")
        self.source, self.count, self.router = source, count, router or RouterConfig()
        self.approach = approach  # None: every mission starts at the router's start speed
        self.per_family = per_family
        self.first_frontier, self.widen_batch = first_frontier, widen_batch
        self._lock = threading.Lock()
        self._key: tuple[int, tuple[int, ...]] | None = None  # what the missions were planned for
        self._missions: list[OfferedMission] = []
        self._computing: tuple[int, tuple[int, ...]] | None = None
        self._failed_at: dict[tuple[int, tuple[int, ...]], float] = {}  # retried after a while
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="missions",
                                            initializer=_lower_priority)

    def offer(self, version: int, tracks: dict[int, Track]) -> dict:
        """The board for champion ``version`` on the play ``tracks`` (seed -> track, in the
        order served): ``{"ready", "model_version", "missions"}``. Never waits: when the board
        is not planned for them yet, its computation starts (once) and ``ready`` is false."""
        key = (version, tuple(tracks))
        with self._lock:
            if self._key == key:
                return self._answer(version, True, self._missions)
            failed = self._failed_at.get(key)
            if self.count > 0 and self._computing is None and (
                    failed is None or time.monotonic() - failed > RETRY_AFTER_S):
                self._computing = key
                self._executor.submit(self._compute, key, dict(tracks))
            return self._answer(version, False, [])

    def find(self, mission_id: str, version: int) -> OfferedMission | None:
        """The mission ``mission_id`` if the current board (planned for champion ``version``)
        offers it, else None (unknown, or planned for another champion: stale)."""
        with self._lock:
            if self._key is None or self._key[0] != version:
                return None
            return next((m for m in self._missions if m.id == mission_id), None)

    def wait(self, timeout: float | None = None) -> None:
        """Block until what is being computed now is done (tests, tools: never the game)."""
        self._executor.submit(lambda: None).result(timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    @staticmethod
    def _answer(version: int, ready: bool, missions: list[OfferedMission]) -> dict:
        return {"ready": ready, "model_version": version,
                "missions": [m.to_dict() for m in missions]}

    def _compute(self, key: tuple[int, tuple[int, ...]], tracks: dict[int, Track]) -> None:
        version, _ = key
        try:
            record, surveyed = self.survey(version, tracks)
            missions = self.plan(record, version, surveyed)
        except Exception:  # the game goes on without missions; tried again later
            log.exception("planning missions for champion v%d failed", version)
            with self._lock:
                self._computing, self._failed_at = None, {key: time.monotonic()}
            return
        with self._lock:
            self._key, self._missions, self._computing = key, missions, None

    def survey(self, version: int, tracks: dict[int, Track]
               ) -> tuple[SegmentRecord, list[int]]:
        """The champion's record on the served ``tracks`` (seed -> track, in the order
        served), widened along the frontier's (see the module docstring), and the seeds of its
        tracks, in its order."""
        by_family: dict[int, list[int]] = {}
        for seed in tracks:
            by_family.setdefault(seed // FAMILY_PLAY_SEED_STRIDE, []).append(seed)
        *others, frontier = by_family.values()  # the frontier's tracks are served last
        first = [s for seeds in others for s in seeds[:self.per_family]]
        first += frontier[:self.first_frontier]
        more = frontier[self.first_frontier:]
        record = widened(lambda some: self.source(version, some), [tracks[s] for s in first],
                         (tracks[s] for s in more), failing_segments=self.count,
                         batch=self.widen_batch, max_tracks=len(first) + len(more))
        return record, first + more[:len(record.tracks) - len(first)]

    def plan(self, record: SegmentRecord, version: int, seeds: Sequence[int]
             ) -> list[OfferedMission]:
        """``count`` missions from ``record`` (its tracks are the play ``seeds``, in order),
        from a generator seeded with ``version``."""
        rng = np.random.default_rng([version, _PLAN_SALT])
        out = []
        plan = plan_missions(record, self.count, rng, self.router)
        if self.approach is not None:
            plan = self.approach(version, record, plan)
        for k, m in enumerate(plan):
            seed = int(seeds[m.track_index])
            tag = hashlib.sha256(f"{version}:{k}:{seed}:{m.start_s_m:.3f}".encode()).hexdigest()
            motion = ({"speed_mps": round(m.speed_mps, 3), "lateral_m": round(m.lateral_m, 3),
                       "heading_rad": round(m.heading_rad, 4)} if m.on_approach else {})
            out.append(OfferedMission(f"v{version}-{k}-{tag[:8]}", seed, m.track_name,
                                      round(m.start_s_m, 2), round(m.target_m, 2),
                                      record.segment_m, m.reason, round(m.value, 3), version,
                                      **motion))
        return out
