"""The judge in its own process: same answers as in-process, refuses bad work, yields the CPU."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdlearning.evaluation.verdict import Decision
from crowdlearning.judging.process import JudgeProcess
from crowdlearning.learning.registry import ONNX_FILE
from crowdlearning.server.runtime import Runtime, open_runtime
from tests.server.conftest import played_run, server_settings

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    settings = server_settings(tmp_path_factory.mktemp("judge")).model_copy(
        update={"server_judge_process": True})
    with open_runtime(settings) as rt:
        yield rt


def test_a_verdict_is_judged_in_the_child_and_recorded(runtime: Runtime) -> None:
    # GIVEN the judge runs in a child process
    assert isinstance(runtime.judge, JudgeProcess)
    run = played_run(runtime, "judged")
    # WHEN the run's contribution is sent there
    message = runtime.judge.submit(run.spec, run.contribution.to_bytes())
    # THEN a verdict comes back and the child's writes are visible to this process
    assert message["type"] == "verdict"
    assert message["decision"] in {d.value for d in Decision}
    assert message["ticks"] == run.contribution.num_ticks
    user = runtime.store.user_by_name("judged")
    assert user is not None
    [record] = runtime.store.runs_of(user.id, 10)
    assert record.run_id == run.spec.run_id and record.decision == message["decision"]


def test_a_bad_request_fails_alone_and_the_judge_keeps_serving(runtime: Runtime) -> None:
    run = played_run(runtime, "garbled")
    with pytest.raises(RuntimeError, match="judge process"):
        runtime.judge.submit(run.spec, b"not a contribution")
    assert runtime.judge.settle([]) == []  # still answering
    user = runtime.store.user_by_name("garbled")
    assert user is not None and runtime.store.runs_of(user.id, 10) == []  # nothing recorded


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling classes")
def test_the_child_runs_only_on_idle_cpu(runtime: Runtime) -> None:
    judge = runtime.judge
    assert isinstance(judge, JudgeProcess)
    pid = judge._proc.pid
    assert pid is not None and pid != os.getpid()
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE


def test_close_stops_the_child(tmp_path: Path) -> None:
    settings = server_settings(tmp_path).model_copy(update={"server_judge_process": True})
    with open_runtime(settings) as rt:
        judge = rt.judge
        assert isinstance(judge, JudgeProcess) and judge._proc.is_alive()
    assert not judge._proc.is_alive()


def test_a_batch_is_judged_in_order_and_a_bad_run_fails_alone(runtime: Runtime) -> None:
    runs = [played_run(runtime, name) for name in ("batch_a", "batch_b")]
    items = [(runs[0].spec, runs[0].contribution.to_bytes()), (runs[1].spec, b"garbage"),
             (runs[1].spec, runs[1].contribution.to_bytes())]
    messages = runtime.judge.submit_many(items)
    assert [m["type"] for m in messages] == ["verdict", "error", "verdict"]
    assert messages[1]["code"] == "verdict_failed"
    assert [messages[0]["contribution_id"], messages[2]["contribution_id"]] == [
        r.contribution.contribution_id for r in runs]


def test_the_judge_process_can_judge_on_a_ray_pool(runtime: Runtime, tmp_path: Path) -> None:
    # GIVEN a second server whose judge process spreads verdicts over two Ray workers
    runs = [played_run(runtime, name) for name in ("ray_a", "ray_b")]
    settings = server_settings(tmp_path).model_copy(update={
        "server_judge_process": True, "judge_backend": "ray", "judge_workers": 2})
    with open_runtime(settings) as on_ray:
        items = []
        for run in runs:  # the same players, under their ids there
            user = on_ray.store.add_user(run.spec.username, "not-a-real-hash")
            assert user is not None
            on_ray.ledger.open_player(user.player_id)
            mine = dataclasses.replace(run.contribution, contributor_id=user.player_id)
            items.append((dataclasses.replace(run.spec, player_id=user.player_id),
                          mine.to_bytes()))
        # WHEN the same recordings are judged there and by the inline judge process here
        there = on_ray.judge.submit_many(items)
    here = runtime.judge.submit_many([(r.spec, r.contribution.to_bytes()) for r in runs])
    # THEN the verdicts agree (same initial champion, deterministic judging)
    assert [m["type"] for m in there] == ["verdict", "verdict"]
    key = ("contribution_id", "decision", "effect_pct", "price_tinybar")
    assert [[m[k] for k in key] for m in there] == [[m[k] for k in key] for m in here]


def test_the_judge_exports_the_champion_for_download(runtime: Runtime) -> None:
    # the judge process writes the champion's ONNX file, so the game server never has to
    registry = runtime.trainer.registry
    path = registry.root / f"v{registry.champion:05d}" / ONNX_FILE
    deadline = time.monotonic() + 60
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert path.is_file() and path.stat().st_size > 1000


def test_a_retried_run_gets_its_recorded_verdict_and_is_not_judged_again(
        runtime: Runtime) -> None:
    # GIVEN a run judged once (its answer lost on the way back, say)
    run = played_run(runtime, "retried")
    item = (run.spec, run.contribution.to_bytes())
    [first] = runtime.judge.submit_many([item])
    # WHEN the game server sends it again
    [again] = runtime.judge.submit_many([item])
    # THEN the same verdict comes back, marked as a retry, and there is still one record
    assert again["decision"] == first["decision"] and again["effect_pct"] == first["effect_pct"]
    assert again["reward_tinybar"] == first["reward_tinybar"] and "retry" in again["note"]
    user = runtime.store.user_by_name("retried")
    assert user is not None and len(runtime.store.runs_of(user.id, 10)) == 1


def test_a_dead_judge_process_is_started_again(runtime: Runtime) -> None:
    # (last in this module: it replaces the module's judge process)
    judge = runtime.judge
    assert isinstance(judge, JudgeProcess)
    judge._proc.kill()
    judge._proc.join(timeout=10)
    # the next request finds it dead: it is started again and the request is served
    assert judge.settle([]) == []
    assert judge.restarts == 1 and judge._proc.is_alive()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_a_judge_child_ends_when_its_server_is_killed() -> None:
    """A server killed with SIGKILL cannot stop its judge; the judge notices and ends."""
    script = (
        "import multiprocessing, os, sys, time\n"
        "from crowdlearning.judging.process import _exit_with_parent\n"
        "def child():\n"
        "    _exit_with_parent(0.05)\n"
        "    time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        "    p = multiprocessing.get_context('fork').Process(target=child)\n"
        "    p.start()\n"
        "    print(p.pid, flush=True)\n"
        "    time.sleep(0.3)\n"
        "    os.kill(os.getpid(), 9)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
