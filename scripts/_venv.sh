#!/usr/bin/env bash
# Sourced by scripts/run and scripts/test: creates .venv and installs one of the locked sets when
# it is missing or its lock file changed. Needs only python3 (3.11+).
#
#   ensure_venv run   requirements.lock: what running the platform needs
#   ensure_venv dev   requirements-dev.lock: that plus the test tools (pytest, ruff, playwright,
#                     onnxruntime, ray, hypothesis, schemathesis), at the same versions
#
# Both lock files pin every package with its sha256 (pip checks them: a changed file on the index
# fails the install); scripts/lock regenerates them from pyproject.toml. The project itself is
# then installed editable without resolving anything new, unless pyproject.toml asks for a
# package the lock lacks (a stale lock: said loudly, and pip fetches what is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

# sha256 of what the lock files are compiled from: pyproject.toml's dependencies, optional
# dependencies and build requirements (not its tool settings). scripts/lock writes it into each
# lock file's header; a different value here means the locks are stale.
lock_inputs_sha() {
  "${1:-python3}" - "$ROOT/pyproject.toml" <<'EOF'
import hashlib, json, sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))
inputs = [data["project"].get("dependencies", []),
          data["project"].get("optional-dependencies", {}),
          data.get("build-system", {}).get("requires", [])]
print(hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest())
EOF
}

ensure_venv() {
  local set="$1"
  local py="${CROWDLEARNING_PYTHON:-python3}"
  local lock="$ROOT/requirements.lock"
  case "$set" in
    run) ;;
    dev) lock="$ROOT/requirements-dev.lock" ;;
    *) echo "ensure_venv: run or dev, not '$set'" >&2; return 2 ;;
  esac
  local stamp="$VENV/.crowdlearning-install"
  local inputs run_want dev_want want
  # what is installed follows the lock files and pyproject.toml's dependencies (a dependency
  # added without re-locking is installed too, with a warning)
  inputs="$(lock_inputs_sha "$py")"
  run_want="run $(sha256sum < "$ROOT/requirements.lock" | cut -d' ' -f1) $inputs"
  dev_want="dev $(sha256sum < "$ROOT/requirements-dev.lock" | cut -d' ' -f1) $inputs"
  want="$run_want"; [ "$set" = dev ] && want="$dev_want"
  local have=""; [ -f "$stamp" ] && have="$(cat "$stamp")"
  # the dev set holds the run set at the same versions: a dev venv runs the platform as it is
  _installed() {
    [ "$have" = "$want" ] || { [ "$set" = run ] && [ "$have" = "$dev_want" ]; }
  }
  _installed && return 0
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  # one install at a time (scripts/run and scripts/test started together share .venv)
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV/.install-lock"
    flock 9
    have=""; [ -f "$stamp" ] && have="$(cat "$stamp")"
    _installed && { exec 9>&-; return 0; }
  fi
  local packages
  packages="$(grep -c '^[A-Za-z0-9]' "$lock")"
  echo "Installing $packages locked packages (the $set set, ${lock##*/}) into .venv, then" \
       "crowdlearning itself; pip shows each package below. Once per lock file change." >&2
  if [ "$set" = run ]; then
    echo "(about 400 MB of wheels, 1.7 GB installed, PyTorch's CPU build the largest part;" \
         "2-3 minutes)" >&2
  else
    echo "(about 580 MB of wheels, 2.2 GB installed: the run set plus Ray, Playwright's" \
         "driver, onnxruntime, pytest; 3-4 minutes; no browser is downloaded)" >&2
  fi
  local recorded
  recorded="$(sed -n 's/^# lock inputs sha256: //p' "$lock")"
  if [ "$inputs" != "$recorded" ]; then
    echo "WARNING: ${lock##*/} is stale (pyproject.toml's dependencies changed since" \
         "scripts/lock ran): installing it, then whatever pyproject.toml adds, unlocked." \
         "Run scripts/lock and commit the lock files." >&2
  fi
  # pip's warnings about this machine's absent local mirrors are noise: filtered out
  "$VENV/bin/python" -m pip install --disable-pip-version-check --require-hashes -r "$lock" \
    2> >(grep --line-buffered -v "is ignored: it is neither" >&2)
  # setuptools and wheel (the build requirements) come from the lock: no unhashed build download
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
    -e "$ROOT" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$stamp"
  echo "installed: $VENV ($(du -sh "$VENV" | cut -f1) on disk)" >&2
  if command -v flock >/dev/null 2>&1; then exec 9>&-; fi
}
