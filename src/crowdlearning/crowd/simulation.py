"""Rounds of simulated play: a crowd of scripted players, one session each, in one batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np

from crowdlearning.crowd.personas import Persona, make_persona
from crowdlearning.learning.contribution import Contribution, Mode
from crowdlearning.learning.disturbance import Disturbance
from crowdlearning.learning.routing import RouterConfig, meet_failures, plan_missions
from crowdlearning.learning.session import PlayerInputs, SessionBatch, SessionSpec
from crowdlearning.learning.uncertainty import survey_widening
from crowdlearning.policy.network import Policy
from crowdlearning.sim.families import family_track
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_gen import generate_track

__all__ = ["CrowdMember", "PlannedStart", "make_crowd", "mission_starts", "play_round",
           "play_track"]

PLAY_TRACK_POOL = tuple(range(1000, 1400))  # play seeds the simulated crowd is served


@cache
def play_track(seed: int, family: str = "easy") -> Track:
    return generate_track(seed) if family == "easy" else family_track(family, seed)


class PlannedStart(NamedTuple):
    """Where and how a mission's run starts (``mission_starts``)."""

    track: Track
    start_s_m: float
    speed_mps: float = 8.0
    lateral_m: float = 0.0
    heading_rad: float = 0.0


@dataclass
class CrowdMember:
    contributor_id: str
    persona: Persona
    mode: Mode = "label"
    beta: float = 0.5


def make_crowd(spec: dict[str, int], rng: np.random.Generator,
               modes: Sequence[Mode] = ("label", "takeover")) -> list[CrowdMember]:
    """``{"expert": 3, "random": 1}`` -> members named ``<persona>-<k>``, modes alternating."""
    members = []
    for persona, count in spec.items():
        for k in range(count):
            members.append(CrowdMember(f"{persona}-{k}", make_persona(persona, rng),
                                       mode=modes[k % len(modes)]))
    return members


def play_round(policy: Policy, model_version: int, members: Sequence[CrowdMember],
               rng: np.random.Generator, *, round_id: str, max_ticks: int = 600,
               track_seeds: Sequence[int] = PLAY_TRACK_POOL,
               catalog: dict[str, Track] | None = None,
               disturbance: tuple[float, float] = (0.0, 0.0),
               families: Sequence[str] = ("easy",),
               starts: Sequence[PlannedStart | tuple[Track, float] | None] | None = None
               ) -> list[Contribution]:
    """Every member plays one session on a random play track; their contributions.

    ``catalog`` (track digest -> track), if given, learns every track served;
    ``disturbance``: the range each session's steering noise is drawn in, as the game server
    draws it (``learning.disturbance``; from its own generator, so the starts stay the same);
    ``families``: the unlocked track families (``evaluation.curriculum``), the hardest (the
    frontier, where the model still has most to learn) served to half the crowd, the others
    shared by the rest (easy only: every draw as before); ``starts``: per member, a (track,
    start arc length) to play instead of a random one (a mission, ``mission_starts``), or None.
    """
    families = list(families)
    wind = np.random.default_rng([int(rng.integers(2**62)), 0xD157]) if disturbance[1] else None
    specs = []
    for i, m in enumerate(members):
        family = families[0]
        if len(families) > 1:
            family = (families[-1] if rng.random() < 0.5
                      else families[int(rng.integers(len(families) - 1))])
        track = play_track(int(rng.choice(track_seeds)), family)
        plan = PlannedStart(track, float(rng.uniform(0, track.length_m)))
        if starts is not None and starts[i] is not None:
            plan = PlannedStart(*starts[i])  # type: ignore[misc]
        track = plan.track
        if catalog is not None:
            catalog[track.digest] = track
        specs.append(SessionSpec(m.contributor_id, f"{round_id}-{m.contributor_id}", track,
                                 start_s_m=plan.start_s_m, start_speed_mps=plan.speed_mps,
                                 start_lateral_m=plan.lateral_m,
                                 start_heading_rad=plan.heading_rad,
                                 mode=m.mode, beta=m.beta, disturbance=(
                                     Disturbance.draw(int(wind.integers(2**62)), *disturbance)
                                     if wind is not None else None)))
    batch = SessionBatch(policy, specs, model_version=model_version, max_ticks=max_ticks)
    groups: dict[int, list[int]] = {}
    for row, m in enumerate(members):
        groups.setdefault(id(m.persona), []).append(row)
    personas = {id(m.persona): m.persona for m in members}
    while not batch.done:
        frame = batch.frame()
        inputs = PlayerInputs.none(len(members))
        for key, rows in groups.items():
            idx = np.asarray(rows)
            inputs.set_rows(idx, personas[key].act(frame, idx))  # keyboard personas: + keys
        batch.advance(inputs)
    return batch.contributions()


def mission_starts(policy: Policy, members: int, rng: np.random.Generator, *,
                   families: Sequence[str] = ("easy",), share: float = 1.0,
                   tracks_per_family: int = 8,
                   track_seeds: Sequence[int] = PLAY_TRACK_POOL, widen_to: int = 64,
                   router: RouterConfig | None = None, approach: bool = False,
                   approach_ticks: int = 60, passing: bool = False
                   ) -> list[PlannedStart | None]:
    """Missions for ``members`` players, as the game server's board plans them
    (``server.missions``), on play tracks of the unlocked ``families``: the champion drives
    ``tracks_per_family`` play tracks of each (twice that of the frontier, the hardest), its
    exits and stalls per segment are its failure record (``learning.uncertainty``), and
    ``learning.routing.plan_missions`` starts runs a few seconds before the segments it
    fails (20% explore). No ensemble: the failure record alone, which carries the routing
    benchmark (``docs/benchmarks.md``). Each player takes a mission with probability
    ``share``, else None (a random track and start, ``play_round``).

    Where the champion fails fewer than ``members`` segments of those tracks, the survey looks
    further along the frontier's play tracks (``learning.uncertainty.survey_widening``:
    ``tracks_per_family`` more at a time, up to ``widen_to`` of the frontier), so missions
    reach corners it still fails.

    With ``approach`` (``server_missions_approach``), a mission aimed at a segment the champion
    failed starts on the champion's own approach to that failure (``approach_ticks`` before
    it), at its speed, offset and
    heading (``learning.routing.meet_failures``); without it, every mission starts at 8 m/s on
    the centreline 3 s before its segment, where the champion mostly drives through.
    The default start speed of other runs is ``SessionSpec``'s 8 m/s."""
    families = list(families)
    frontier = families[-1]
    tracks = [play_track(int(seed), fam) for fam in families
              for seed in track_seeds[:tracks_per_family * (2 if fam == frontier else 1)]]
    more = (play_track(int(seed), frontier)
            for seed in track_seeds[tracks_per_family * 2:widen_to])
    record = survey_widening(policy, [policy], tracks, more, failing_segments=members,
                             batch=tracks_per_family,
                             max_tracks=len(tracks) + max(0, widen_to - 2 * tracks_per_family))
    cfg = router or RouterConfig(spread_weight=0.0)
    plan = plan_missions(record, members, rng, cfg)
    if approach:
        plan = meet_failures(policy, record, plan, lead_ticks=approach_ticks,
                             start_speed_mps=cfg.start_speed_mps, passing=passing)
    return [PlannedStart(record.tracks[m.track_index], m.start_s_m, m.speed_mps, m.lateral_m,
                         m.heading_rad) if rng.random() < share else None for m in plan]
