"""Checkpoints: weights in safetensors plus JSON metadata; nothing pickled, safe to ship.

Layout of a checkpoint directory::

    weights.safetensors   the state dict (tensors only)
    meta.json             ModelMeta: version, parent, architecture, training data, hashes

Loading checks the weights' SHA-256 against the metadata and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from crowdlearning.errors import CrowdLearningError
from crowdlearning.policy.network import Architecture, PolicyNet

__all__ = ["CheckpointError", "ModelMeta", "load_checkpoint", "save_checkpoint"]

WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"


class CheckpointError(CrowdLearningError):
    """A checkpoint is missing, corrupt, or does not match its metadata."""


@dataclass(frozen=True)
class ModelMeta:
    """What a model version is and where it came from."""

    version: int
    parent_version: int | None
    architecture: dict[str, Any]
    observation_fields: list[str]
    training: dict[str, Any] = field(default_factory=dict)  # seed, epochs, lr, samples...
    contributions: list[str] = field(default_factory=list)  # ids merged into THIS version
    dataset_digest: str | None = None
    weights_sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"malformed model metadata: {exc}") from exc


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_checkpoint(directory: str | Path, net: PolicyNet, meta: ModelMeta) -> ModelMeta:
    """Write weights and metadata (with the weights' hash) atomically; return the stored meta."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (WEIGHTS_FILE + ".tmp")
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(tmp))
    digest = _sha256(tmp)
    os.replace(tmp, out / WEIGHTS_FILE)
    stored = ModelMeta(**{**asdict(meta), "weights_sha256": digest,
                          "architecture": net.arch.to_dict()})
    tmp_meta = out / (META_FILE + ".tmp")
    tmp_meta.write_text(stored.to_json())
    os.replace(tmp_meta, out / META_FILE)
    return stored


def load_checkpoint(directory: str | Path) -> tuple[PolicyNet, ModelMeta]:
    """Read a checkpoint; raise ``CheckpointError`` if anything is missing or altered."""
    src = Path(directory)
    weights, meta_path = src / WEIGHTS_FILE, src / META_FILE
    if not weights.is_file() or not meta_path.is_file():
        raise CheckpointError(f"no checkpoint in {src} (need {WEIGHTS_FILE} and {META_FILE})")
    meta = ModelMeta.from_json(meta_path.read_text())
    if _sha256(weights) != meta.weights_sha256:
        raise CheckpointError(f"weights in {src} do not match the hash in their metadata")
    net = PolicyNet(Architecture.from_dict(meta.architecture))
    try:
        net.load_state_dict(load_file(str(weights)))
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"weights in {src} do not fit the architecture: {exc}") from exc
    return net, meta
