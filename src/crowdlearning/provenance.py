"""What produced a report: the code (a digest of the package's source) and the settings.

A market run is deterministic from its seed *and its program*. Reports compared across sessions
were once produced by different code without saying so (docs/verdict.md, "A baseline at the
code as it stands"): every report of a long run now records which source and which settings
made it, so two reports can be checked to compare like with like
(``bench/market_targets.py`` refuses to total reports of different programs unless told).

The same program replays a run exactly only on the same kind of CPU: numpy and torch pick their
arithmetic by the CPU (AVX-512 or AVX2), which moves the scripted players' and the policy's
actions by an ulp and a chaotic run onto another path (``docs/simulator.md``, "The same
trajectory on every CPU"). Reports therefore also record ``machine``: not part of the program
(runs on two kinds are equally valid samples), but what a rerun must match to reproduce one.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from crowdlearning.config import Settings

__all__ = ["changed_settings", "code_identity", "machine_identity", "numpy_simd", "run_provenance"]

PACKAGE_DIR = Path(__file__).resolve().parent
# setting names that may carry a credential even when not typed as a secret (database URLs
# with a password, keys, tokens): never written into a report
_CREDENTIAL_WORDS = frozenset(("url", "urls", "key", "keys", "token", "password", "secret",
                               "dsn", "credential", "credentials"))


def code_identity(package_dir: Path = PACKAGE_DIR) -> dict[str, str | bool | None]:
    """``source_sha256``: a digest of every ``.py`` file of the package (relative path and
    bytes, in path order), the same for the same code whatever the checkout; ``git_commit`` and
    ``git_dirty`` when the package lies in a git work tree (else None)."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    commit: str | None = None
    dirty: bool | None = None
    try:
        commit = _git(package_dir, "rev-parse", "HEAD")
        dirty = bool(_git(package_dir, "status", "--porcelain", "--", "."))
    except (OSError, subprocess.SubprocessError):
        pass  # not a git work tree, or no git: the digest alone names the code
    return {"source_sha256": digest.hexdigest(), "git_commit": commit, "git_dirty": dirty}


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10,
                         check=True)
    return out.stdout.strip()


def changed_settings(settings: Settings) -> dict[str, object]:
    """The settings set away from their defaults, as JSON values, by name. Secrets and any
    setting whose name says it may carry a credential are left out (their names too)."""
    defaults = Settings.model_construct()
    out: dict[str, object] = {}
    for name, info in Settings.model_fields.items():
        if info.annotation is SecretStr or _CREDENTIAL_WORDS & set(name.split("_")):
            continue
        value = getattr(settings, name)
        if value != getattr(defaults, name):
            out[name] = settings.model_dump(mode="json", include={name})[name]
    return out


def machine_identity() -> dict[str, object]:
    """The kind of CPU a run's floats depend on: ``arch``, ``cpu`` (its model name where the
    system says), ``numpy_simd`` (the SIMD targets numpy dispatches to here, beyond its
    baseline) and ``torch_cpu`` (torch's kernel capability, when torch is loaded)."""
    torch = sys.modules.get("torch")  # never imported here just to ask
    return {"arch": platform.machine(), "cpu": _cpu_model(), "numpy_simd": numpy_simd(),
            "torch_cpu": torch.backends.cpu.get_cpu_capability() if torch is not None else None}


def numpy_simd() -> list[str] | None:
    """The SIMD targets numpy dispatches to on this CPU beyond its baseline, as numpy itself
    records them (what ``np.show_runtime()`` prints); None where numpy does not say."""
    try:  # numpy 2 moved its core to ``numpy._core``
        from numpy._core import _multiarray_umath as umath
    except ImportError:
        try:
            from numpy.core import _multiarray_umath as umath  # numpy 1.x
        except ImportError:
            return None
    dispatch = getattr(umath, "__cpu_dispatch__", None)
    features = getattr(umath, "__cpu_features__", None)
    if dispatch is None or features is None:
        return None
    return [f for f in dispatch if features.get(f)]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_provenance(settings: Settings) -> dict[str, object]:
    """The block a report carries: ``code`` (``code_identity``), ``settings``
    (``changed_settings``) and ``machine`` (``machine_identity``)."""
    return {"code": code_identity(), "settings": changed_settings(settings),
            "machine": machine_identity()}
