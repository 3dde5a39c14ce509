"""The initial model: behaviour cloning on a little expert driving, deliberately undertrained.

Reproducible from a seed: the expert drives ``INITIAL_DEMO_TICKS`` ticks on play track
``INITIAL_DEMO_TRACKS``, and a fresh network is fitted for ``INITIAL_UPDATES`` steps. The result
drives, but leaves the track on the harder corners of unseen tracks: there is something for the
crowd to fix (its lap completion on the hidden suite is measured in the demo report).

It must drive badly, never not at all. Cloned from so little driving, the network learns "corner
ahead: brake" without the speed that qualifies it: braking into a corner it stops and keeps
braking, and a parked car teaches nothing and shows a player nothing (33 of 64 runs of the old
version stood still for more than 3 s on the play tracks). So the clone is made stall-proof by a
DAgger restricted to that one failure: the network drives ``STALL_CARS`` cars on the
``STALL_TRACKS``; the expert labels the states where it went slower than ``STALL_SPEED_MPS``
(at most ``STALL_LABELS`` per round); the network is refitted from scratch on demonstrations plus
those labels, until a round finds no slow state (at most ``STALL_ROUNDS``). Only slow states are
labelled, so its other mistakes (late braking, wide lines, leaving the track in hard corners)
stay for the crowd.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crowdlearning.learning.labels import LabelSet
from crowdlearning.learning.train import TrainConfig, fit, new_network
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track_gen import generate_track

__all__ = ["expert_demonstrations", "train_initial_model"]

INITIAL_DEMO_TRACKS = (100,)
INITIAL_DEMO_TICKS = 600
INITIAL_UPDATES = 300
STALL_TRACKS = tuple(range(100, 108))  # play seeds no player is sent to by default
STALL_CARS = 32
STALL_TICKS = 600
STALL_SPEED_MPS = 3.0
STALL_LABELS = 1000
STALL_ROUNDS = 6


def expert_demonstrations(
    track_seeds: Sequence[int], ticks: int, *, start_s_m: Sequence[float] | None = None,
    start_speed_mps: float = 8.0, max_labels: int | None = None, source: str = "expert",
) -> LabelSet:
    """The expert driving its own states: (observation, expert action) rows, tick-major order.

    With ``max_labels`` the rows are cut at exactly that many (behaviour-cloning budgets).
    """
    tracks = [generate_track(int(s)) for s in track_seeds]
    n = len(tracks)
    sim = RaceSim(tracks, n, max_steps=ticks)
    sim.reset_cars(np.arange(n), track_index=np.arange(n),
                   start_s_m=0.0 if start_s_m is None else np.asarray(start_s_m),
                   speed_mps=start_speed_mps)
    expert, obs, acts = ExpertDriver(), [], []
    while sim.alive.any():
        o, a, alive = sim.observe(), expert.act(sim), sim.alive.copy()
        obs.append(o[alive])
        acts.append(a[alive])
        sim.step(a)
    labels = LabelSet.from_actions(np.concatenate(obs), np.concatenate(acts), source)
    return labels if max_labels is None else labels.select(np.arange(min(max_labels,
                                                                          len(labels))))


def slow_state_labels(net: PolicyNet, track_seeds: Sequence[int], cars: int, ticks: int, *,
                      seed: int, max_speed_mps: float = STALL_SPEED_MPS) -> LabelSet:
    """The expert's throttle on the states where ``net``, driving ``cars`` cars from seeded
    places at 6-10 m/s, went slower than ``max_speed_mps`` (steering unlabelled: the
    stall-proofing teaches to drive on, not to steer)."""
    policy = Policy(net)
    tracks = [generate_track(int(s)) for s in track_seeds]
    rng = np.random.default_rng(seed)
    on = np.arange(cars) % len(tracks)
    lengths = np.array([t.length_m for t in tracks])[on]
    sim = RaceSim(tracks, cars, max_steps=ticks)
    sim.reset_cars(np.arange(cars), track_index=on, start_s_m=rng.uniform(0.0, 1.0, cars) * lengths,
                   speed_mps=rng.uniform(6.0, 10.0, cars))
    expert, obs, acts = ExpertDriver(), [], []
    while sim.alive.any():
        o, wanted = sim.observe(), expert.act(sim)
        slow = sim.alive & (sim.pose[:, 3] < max_speed_mps)
        obs.append(o[slow])
        acts.append(wanted[slow])
        sim.step(policy.act(o))
    labels = LabelSet.from_actions(np.concatenate(obs), np.concatenate(acts), "expert-slow")
    labels.mask[:, 0] = False
    return labels


def train_initial_model(seed: int = 0) -> tuple[PolicyNet, dict]:
    """The version-0 model and how it was made (for its metadata): behaviour cloning, then
    stall-proofing (see the module docstring)."""
    labels = expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)
    config = TrainConfig(updates=INITIAL_UPDATES, seed=seed)
    net = fit(new_network(seed), labels, config)
    rounds = []
    for r in range(STALL_ROUNDS):
        slow = slow_state_labels(net, STALL_TRACKS, STALL_CARS, STALL_TICKS,
                                 seed=seed * STALL_ROUNDS + r)
        rounds.append(len(slow))
        if not len(slow):
            break
        if len(slow) > STALL_LABELS:
            pick = np.random.default_rng([seed, r]).choice(len(slow), STALL_LABELS, replace=False)
            slow = slow.select(np.sort(pick))
        labels = LabelSet.concat([labels, slow])
        net = fit(new_network(seed), labels, config)
    return net, {"kind": "behaviour-cloning", "demo_tracks": list(INITIAL_DEMO_TRACKS),
                 "demo_ticks": INITIAL_DEMO_TICKS, "labels": len(labels),
                 "stall_proofing": {"tracks": list(STALL_TRACKS), "slow_states": rounds,
                                    "below_mps": STALL_SPEED_MPS},
                 **config.to_dict()}
