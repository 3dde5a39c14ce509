"""The referee: finished runs reach the judge in batches of its size, answers reach their runs."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from crowdlearning.config import Settings
from crowdlearning.server.game_loop import FinishedRun, Outbox, RunSpec
from crowdlearning.server.referee import Referee


class SlowJudge:
    """Holds its first batch until told, so that the rest queue up behind it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches: list[list[str]] = []

    def submit_many(self, runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
        if not self.batches:
            self.release.wait(10)
        self.batches.append([spec.run_id for spec, _ in runs])
        return [{"type": "verdict", "run": spec.run_id} if spec.run_id != "run-3" else
                {"type": "error", "code": "verdict_failed", "message": "bad recording"}
                for spec, _ in runs]


def _finished(i: int) -> FinishedRun:
    contribution = SimpleNamespace(to_bytes=lambda: b"recording")
    return FinishedRun(RunSpec(f"run-{i}", f"p{i}", f"u{i}", 0), "time_up",
                       contribution, Outbox(8))  # type: ignore[arg-type]


def test_runs_are_judged_in_batches_of_the_judges_size_and_answered_in_order() -> None:
    judge = SlowJudge()
    settings = Settings(judge_backend="ray", judge_workers=2, server_verdict_queue=100)
    worker = ThreadPoolExecutor(1)
    runtime = SimpleNamespace(settings=settings, judge=judge, worker=worker,
                              game=SimpleNamespace(on_finish=None))

    async def play() -> list[list[str]]:
        referee = Referee(runtime, asyncio.get_running_loop())  # type: ignore[arg-type]
        runs = [_finished(i) for i in range(5)]
        for run in runs:
            referee.on_finish(run)
        judge.release.set()
        answers = [await asyncio.wait_for(run.outbox.take(), 10) for run in runs]
        assert referee.in_flight == 0
        return answers

    answers = asyncio.run(play())
    worker.shutdown(wait=True)
    # the first run went alone (the worker was idle), the rest in batches of at most 2
    assert judge.batches == [["run-0"], ["run-1", "run-2"], ["run-3", "run-4"]]
    assert [json.loads(a[0])["run"] for a in answers[:3]] == ["run-0", "run-1", "run-2"]
    assert '"verdict_failed"' in answers[3][0]  # one run's failure is that run's alone
    assert [json.loads(a) for a in answers[4]] == [{"type": "verdict", "run": "run-4"}]
