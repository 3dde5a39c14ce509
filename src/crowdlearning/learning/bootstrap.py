"""The initial model: behaviour cloning on a little expert driving, deliberately undertrained.

Reproducible from a seed: the expert drives ``INITIAL_DEMO_TICKS`` ticks on play track
``INITIAL_DEMO_TRACKS``, and a fresh network is fitted for ``INITIAL_UPDATES`` steps. The result
drives, but leaves the track on the harder corners of unseen tracks: there is something for the
crowd to fix (its lap completion on the hidden suite is measured in the demo report).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crowdlearning.learning.labels import LabelSet
from crowdlearning.learning.train import TrainConfig, fit, new_network
from crowdlearning.policy.network import PolicyNet
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track_gen import generate_track

__all__ = ["expert_demonstrations", "train_initial_model"]

INITIAL_DEMO_TRACKS = (100,)
INITIAL_DEMO_TICKS = 600
INITIAL_UPDATES = 300


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


def train_initial_model(seed: int = 0) -> tuple[PolicyNet, dict]:
    """The version-0 model and how it was made (for its metadata)."""
    demo = expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS)
    config = TrainConfig(updates=INITIAL_UPDATES, seed=seed)
    net = fit(new_network(seed), demo, config)
    return net, {"kind": "behaviour-cloning", "demo_tracks": list(INITIAL_DEMO_TRACKS),
                 "demo_ticks": INITIAL_DEMO_TICKS, "labels": len(demo), **config.to_dict()}
