"""The judge in its own process: same answers as in-process, refuses bad work, yields the CPU."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crowdlearning.evaluation.verdict import Decision
from crowdlearning.server.game_loop import FinishedRun, Outbox, RunSpec
from crowdlearning.server.judge import JudgeProcess
from crowdlearning.server.runtime import Runtime, open_runtime
from tests.server.conftest import server_settings

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    settings = server_settings(tmp_path_factory.mktemp("judge")).model_copy(
        update={"server_judge_process": True})
    with open_runtime(settings) as rt:
        yield rt


def _played_run(runtime: Runtime, name: str) -> FinishedRun:
    """A user plays a short labelled run on the runtime's own game loop (stepped by hand)."""
    user = runtime.store.add_user(name, "not-a-real-hash")
    assert user is not None
    runtime.ledger.open_player(user.player_id)
    finished: list[FinishedRun] = []
    runtime.game.on_finish = finished.append
    spec = RunSpec(f"run-{name}", user.player_id, name, runtime.game.seeds[0], "label")
    slot = runtime.game.join(spec, Outbox(1000))
    for tick in range(40):
        runtime.game.step()
        runtime.game.set_input(slot, tick, 0.1 * ((tick % 5) - 2), None, False)
    runtime.game.stop(slot)
    runtime.game.step()
    assert len(finished) == 1
    return finished[0]


def test_a_verdict_is_judged_in_the_child_and_recorded(runtime: Runtime) -> None:
    # GIVEN the judge runs in a child process
    assert isinstance(runtime.judge, JudgeProcess)
    run = _played_run(runtime, "judged")
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
    run = _played_run(runtime, "garbled")
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
