"""A report names the program that made it: the code's digest and the settings changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from crowdlearning.config import Settings
from crowdlearning.provenance import (
    PACKAGE_DIR,
    changed_settings,
    code_identity,
    machine_identity,
    run_provenance,
)

REPO = Path(__file__).resolve().parents[1]


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_code_digest_names_the_source_not_the_checkout(tmp_path: Path) -> None:
    files = {"a.py": "x = 1\n", "sub/b.py": "y = 2\n", "sub/notes.txt": "not code"}
    one = code_identity(_package(tmp_path / "one", files))
    two = code_identity(_package(tmp_path / "two", files))
    assert one["source_sha256"] == two["source_sha256"]
    assert one["git_commit"] is None and one["git_dirty"] is None  # not a git work tree
    (tmp_path / "two" / "sub" / "b.py").write_text("y = 3\n")
    assert code_identity(tmp_path / "two")["source_sha256"] != one["source_sha256"]
    # a file moved is another program too (paths are part of the digest)
    (tmp_path / "one" / "sub" / "b.py").rename(tmp_path / "one" / "b.py")
    assert code_identity(tmp_path / "one")["source_sha256"] != two["source_sha256"]
    # only .py files count: a byte-compiled cache or a note does not change the program
    (tmp_path / "two" / "sub" / "notes.txt").write_text("changed")
    (tmp_path / "two" / "__pycache__").mkdir()
    (tmp_path / "two" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert code_identity(tmp_path / "two")["source_sha256"] == code_identity(
        _package(tmp_path / "three", {"a.py": "x = 1\n", "sub/b.py": "y = 3\n"}))["source_sha256"]


def test_the_installed_package_has_a_digest_and_its_commit_in_a_checkout() -> None:
    ident = code_identity()
    assert len(str(ident["source_sha256"])) == 64
    if (REPO / ".git").exists() and PACKAGE_DIR.is_relative_to(REPO):
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        assert ident["git_commit"] == head
        assert isinstance(ident["git_dirty"], bool)


def test_changed_settings_lists_what_differs_and_never_a_credential(monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("CROWDLEARNING_")]:
        monkeypatch.delenv(name)  # only what the test sets differs from the defaults
    key = "302e020100300506032b657004220420" + "ab" * 32
    settings = Settings(verdict_focus_starts=0.75, verdict_null_follows_suite=True,
                        reaction_delay_keyboard_ticks=7,
                        database_url="postgresql://user:hunter2@db/prod",
                        hedera_operator_key=SecretStr(key),
                        payments_metrics_token=SecretStr("t0ken"))
    changed = changed_settings(settings)
    assert changed == {"verdict_focus_starts": 0.75, "verdict_null_follows_suite": True,
                       "reaction_delay_keyboard_ticks": 7}
    text = json.dumps(changed)
    assert "hunter2" not in text and "t0ken" not in text and key not in text
    assert "database_url" not in text
    assert changed_settings(Settings()) == {}


_MACHINE = ("import json; from crowdlearning.provenance import machine_identity; "
            "print(json.dumps(machine_identity()))")


def test_a_report_names_the_kind_of_cpu_its_floats_came_from() -> None:
    # GIVEN this interpreter, and one told to keep numpy off its AVX-512 and AVX2 code
    here = machine_identity()
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4"}
    out = subprocess.run([sys.executable, "-c", _MACHINE], capture_output=True, text=True,
                         check=True, env=env)
    narrowed = json.loads(out.stdout)
    # THEN both name the architecture and CPU, and numpy's dispatch as numpy itself reports it
    assert here["arch"] == narrowed["arch"] and here["cpu"] == narrowed["cpu"] != ""
    assert isinstance(here["numpy_simd"], list)
    wide = {"X86_V3", "X86_V4"} & set(here["numpy_simd"])
    if wide:  # this CPU has them: the narrowed interpreter reports them gone
        assert set(narrowed["numpy_simd"]) < set(here["numpy_simd"])
        assert not wide & set(narrowed["numpy_simd"])
    else:
        assert narrowed["numpy_simd"] == here["numpy_simd"]
    # and a market report's provenance carries it
    assert run_provenance(Settings())["machine"] == here


def test_market_targets_does_not_total_reports_of_different_programs(tmp_path: Path) -> None:
    curve = [{"round": 0, "version": 0, "lap_completion": 1.0, "unlocked_lap_completion": 1.0,
              "hbar_per_run": {}, "decisions": {}},
             {"round": 1, "version": 1, "promoted": False, "lap_completion": 1.0,
              "unlocked_lap_completion": 1.0, "hbar_per_run": {"expert": 0.1},
              "decisions": {"expert": {"improved": 1}}}]

    def report(name: str, sha: str, settings: dict, simd: tuple[str, ...] = ("X86_V3",)) -> Path:
        path = tmp_path / name
        prov = {"code": {"source_sha256": sha * 64}, "settings": settings,
                "machine": {"arch": "x86_64", "numpy_simd": list(simd), "torch_cpu": "AVX2"}}
        path.write_text(json.dumps({"config": {"provenance": prov}, "learning_curve": curve,
                                    "personas": {}}))
        return path

    same = [report("a.json", "a", {"verdict_focus_starts": 0.75}),
            report("b.json", "a", {"verdict_focus_starts": 0.75}, simd=("X86_V3", "X86_V4"))]
    other_code = report("c.json", "c", {"verdict_focus_starts": 0.75})
    other_settings = report("d.json", "a", {})

    def run(*args: Path | str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "bench" / "market_targets.py"),
                               *map(str, args)], capture_output=True, text=True)

    ok = run(*same)
    assert ok.returncode == 0 and "total of 2" in ok.stdout
    assert "verdict_focus_starts=0.75" in ok.stdout
    # each line names its CPU kind, which is not part of the program: both kinds are totalled
    assert "on x86_64 numpy X86_V3 torch AVX2" in ok.stdout
    assert "on x86_64 numpy X86_V3+X86_V4 torch AVX2" in ok.stdout
    for odd in (other_code, other_settings):
        refused = run(*same, odd)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "not totalled: 2 programs" in refused.stdout and "total of" not in refused.stdout
    forced = run(*same, other_code, "--mixed")
    assert forced.returncode == 0 and "total of 3" in forced.stdout
