"""Each run's reaction delay, estimated from the run itself.

An input answering frame ``k`` was decided on what the player saw some ticks earlier: about
200-300 ms for a person (4-6 ticks at 20 Hz), varying with the person, the device and the
display. One global ``reaction_delay_ticks`` fits nobody, and a label put on the wrong state
teaches the wrong thing: a player who steers well but late looks, to the verdict, like a player
who steers badly (measured in ``docs/verdict.md``: uncorrected late players are penalized).

``estimate_reaction_delay`` picks the delay ``d`` in ``0..max_delay`` for which the run's
steering inputs best match (least mean squared difference) what the scripted expert wanted on the
state ``d`` ticks before the frame each input answered. The expert (pure pursuit on ground truth,
``sim.expert``) is the reference because it is the best available account of what a good driver
wants on a state; the estimate only moves labels in time, and the verdict still measures their
effect, so a wrong estimate costs the player, not the model. Runs with fewer than ``MIN_INPUTS``
steering corrections get no estimate (the configured delay applies).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.spatial import cKDTree

from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.labels import DELAY_META_KEY, correction_ticks
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.params import CarParams
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_bank import TrackBank

__all__ = ["MIN_INPUTS", "estimate_reaction_delay", "expert_steer", "with_estimated_delay"]

# corrections needed before a run's own delay is trusted over the configured one. Measured on
# keyboard players of 150-250 ms (label mode, runs cut to 5-60 s, 177 estimates): with 20-79
# corrections 18 of 93 estimates were 6-11 ticks (a person's 300-550 ms), with 80 or more none
# of 84 was above 6. One such estimate (10 ticks from 36 corrections, a 3-s run) put an honest
# keyboard player's labels on the wrong states and the run was judged worse (docs/verdict.md)
MIN_INPUTS = 80


def expert_steer(track: Track, states: np.ndarray, car: CarParams | None = None) -> np.ndarray:
    """What the expert would steer on each recorded state (``states``: x, y, yaw, speed, steer)."""
    bank = TrackBank.build([track])
    pose = np.asarray(states, np.float64)
    # the nearest centreline point of each state, searched globally (tracks never overlap, so
    # the nearest point of a car on the track is its own part of the track)
    _, idx = cKDTree(bank.centre).query(pose[:, :2])
    actions = ExpertDriver().act_on(bank, car or CarParams(), pose,
                                    np.asarray(idx, np.int64), np.zeros(len(pose), np.int64))
    return actions[:, 0]


def estimate_reaction_delay(contribution: Contribution, track: Track, *, max_delay: int = 15,
                            min_inputs: int = MIN_INPUTS) -> int | None:
    """The run's delay in ticks (see the module docstring), or None with too little evidence.

    Only the player's *corrections* are read (``labels.correction_ticks``): where a player
    agrees with the car their input says nothing about when they reacted, and a copier's input
    (the car's own steering, which itself lags a good driver) would otherwise be read as a late
    reaction and shifted onto the wrong states.
    """
    c = contribution
    rows = np.flatnonzero(correction_ticks(c))
    answered = c.input_tick[rows] - c.ticks[0]
    keep = (answered >= max_delay) & (answered < c.num_ticks)
    rows, answered = rows[keep], answered[keep]
    if len(rows) < min_inputs:
        return None
    wanted = expert_steer(track, c.states)
    steer = c.player[rows, 0]
    errors = [float(np.mean((steer - wanted[answered - d]) ** 2)) for d in range(max_delay + 1)]
    return int(np.argmin(errors))  # ties: the smallest delay


def with_estimated_delay(contribution: Contribution, track: Track, *, max_delay: int = 15,
                         min_inputs: int = MIN_INPUTS) -> Contribution:
    """The contribution with its estimated delay in ``meta``; without an estimate, with none
    (a delay that came with the contribution is never trusted)."""
    delay = estimate_reaction_delay(contribution, track, max_delay=max_delay,
                                    min_inputs=min_inputs)
    meta = {k: v for k, v in contribution.meta.items() if k != DELAY_META_KEY}
    if delay is not None:
        meta[DELAY_META_KEY] = delay
    return replace(contribution, meta=meta)
