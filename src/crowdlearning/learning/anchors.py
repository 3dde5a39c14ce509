"""Anchors: the champion's own driving where it is already good, kept in every merge.

Why. DAgger pulls the model toward whoever labels its states. The crowd's honest players drive
like the scripted expert, which is *careful* (80% of the grip, 60% of the brakes) and slower than
the models the crowd trains: a demo's v9 completed every lap of 8 hidden tracks of four families
as the expert did, 0.3-3.4% faster on three of them (0.8% slower on the fourth). So every merge
made the model safer where it failed and slower where it did not: refit from a champion with
75% of the laps of a three-family suite on its next round's aggregate, the candidate completed
100% but was 1.7-1.9% slower on `easy` and 2.7-3.2% slower on `tight`, families the champion
already drove without a fault (two training seeds), and a promotion that may not be slower
refused it.

What. Where the champion is already good, it is its own best teacher: ``champion_anchors`` lets
it drive the play tracks of the *mastered* families (every unlocked family but the frontier,
``evaluation.curriculum``) and keeps its (observation, action) rows from every car that stayed
on the track; ``anchor_sample`` draws ``share`` x the aggregate's rows of them for the merge
(``DaggerTrainer.merge``), deterministically from the merge's seed. They are not stored in the
aggregate: they are derived from the parent model and the tracks, which the version's metadata
names. This is self-distillation on the tasks already learned ("learning without forgetting",
Li & Hoiem 2016), restricted to behaviour that is measured to work. Measured on the candidate
above (same aggregate, two seeds; scratch script, not kept): at share 0.25 the candidate was
0.1-1.5% slower on the suite's common laps, at 0.5 0.0-0.7%, at 1.0 0.1-0.5% *faster*, still
completing 100% of the laps, including the frontier's that the champion failed.

The frontier family gets no anchors: there the champion still fails, and what the crowd teaches
is what the merge is for. With only ``easy`` unlocked nothing is mastered and a merge is as it
always was.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crowdlearning.learning.labels import LabelSet
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track import Track

__all__ = ["ANCHOR_SOURCE", "ANCHOR_TICKS", "ANCHOR_TRACKS_PER_FAMILY", "anchor_sample",
           "champion_anchors"]

ANCHOR_SOURCE = "champion-anchor"
ANCHOR_TRACKS_PER_FAMILY = 8  # play tracks of each mastered family the champion drives
ANCHOR_TICKS = 2000  # 100 s of driving from each track's start line
ANCHOR_START_SPEED_MPS = 8.0
ANCHOR_STALL_TICKS = 60  # a car that stopped advancing for 3 s did not "work" either


def champion_anchors(net: PolicyNet, tracks: Sequence[Track], *, ticks: int = ANCHOR_TICKS,
                     start_speed_mps: float = ANCHOR_START_SPEED_MPS) -> LabelSet:
    """The rows (observation, the net's own action) of ``net`` driving one car on each of
    ``tracks`` from its start line for ``ticks`` ticks; every row of a car that left the track
    or stalled (no progress for ``ANCHOR_STALL_TICKS``) is dropped: only behaviour that worked
    anchors anything."""
    if not tracks:
        return LabelSet.empty()
    n = len(tracks)
    policy = Policy(net)
    sim = RaceSim(list(tracks), n, max_steps=ticks, stall_ticks=ANCHOR_STALL_TICKS)
    sim.reset_cars(np.arange(n), track_index=np.arange(n), start_s_m=0.0,
                   speed_mps=start_speed_mps)
    observations, actions, cars = [], [], []
    exited = np.zeros(n, dtype=bool)
    while sim.alive.any():
        obs = sim.observe()
        act = policy.act(obs)
        alive = np.nonzero(sim.alive)[0]
        observations.append(obs[alive])
        actions.append(act[alive])
        cars.append(alive)
        exited |= sim.step(act).terminated
    car_of = np.concatenate(cars)
    keep = ~(exited | sim.stalled)[car_of]
    return LabelSet.from_actions(np.concatenate(observations)[keep],
                                 np.concatenate(actions)[keep], ANCHOR_SOURCE)


def anchor_sample(anchors: LabelSet, rows: int, seed: int) -> LabelSet:
    """``rows`` of ``anchors`` drawn without replacement (all of them when there are fewer),
    in their order; reproducible from ``seed``."""
    if rows <= 0 or not len(anchors):
        return LabelSet.empty()
    if rows >= len(anchors):
        return anchors
    pick = np.random.default_rng([seed, 0xA1C]).choice(len(anchors), rows, replace=False)
    return anchors.select(np.sort(pick))
