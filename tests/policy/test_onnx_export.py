"""ONNX export: the exported graph drives exactly like the policy, for any batch size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from crowdlearning.learning.registry import ONNX_FILE, ModelRegistry
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.policy.onnx_export import INPUT_NAME, OUTPUT_NAME


def test_exported_model_matches_the_policy_and_carries_its_metadata(tmp_path: Path) -> None:
    # GIVEN a registered (random-weight) model
    torch.manual_seed(3)
    registry = ModelRegistry(tmp_path)
    meta = registry.register(PolicyNet(), parent_version=None)
    # WHEN it is exported and run by onnxruntime on batches of several sizes
    path = registry.onnx_path(meta.version)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net, _ = registry.load(meta.version)
    policy = Policy(net)
    rng = np.random.default_rng(0)
    for batch in (1, 7, 300):
        obs = rng.normal(size=(batch, net.arch.obs_dim)).astype(np.float32)
        (action,) = session.run([OUTPUT_NAME], {INPUT_NAME: obs})
        # THEN it agrees with the policy's own inference
        assert action.shape == (batch, 2)
        np.testing.assert_allclose(action, policy.act(obs), atol=1e-5)
    # AND the file says what it is
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["crowdlearning.version"] == str(meta.version)
    assert props["crowdlearning.weights_sha256"] == meta.weights_sha256
    assert json.loads(props["crowdlearning.observation_fields"]) == meta.observation_fields


def test_export_is_made_once_and_kept(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    meta = registry.register(PolicyNet(), parent_version=None)
    first = registry.onnx_path(meta.version)
    stamp = first.stat().st_mtime_ns
    again = registry.onnx_path(meta.version)
    assert again == first == tmp_path / f"v{meta.version:05d}" / ONNX_FILE
    assert again.stat().st_mtime_ns == stamp
    assert registry.versions() == [meta.version]  # the export is not mistaken for a version
