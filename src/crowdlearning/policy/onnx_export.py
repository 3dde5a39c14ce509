"""ONNX export of a policy: the model to run outside Python (browsers, robots, other runtimes).

The graph maps ``observation`` (float32, shape ``[batch, obs_dim]``, the fields named in the
model's metadata, in order) to ``action`` (float32, ``[batch, 2]``: steer, throttle in [-1, 1]).
The batch dimension is dynamic. The checkpoint's metadata (version, parent, observation fields,
weights hash) is copied into the ONNX model's ``metadata_props`` so that a file found on its own
still says what it is and which weights it came from.

Exported with ``torch.onnx.export(dynamo=True)`` (torch's maintained exporter; it needs ``onnx``
and ``onnxscript``). The result is written atomically: a concurrent reader sees the whole file or
none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import torch

from crowdlearning.policy.checkpoint import ModelMeta
from crowdlearning.policy.network import PolicyNet

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx"]

INPUT_NAME = "observation"
OUTPUT_NAME = "action"
OPSET = 18


def export_onnx(net: PolicyNet, meta: ModelMeta, path: str | Path) -> Path:
    """Write ``net`` as an ONNX model to ``path`` (atomic replace); return the path."""
    import onnx  # imported here: only this path needs it, and it is slow to import

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, net.arch.obs_dim)
    with _quiet_exporter():
        program = torch.onnx.export(
            net.eval(), (example,), dynamo=True, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"obs": {0: torch.export.Dim("batch")}}, verbose=False)
    model = program.model_proto
    props = {
        "crowdlearning.version": str(meta.version),
        "crowdlearning.parent_version": json.dumps(meta.parent_version),
        "crowdlearning.observation_fields": json.dumps(meta.observation_fields),
        "crowdlearning.action_fields": json.dumps(["steer", "throttle"]),
        "crowdlearning.weights_sha256": meta.weights_sha256,
    }
    onnx.helper.set_model_props(model, props)
    model.doc_string = (f"CrowdLearning driving policy v{meta.version}: "
                        f"{INPUT_NAME}[batch,{net.arch.obs_dim}] -> {OUTPUT_NAME}[batch,2]")
    onnx.checker.check_model(model)
    fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter warns about optional packages (torchvision) and its own deprecations; none
    of it is about our model, and a server's log is no place for it. Errors still raise."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
