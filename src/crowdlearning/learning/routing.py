"""Send players where the model is unsure: missions (track, start) chosen from segment scores.

ThriftyDAgger asks for help where the robot's ensemble disagrees (novelty) or where it is likely
to fail (risk). Here both are measured per 25-m track segment by ``learning.uncertainty``
(``SegmentRecord.score``), and ``plan_missions`` turns those scores into the next runs:

- with probability ``explore`` a mission is drawn uniformly (a random play track, a random start),
  so segments the survey never reached, or scored wrongly, still get labels;
- otherwise a segment is drawn with probability proportional to ``exp(score / temperature)``
  among the visited segments, and no segment takes more than ``max_share`` of one plan (a plan
  never sends everyone to one corner: after the cap, the next best segments fill up);
- the run starts ``lead_s`` seconds (at the start speed) before the segment, on the same track,
  so the player takes over the car on the approach, as the model drives it, and corrects it
  through the place it is unsure of;
- ``meet_failures`` then moves each mission aimed at a segment the champion *failed* to where the
  champion itself was ``lead_ticks`` before that failure, at its speed, offset and heading. A run
  started on the centreline at the start speed meets the corner slower than the champion does
  and mostly drives through it (measured 2026-11-30: 0-5% of such missions failed within 30 s,
  against 89-100% from the champion's own approach): the player was shown a corner the car
  passes, and an expert taking over had nothing to correct.

A mission's ``value`` is the score of the segment it aims at (what a Play page can show as "how
unsure the model is there": relative steering spread plus the weighted failure rate; no money
figure is implied). Deterministic from the generator passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from crowdlearning.learning.uncertainty import (
    FAILURE_WEIGHT,
    SegmentRecord,
    failure_approaches,
    passage_approaches,
)
from crowdlearning.policy.network import Policy

__all__ = ["Mission", "RouterConfig", "meet_failures", "plan_missions"]


@dataclass(frozen=True)
class RouterConfig:
    lead_s: float = 3.0  # start this long before the target segment, at ``start_speed_mps``
    start_speed_mps: float = 8.0
    temperature: float = 1.0  # softmax temperature over segment scores
    explore: float = 0.2  # share of missions drawn uniformly over tracks and starts
    max_share: float = 0.25  # at most this share of one plan aims at one segment
    failure_weight: float = FAILURE_WEIGHT
    spread_weight: float = 1.0  # 0: route on the failure record alone (an ablation)


@dataclass(frozen=True)
class Mission:
    """One run to offer: where to start, what it aims at, and why."""

    track_index: int  # into ``SegmentRecord.tracks``
    track_name: str
    start_s_m: float
    target_m: float  # arc length of the start of the segment aimed at
    value: float  # that segment's score (0 for an unscored one)
    reason: str  # "failed" (the champion failed there), "unsure", or "explore"
    # how the car is moving at the start: the start speed on the centreline, or (a mission
    # ``meet_failures`` placed on the champion's approach to a failure) the champion's own
    speed_mps: float = 8.0
    lateral_m: float = 0.0  # signed offset from the centreline
    heading_rad: float = 0.0  # heading error against the track
    on_approach: bool = False  # placed by ``meet_failures`` on the champion's approach

    def to_dict(self) -> dict:
        return asdict(self)


def plan_missions(record: SegmentRecord, count: int, rng: np.random.Generator,
                  config: RouterConfig | None = None) -> list[Mission]:
    """``count`` missions from ``record``'s scores (see the module docstring)."""
    cfg = config or RouterConfig()
    if count < 1:
        return []
    score = record.score(cfg.failure_weight, cfg.spread_weight)
    known = np.isfinite(score)
    lead_m = cfg.lead_s * cfg.start_speed_mps
    cap = max(1, int(np.floor(cfg.max_share * count)))
    taken = np.zeros(len(record), np.int64)
    logits = np.where(known, score / max(cfg.temperature, 1e-9), -np.inf)
    out = []
    for _ in range(count):
        open_ = known & (taken < cap)
        if rng.random() < cfg.explore or not open_.any():
            t = int(rng.integers(len(record.tracks)))
            track = record.tracks[t]
            start = float(rng.uniform(0.0, track.length_m))
            row = int(record.segment_of(t, start + lead_m))
            value = float(score[row]) if known[row] else 0.0
            out.append(Mission(t, track.name, start, float(record.start_m[row]), value,
                               "explore", speed_mps=cfg.start_speed_mps))
            continue
        z = np.where(open_, logits, -np.inf)
        p = np.exp(z - z[open_].max())
        row = int(rng.choice(len(record), p=p / p.sum()))
        taken[row] += 1
        t = int(record.track_of[row])
        track = record.tracks[t]
        target = float(record.start_m[row])
        out.append(Mission(t, track.name, float((target - lead_m) % track.length_m), target,
                           float(score[row]),
                           "failed" if record.failures[row] > 0 else "unsure",
                           speed_mps=cfg.start_speed_mps))
    return out


