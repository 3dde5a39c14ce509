"""A champion to judge against: the initial model, started on its expert demonstrations."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import TrainConfig


def started_trainer(root: Path) -> DaggerTrainer:
    """A trainer under ``root`` with the initial model as its champion (merges: 20 updates)."""
    t = DaggerTrainer(ModelRegistry(root / "m"), AggregatedDataset(root / "d"),
                      train=TrainConfig(updates=20))
    net, training = train_initial_model(0)
    t.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    return t


@pytest.fixture
def trainer(tmp_path: Path) -> DaggerTrainer:
    return started_trainer(tmp_path)
