"""Model versions: history with metrics and lineage; the champion's weights to download."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from crowdlearning.policy.checkpoint import WEIGHTS_FILE
from crowdlearning.server.deps import RuntimeDep
from crowdlearning.server.errors import documented
from crowdlearning.server.schemas import ModelPublic

router = APIRouter(prefix="/api/models", tags=["models"])
_ONE = documented("invalid_input", "unknown_model")
_FILE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                "format": "binary"}}},
          "description": "The file."},
    **_ONE}


@router.get("")
def versions(runtime: RuntimeDep) -> list[ModelPublic]:
    registry = runtime.trainer.registry
    champion = registry.champion
    return [_public(runtime, v, champion) for v in registry.versions()]


@router.get("/{version}", responses=_ONE)
def version(version: int, runtime: RuntimeDep) -> dict:
    registry = runtime.trainer.registry
    meta = registry.meta(version)
    return {**_public(runtime, version, registry.champion).model_dump(),
            "lineage": [m.version for m in registry.lineage(version)],
            "architecture": meta.architecture, "observation_fields": meta.observation_fields,
            "weights_sha256": meta.weights_sha256,
            "contribution_ids": meta.contributions[-50:]}


@router.get("/{version}/weights", response_class=FileResponse, responses=_FILE)
def weights(version: int, runtime: RuntimeDep) -> FileResponse:
    """The safetensors weights (no pickles); ``meta.json`` is ``GET /api/models/{version}``."""
    runtime.trainer.registry.meta(version)  # 404 for an unknown version
    path = runtime.trainer.registry.root / f"v{version:05d}" / WEIGHTS_FILE
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"crowdlearning-v{version}.safetensors")


@router.get("/{version}/onnx", response_class=FileResponse, responses=_FILE)
def onnx(version: int, runtime: RuntimeDep) -> FileResponse:
    """The version as an ONNX model: ``observation[batch, 18]`` -> ``action[batch, 2]``; its
    metadata names the observation fields and the weights' SHA-256. Exported on first request
    (about 2 s, in a worker thread) and kept."""
    runtime.trainer.registry.meta(version)  # 404 for an unknown version
    path = runtime.trainer.registry.onnx_path(version)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"crowdlearning-v{version}.onnx")


def _public(runtime: RuntimeDep, v: int, champion: int | None) -> ModelPublic:
    meta = runtime.trainer.registry.meta(v)
    return ModelPublic(version=v, parent_version=meta.parent_version, champion=v == champion,
                       created_at=meta.created_at, contributions=len(meta.contributions),
                       training=meta.training, metrics=meta.metrics)
