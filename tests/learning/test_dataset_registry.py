"""The append-only dataset and the model registry's lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdlearning.learning.dataset import AggregatedDataset, DatasetError
from crowdlearning.learning.labels import LabelSet
from crowdlearning.learning.registry import ModelRegistry, RegistryError
from crowdlearning.learning.train import new_network
from crowdlearning.policy.checkpoint import CheckpointError, load_checkpoint


def _labels(n: int, source: str, value: float = 0.1) -> LabelSet:
    rng = np.random.default_rng(n)
    return LabelSet.from_actions(rng.normal(size=(n, 18)), np.full((n, 2), value), source)


def test_dataset_appends_and_reloads_in_order(tmp_path: Path) -> None:
    ds = AggregatedDataset(tmp_path)
    ds.append("c1", "alice", _labels(5, "c1"))
    ds.append("c2", "bob", _labels(7, "c2"))
    again = AggregatedDataset(tmp_path)  # a new process sees the same data
    assert again.contribution_ids == ["c1", "c2"]
    assert len(again) == 12
    assert list(again.load(["c2"]).sources) == ["c2"] * 7
    assert again.digest() == ds.digest() != ds.digest(["c1"])


def test_dataset_refuses_a_second_append_of_the_same_contribution(tmp_path: Path) -> None:
    ds = AggregatedDataset(tmp_path)
    ds.append("c1", "alice", _labels(5, "c1"))
    with pytest.raises(DatasetError, match="already"):
        ds.append("c1", "alice", _labels(3, "c1"))
    assert len(ds) == 5


def test_dataset_detects_a_tampered_shard(tmp_path: Path) -> None:
    ds = AggregatedDataset(tmp_path)
    entry = ds.append("c1", "alice", _labels(5, "c1"))
    shard = tmp_path / "shards" / entry["file"]
    shard.write_bytes(shard.read_bytes()[:-3] + b"xyz")
    with pytest.raises(DatasetError, match="hash"):
        ds.load()


def test_a_shard_without_index_line_is_ignored(tmp_path: Path) -> None:
    # GIVEN a crash after the shard was written but before its index line
    ds = AggregatedDataset(tmp_path)
    ds.append("c1", "alice", _labels(5, "c1"))
    (tmp_path / "shards" / "0000001-c2.npz").write_bytes(b"half-written")
    # THEN the dataset holds only what was committed
    assert AggregatedDataset(tmp_path).contribution_ids == ["c1"]


def test_registry_keeps_lineage_and_contributions(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    v0 = reg.register(new_network(0), parent_version=None, contributions=["base"])
    v1 = reg.register(new_network(1), parent_version=v0.version, contributions=["a", "b"])
    v2 = reg.register(new_network(2), parent_version=v1.version, contributions=["c"])
    side = reg.register(new_network(3), parent_version=v0.version, contributions=["d"])
    assert [m.version for m in reg.lineage(v2.version)] == [2, 1, 0]
    assert reg.contributions_in(v2.version) == ["base", "a", "b", "c"]
    assert reg.contributions_in(side.version) == ["base", "d"]
    assert reg.version_of_contribution("b") == 1
    assert reg.version_of_contribution("zzz") is None
    reg.set_champion(2)
    assert ModelRegistry(tmp_path).champion == 2
    with pytest.raises(RegistryError, match="parent version 9"):
        reg.register(new_network(0), parent_version=9)


def test_checkpoint_weights_reload_exactly_and_tampering_is_caught(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path)
    net = new_network(5)
    meta = reg.register(net, parent_version=None)
    loaded, meta2 = reg.load(meta.version)
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert a.equal(b), k
    assert meta2.weights_sha256 == meta.weights_sha256 and len(meta.weights_sha256) == 64
    weights = tmp_path / "v00000" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "v00000")
