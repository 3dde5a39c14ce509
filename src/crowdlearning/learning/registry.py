"""The model registry: every version kept, with its lineage and the contributions it absorbed.

Layout under ``root``::

    v00000/weights.safetensors, v00000/meta.json   one checkpoint per version
    v00000/policy.onnx                             its ONNX export, made on first request
    champion.json                                  {"version": N}, replaced atomically

A version number is claimed by creating its directory (atomic on every filesystem), so two
writers never get the same number. ``ModelMeta.contributions`` lists the contributions merged
into that version; a version's full data is the union along its lineage.

A **team fork** (``races/forks.py``; ``training["kind"] == FORK_KIND``) is a version trained on
one race-league team's data only. It races, and that is all: it is never the champion
(``set_champion`` refuses it), never a merge's parent, and not where a contribution was merged
(``version_of_contribution``); ``mainline_versions`` are the others.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crowdlearning.errors import CrowdLearningError
from crowdlearning.policy.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from crowdlearning.policy.network import PolicyNet
from crowdlearning.sim.observation import observation_fields
from crowdlearning.sim.params import SensorParams

__all__ = ["FORK_KIND", "ONNX_FILE", "ModelRegistry", "RegistryError", "is_fork"]

ONNX_FILE = "policy.onnx"
FORK_KIND = "team_fork"  # ``ModelMeta.training["kind"]`` of a team fork (``races/forks.py``)
_onnx_lock = threading.Lock()  # one export at a time per process (each takes ~2 s of CPU)


class RegistryError(CrowdLearningError):
    """A version is unknown, or the registry is inconsistent."""


def is_fork(meta: ModelMeta) -> bool:
    """Whether the version is a team fork (see the module docstring)."""
    return meta.training.get("kind") == FORK_KIND


class ModelRegistry:
    """Versioned models on disk (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._forks: dict[int, bool] = {}  # version -> is a team fork (a version never changes)

    def _dir(self, version: int) -> Path:
        return self.root / f"v{version:05d}"

    def versions(self) -> list[int]:
        found = []
        for p in self.root.glob("v[0-9]*"):
            if (p / "meta.json").is_file():
                found.append(int(p.name[1:]))
        return sorted(found)

    def is_fork(self, version: int) -> bool:
        """Whether ``version`` is a team fork (unknown version: ``RegistryError``)."""
        if version not in self._forks:
            self._forks[version] = is_fork(self.meta(version))
        return self._forks[version]

    def mainline_versions(self) -> list[int]:
        """The versions that are not team forks: the champions and the candidates."""
        return [v for v in self.versions() if not self.is_fork(v)]

    def register(
        self,
        net: PolicyNet,
        *,
        parent_version: int | None,
        contributions: list[str] | tuple[str, ...] = (),
        dataset_digest: str | None = None,
        training: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> ModelMeta:
        """Store ``net`` as the next version; return its metadata."""
        if parent_version is not None and parent_version not in self.versions():
            raise RegistryError(f"parent version {parent_version} is not in the registry")
        version = self._claim_version()
        meta = ModelMeta(
            version=version, parent_version=parent_version, architecture=net.arch.to_dict(),
            observation_fields=observation_fields(SensorParams()),
            training=dict(training or {}), contributions=list(contributions),
            dataset_digest=dataset_digest, metrics=dict(metrics or {}),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        return save_checkpoint(self._dir(version), net, meta)

    def _claim_version(self) -> int:
        version = (max(self.versions(), default=-1) + 1)
        while True:
            try:
                self._dir(version).mkdir()
                return version
            except FileExistsError:
                version += 1

    def load(self, version: int) -> tuple[PolicyNet, ModelMeta]:
        if version not in self.versions():
            raise RegistryError(f"unknown model version {version}")
        return load_checkpoint(self._dir(version))

    def meta(self, version: int) -> ModelMeta:
        path = self._dir(version) / "meta.json"
        if not path.is_file():
            raise RegistryError(f"unknown model version {version}")
        return ModelMeta.from_json(path.read_text())

    def lineage(self, version: int) -> list[ModelMeta]:
        """The version, its parent, and so on back to the first model."""
        chain, seen = [], set()
        current: int | None = version
        while current is not None:
            if current in seen:
                raise RegistryError(f"lineage of version {version} loops at {current}")
            seen.add(current)
            meta = self.meta(current)
            chain.append(meta)
            current = meta.parent_version
        return chain

    def contributions_in(self, version: int) -> list[str]:
        """Every contribution whose data the version has seen, oldest first."""
        ids: list[str] = []
        for meta in reversed(self.lineage(version)):
            ids.extend(meta.contributions)
        return ids

    def version_of_contribution(self, contribution_id: str) -> int | None:
        """The first version a contribution was merged into, if any (team forks, which only
        reuse merged data, are not where anything was merged)."""
        for v in self.mainline_versions():
            if contribution_id in self.meta(v).contributions:
                return v
        return None

    def onnx_path(self, version: int) -> Path:
        """The version's ONNX export (``crowdlearning.policy.onnx_export``), exported once and
        kept beside its weights: a version never changes, so neither does its export."""
        from crowdlearning.policy.onnx_export import export_onnx  # needs onnx: import on use

        path = self._dir(version) / ONNX_FILE
        with _onnx_lock:
            if not path.is_file():
                net, meta = self.load(version)
                export_onnx(net, meta, path)
        return path

    @property
    def champion(self) -> int | None:
        path = self.root / "champion.json"
        return json.loads(path.read_text())["version"] if path.is_file() else None

    def set_champion(self, version: int) -> None:
        if version not in self.versions():
            raise RegistryError(f"unknown model version {version}")
        if self.is_fork(version):
            raise RegistryError(f"version {version} is a team fork: it races, it is never the "
                                "champion")
        tmp = self.root / "champion.json.tmp"
        tmp.write_text(json.dumps({"version": version}))
        os.replace(tmp, self.root / "champion.json")
