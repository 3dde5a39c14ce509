"""DAgger end to end on one machine: good corrections on a bad corner fix that corner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.session import PlayerInputs, SessionBatch, SessionSpec
from crowdlearning.learning.train import TrainConfig
from crowdlearning.policy.network import Policy
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track_gen import generate_track


def _first_exit(policy: Policy, track, start_s: float, ticks: int = 1500) -> float | None:
    """Where (arc length from the start) the policy leaves the track, or None."""
    sim = RaceSim([track], 1, max_steps=ticks)
    sim.reset_cars(np.array([0]), start_s_m=start_s, speed_mps=8.0)
    while sim.alive[0]:
        out = sim.step(policy.act(sim.observe()))
        if out.terminated[0]:
            return float(sim.progress_m[0])
    return None


@pytest.mark.slow
def test_expert_corrections_on_a_bad_corner_fix_that_corner(tmp_path: Path) -> None:
    # GIVEN the initial model and a play track where it leaves the track at some corner
    net, training = train_initial_model(0)
    trainer = DaggerTrainer(ModelRegistry(tmp_path / "m"), AggregatedDataset(tmp_path / "d"),
                            train=TrainConfig(updates=1500))
    trainer.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    before = trainer.policy()
    found = None
    for seed in range(1000, 1040):
        track = generate_track(seed)
        exit_at = _first_exit(before, track, 0.0)
        if exit_at is not None and exit_at > 100:
            found = (track, exit_at)
            break
    assert found is not None, "the initial model should leave some track"
    track, exit_at = found
    # WHEN expert players label that corner in several short sessions starting before it
    rng = np.random.default_rng(1)
    specs = [SessionSpec(f"p{k}", f"s{k}", track, start_s_m=max(exit_at - d, 0.0), beta=0.5)
             for k, d in enumerate((90, 70, 50, 30, 80, 60))]
    batch = SessionBatch(before, specs, model_version=0, max_ticks=160)
    expert = make_persona("expert", rng)
    while not batch.done:
        act, tick, held = expert.act(batch.frame(), np.arange(len(specs)))
        batch.advance(PlayerInputs(act, tick, held))
    meta = trainer.merge(batch.contributions())
    # THEN the new version drives through the corner where the old one left
    after_exit = _first_exit(trainer.policy(), track, 0.0)
    assert after_exit is None or after_exit > exit_at + 50, (exit_at, after_exit)
    assert meta.parent_version == 0
    assert set(meta.contributions) == {f"s{k}" for k in range(6)}