def meet_failures(policy: Policy, record: SegmentRecord, missions: Sequence[Mission], *,
                  lead_ticks: int = 60, starts_per_track: int = 4, max_ticks: int = 1200,
                  start_speed_mps: float = 8.0, passing: bool = False) -> list[Mission]:
    """``missions`` with each one aimed at a segment ``policy`` failed started on its approach
    to that failure: where it was ``lead_ticks`` before failing there, at the speed, offset and
    heading it had (``learning.uncertainty.failure_approaches``; the module docstring says
    why). The approach is the one whose failure lies in the aimed segment, else the nearest
    failure on that track within one segment; several missions aimed at one segment take its
    approaches in turn. With ``passing``, every other mission starts where the policy was
    ``lead_ticks`` before it first entered the aimed segment (``passage_approaches``: the
    states the learner visits, at its own speed, not a standing start); a mission the surveys
    do not reach keeps its start. ``starts_per_track``, ``max_ticks`` and ``start_speed_mps``
    are those of the survey that made ``record`` (``survey_segments``' defaults): the policy
    then drives the same runs again and meets the same failures. Deterministic; simulation
    only (the tracks concerned, once more, twice with ``passing``)."""
    drive = {"lead_ticks": lead_ticks, "starts_per_track": starts_per_track,
             "max_ticks": max_ticks, "start_speed_mps": start_speed_mps}
    aimed = sorted({m.track_index for m in missions if m.reason == "failed"})
    found = (failure_approaches(policy, [record.tracks[t] for t in aimed], **drive)
             if aimed else [])
    approaches = dict(zip(aimed, found, strict=True))
    # a second drive, not one over both sets: the policy's batched inference may round
    # differently in another batch, and the failures must be the survey's
    played = sorted({m.track_index for m in missions}) if passing else []
    passages = dict(zip(played, passage_approaches(
        policy, [record.tracks[t] for t in played], segment_m=record.segment_m, **drive)
        if played else [], strict=True))
    used: dict[tuple[int, float], int] = {}
    out = []
    for m in missions:
        length = record.tracks[m.track_index].length_m
        centre = m.target_m + record.segment_m / 2
        near = [a for a in approaches.get(m.track_index, []) if m.reason == "failed"
                and _circular_m(a.failed_at_m, centre, length) <= record.segment_m]
        if near:
            near.sort(key=lambda a: _circular_m(a.failed_at_m, centre, length))
            key = (m.track_index, m.target_m)
            a = near[used.get(key, 0) % len(near)]
            used[key] = used.get(key, 0) + 1
        else:
            local = int((m.target_m % length) // record.segment_m)
            a = passages.get(m.track_index, {}).get(local)
            if a is None:
                out.append(m)
                continue
        out.append(replace(m, start_s_m=float(a.s_m % length), speed_mps=a.speed_mps,
                           lateral_m=a.lateral_m, heading_rad=a.heading_rad, on_approach=True))
    return out


def _circular_m(a: float, b: float, length: float) -> float:
    """Distance between arc lengths ``a`` and ``b`` on a closed track of ``length`` [m]."""
    d = abs(a - b) % length
    return min(d, length - d)
