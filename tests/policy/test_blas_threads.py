"""``single_threaded_blas``: a ``Policy`` runs numpy's OpenBLAS on one thread in any process,
however it was started (issue 13.4); an explicit ``OPENBLAS_NUM_THREADS`` wins."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import numpy as np
from threadpoolctl import threadpool_info
from crowdlearning.policy.network import Policy, PolicyNet
def threads():
    return max(i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas")
before = threads()
Policy(PolicyNet())
print(before, threads())
"""


def _threads(env: dict[str, str]) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_a_policy_pins_openblas_to_one_thread_unless_told_otherwise() -> None:
    base = {k: v for k, v in os.environ.items()
            if k not in {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"}}
    before, after = _threads(base | {"OMP_NUM_THREADS": "2"})  # OpenBLAS reads OMP too
    assert (before, after) == (2, 1)
    assert _threads(base | {"OPENBLAS_NUM_THREADS": "2"}) == (2, 2)
