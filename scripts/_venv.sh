#!/usr/bin/env bash
# Sourced by scripts/run and scripts/test: creates .venv and (re)installs the project with the
# given extras when it is missing or pyproject.toml changed. Needs only python3 (3.11+).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
ensure_venv() {
  local extras="$1"
  local py="${CROWDLEARNING_PYTHON:-python3}"
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  local stamp="$VENV/.crowdlearning-install"
  local want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1) [$extras]"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing crowdlearning[$extras] into $VENV ..." >&2
    # torch is pinned to 2.13.0 (CPU) in pyproject.toml; pip's warnings about absent local
    # mirrors are noise on machines without them.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      -e "$ROOT[$extras]" 2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" > "$stamp"
  fi
}
