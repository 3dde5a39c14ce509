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
  through the place it is unsure of.

A mission's ``value`` is the score of the segment it aims at (what a Play page can show as "how
unsure the model is there": relative steering spread plus the weighted failure rate; no money
figure is implied). Deterministic from the generator passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from crowdlearning.learning.uncertainty import FAILURE_WEIGHT, SegmentRecord

__all__ = ["Mission", "RouterConfig", "plan_missions"]


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
                               "explore"))
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
                           "failed" if record.failures[row] > 0 else "unsure"))
    return out
