"""Anchors: the champion's own driving where it drives well, added to a merge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crowdlearning.learning.anchors import ANCHOR_SOURCE, anchor_sample, champion_anchors
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.labels import LabelSet
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import TrainConfig, new_network
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.sim.params import CarParams
from crowdlearning.sim.track import Track

RADIUS_M = 60.0


def _circle(clockwise: bool) -> Track:
    t = np.linspace(0.0, 2 * np.pi, 377, endpoint=False) * (-1 if clockwise else 1)
    return Track("cw" if clockwise else "ccw",
                 np.c_[RADIUS_M * np.cos(t), RADIUS_M * np.sin(t)], 12.0)


def _constant(steer: float, throttle: float) -> PolicyNet:
    """A net that always outputs (steer, throttle)."""
    net = new_network(0)
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias[0], last.bias[1] = float(np.arctanh(steer)), float(np.arctanh(throttle))
    return net


def _left_circler(throttle: float = 0.05) -> PolicyNet:
    """Holds the steering angle of a left-hand circle of RADIUS_M at ``throttle``."""
    car = CarParams()
    return _constant(float(np.arctan(car.wheelbase_m / RADIUS_M) / car.max_steer_rad), throttle)


def test_anchors_keep_only_the_cars_that_stayed_on_the_track() -> None:
    # GIVEN a net that drives a left-hand circle, on a left-hand and a right-hand circle
    net = _left_circler()
    # WHEN it drives both for 200 ticks
    anchors = champion_anchors(net, [_circle(False), _circle(True)], ticks=200)
    # THEN only the car that stayed on its track is kept, every one of its 200 ticks,
    # labelled with the net's own action on that state
    assert len(anchors) == 200
    np.testing.assert_allclose(anchors.targets, Policy(net).act(anchors.observations),
                               atol=1e-6)
    assert anchors.mask.all() and (anchors.sources == ANCHOR_SOURCE).all()
    # and the one that left its track alone gives nothing
    assert len(champion_anchors(net, [_circle(True)], ticks=200)) == 0


def test_a_car_that_stops_anchors_nothing() -> None:
    # GIVEN a net that brakes to a standstill on a track it would otherwise stay on
    braking = _left_circler(throttle=-0.9)
    # THEN its parked driving is not behaviour to keep
    assert len(champion_anchors(braking, [_circle(False)], ticks=300)) == 0


def test_anchor_sample_is_reproducible_and_keeps_order() -> None:
    rows = LabelSet.from_actions(np.arange(100, dtype=np.float32)[:, None].repeat(18, 1),
                                 np.zeros((100, 2)), "a")
    a, b = anchor_sample(rows, 30, seed=7), anchor_sample(rows, 30, seed=7)
    assert len(a) == 30 and np.array_equal(a.observations, b.observations)
    assert np.all(np.diff(a.observations[:, 0]) > 0)  # in the anchors' order
    assert not np.array_equal(anchor_sample(rows, 30, seed=8).observations, a.observations)
    assert len(anchor_sample(rows, 500, seed=7)) == 100  # all of them when there are fewer
    assert len(anchor_sample(rows, 0, seed=7)) == 0


def _trainer(root: Path, share: float) -> DaggerTrainer:
    trainer = DaggerTrainer(ModelRegistry(root / "models"), AggregatedDataset(root / "data"),
                            train=TrainConfig(updates=40, seed=3), anchor_share=share)
    demos = LabelSet.from_actions(np.random.default_rng(0).uniform(-1, 1, (64, 18)),
                                  np.zeros((64, 2)), "demo")
    trainer.start(_left_circler(), demos, {"kind": "test"})
    return trainer


def _weights(net: PolicyNet) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in net.parameters()]


def test_a_merge_trains_on_the_parents_driving_of_the_anchor_tracks(tmp_path: Path) -> None:
    # GIVEN trainers with and without anchors, on the same aggregate
    anchored, plain = _trainer(tmp_path / "a", 0.5), _trainer(tmp_path / "b", 0.0)
    tracks = [_circle(False), _circle(True)]
    # WHEN each merges nothing new, given the same anchor tracks
    meta = anchored.merge([], anchor_tracks=tracks)
    plain_meta = plain.merge([], anchor_tracks=tracks)
    # THEN the anchored version's metadata says what it trained on: half the aggregate's rows
    # of the parent's own driving where it stayed on the track, and which tracks
    info = meta.training["anchors"]
    assert info["rows"] == 32 and info["share"] == 0.5
    assert info["tracks"] == [t.digest for t in tracks]
    assert 0 < info["rows_driven"] <= 2000  # the car that left its track is not in it
    # and the share 0 trainer's merge is the merge it always was (no anchors recorded)
    assert "anchors" not in plain_meta.training
    assert not all(np.array_equal(x, y) for x, y in
                   zip(_weights(anchored.registry.load(meta.version)[0]),
                       _weights(plain.registry.load(plain_meta.version)[0]), strict=True))


def test_without_anchor_tracks_an_anchored_trainer_merges_as_before(tmp_path: Path) -> None:
    anchored, plain = _trainer(tmp_path / "a", 1.0), _trainer(tmp_path / "b", 0.0)
    meta, plain_meta = anchored.merge([]), plain.merge([])
    assert "anchors" not in meta.training
    for x, y in zip(_weights(anchored.registry.load(meta.version)[0]),
                    _weights(plain.registry.load(plain_meta.version)[0]), strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_share_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="anchor_share"):
        DaggerTrainer(ModelRegistry(tmp_path / "m"), AggregatedDataset(tmp_path / "d"),
                      anchor_share=-1.0)
