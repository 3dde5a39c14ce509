"""What produced a report: the code (a digest of the package's source) and the settings.

A market run is deterministic from its seed *and its program*. Reports compared across sessions
were once produced by different code without saying so (docs/verdict.md, "A baseline at the
code as it stands"): every report of a long run now records which source and which settings
made it, so two reports can be checked to compare like with like
(``bench/market_targets.py`` refuses to total reports of different programs unless told).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from pydantic import SecretStr

from crowdlearning.config import Settings

__all__ = ["changed_settings", "code_identity", "run_provenance"]

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


def run_provenance(settings: Settings) -> dict[str, object]:
    """The block a report carries: ``code`` (``code_identity``) and ``settings``
    (``changed_settings``)."""
    return {"code": code_identity(), "settings": changed_settings(settings)}
