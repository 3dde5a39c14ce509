"""A model registry for races: the initial model (v0, the champion) and perturbed copies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.learning.dagger import BASE_DATA_ID
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.races.field import choose_field
from crowdlearning.races.runner import RacePlan, RaceRules, load_policies
from crowdlearning.races.schedule import TrackChoice
from crowdlearning.sim.track_gen import named_track

VERSIONS = 4


@pytest.fixture(scope="session")
def registry_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v0 = the initial model (champion); v1..v3 = small perturbations of it, each with one
    contribution ``c<v>`` (so v3's lineage holds c1, c2, c3)."""
    root = tmp_path_factory.mktemp("races-registry")
    registry = ModelRegistry(root)
    net, training = train_initial_model(0)
    meta = registry.register(net, parent_version=None, contributions=[BASE_DATA_ID],
                             training=training)
    registry.set_champion(meta.version)
    gen = torch.Generator().manual_seed(5)
    for v in range(1, VERSIONS):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=gen))
        registry.register(net, parent_version=v - 1, contributions=[f"c{v}"])
    return root


@pytest.fixture
def registry(registry_root: Path) -> ModelRegistry:
    return ModelRegistry(registry_root)


@pytest.fixture(scope="session")
def oval_policies(registry_root: Path) -> dict:
    return load_policies(ModelRegistry(registry_root), range(VERSIONS))


def oval_plan(cars: int = 3, laps: int = 1, seed: int = 11, **rules: object) -> RacePlan:
    """A short race on the oval (about 740 m a lap)."""
    entrants = choose_field(range(VERSIONS), 0, cars, seed)
    return RacePlan("r100", seed, 100.0, TrackChoice("named", 0, "oval"), tuple(entrants),
                    RaceRules(laps=laps, **rules))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def oval() -> object:
    return named_track("oval")
