"""The referee: finished runs reach the judge in batches of its size, answers reach their runs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

from crowdlearning.config import Settings
from crowdlearning.judging.errors import JudgeUnavailableError
from crowdlearning.policy.network import Policy
from crowdlearning.server.game_loop import FinishedRun, Outbox, RunSpec
from crowdlearning.server.referee import Referee
from crowdlearning.server.run_holds import RunHolds
from tests.server.conftest import TestClient


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


async def _messages_until_answer(outbox: Outbox) -> list[dict]:
    seen: list[dict] = []
    while not seen or seen[-1]["type"] == "queued":
        seen += [json.loads(m) for m in await asyncio.wait_for(outbox.take(), 10)]
    return seen


def _runtime(tmp_path: Path, judge: object) -> SimpleNamespace:
    settings = Settings(judge_backend="ray", judge_workers=2, server_verdict_queue=100,
                        data_dir=tmp_path)
    # no paid runs here: the holds never reach their (absent) ledger
    return SimpleNamespace(settings=settings, judge=judge, worker=ThreadPoolExecutor(1),
                           game=SimpleNamespace(on_finish=None, live_run_ids=set),
                           holds=RunHolds(SimpleNamespace(), tmp_path / "paid-runs"))  # type: ignore[arg-type]


def test_runs_are_judged_in_batches_of_the_judges_size_and_answered_in_order(
        tmp_path: Path) -> None:
    judge = SlowJudge()
    runtime = _runtime(tmp_path, judge)

    async def play() -> list[list[dict]]:
        referee = Referee(runtime, asyncio.get_running_loop())  # type: ignore[arg-type]
        runs = [_finished(i) for i in range(5)]
        for run in runs:
            referee.on_finish(run)
        judge.release.set()
        answers = [await _messages_until_answer(run.outbox) for run in runs]
        assert referee.in_flight == 0 and len(referee.backlog) == 0
        return answers

    answers = asyncio.run(play())
    runtime.worker.shutdown(wait=True)
    # in order, in batches of at most the judge's size (2)
    assert [r for b in judge.batches for r in b] == [f"run-{i}" for i in range(5)]
    assert max(len(b) for b in judge.batches) == 2
    assert [a[-1]["run"] for a in answers[:3]] == ["run-0", "run-1", "run-2"]
    assert answers[3][-1]["code"] == "verdict_failed"  # one run's failure is that run's alone
    assert answers[4][-1] == {"type": "verdict", "run": "run-4"}
    # runs behind a full batch were told their place in the line
    assert any(m["type"] == "queued" and m["position"] >= 3 for a in answers for m in a)


class DownJudge:
    """Fails every batch (a bug on the judge's side, not a lost judge)."""

    def submit_many(self, runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
        raise RuntimeError("the judge broke on this batch")


def test_runs_survive_a_restart_and_a_dead_judge_gives_up_clearly(tmp_path: Path) -> None:
    # GIVEN a server that stops before its judge answers: the runs stay in the backlog
    down = _runtime(tmp_path, DownJudge())

    async def finish_two_and_stop() -> None:
        referee = Referee(down, asyncio.get_running_loop())  # type: ignore[arg-type]
        down.worker.shutdown(wait=True)  # the server stops: no batch is taken
        for i in range(2):
            referee.on_finish(_finished(i))
        referee.close()

    asyncio.run(finish_two_and_stop())
    # WHEN the server starts again with a working judge
    judge = SlowJudge()
    judge.release.set()
    again = _runtime(tmp_path, judge)

    async def restart() -> int:
        referee = Referee(again, asyncio.get_running_loop())  # type: ignore[arg-type]
        assert referee.in_flight == 2
        for _ in range(100):
            if referee.in_flight == 0:
                break
            await asyncio.sleep(0.05)
        return len(referee.backlog)

    left = asyncio.run(restart())
    again.worker.shutdown(wait=True)
    # THEN the runs from before the restart are judged, in order
    assert judge.batches == [["run-0", "run-1"]] and left == 0
    # AND a judge that keeps failing is given up on with an error, the run not kept forever
    dead = _runtime(tmp_path, DownJudge())

    async def dead_judge() -> list[dict]:
        referee = Referee(dead, asyncio.get_running_loop())  # type: ignore[arg-type]
        run = _finished(9)
        referee.on_finish(run)
        return await _messages_until_answer(run.outbox)

    answer = asyncio.run(dead_judge())
    dead.worker.shutdown(wait=True)
    assert answer[-1]["code"] == "verdict_failed" and "broke" in answer[-1]["message"]


class LostJudge:
    """Unreachable for its first calls (its process died and restarts), then judges."""

    def __init__(self, down_for: int) -> None:
        self.down_for, self.calls = down_for, 0

    def submit_many(self, runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
        self.calls += 1
        if self.calls <= self.down_for:
            raise JudgeUnavailableError("the judge process died; it was started again")
        return [{"type": "verdict", "run": spec.run_id} for spec, _ in runs]


class ShortJudge:
    """Answers one message short (a bug): counted as a failed batch, never a stuck worker."""

    def submit_many(self, runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
        return [{"type": "verdict", "run": spec.run_id} for spec, _ in runs[1:]]


def test_an_unreachable_judge_keeps_the_runs_until_it_is_back(tmp_path: Path) -> None:
    # GIVEN a judge that cannot be reached for more calls than a run's failure limit
    judge = LostJudge(down_for=4)
    runtime = _runtime(tmp_path, judge)

    async def play() -> list[dict]:
        referee = Referee(runtime, asyncio.get_running_loop())  # type: ignore[arg-type]
        run = _finished(0)
        referee.on_finish(run)
        return await asyncio.wait_for(_messages_until_answer(run.outbox), 60)

    answer = asyncio.run(play())
    runtime.worker.shutdown(wait=True)
    # THEN the run was kept and judged when the judge came back
    assert answer[-1] == {"type": "verdict", "run": "run-0"} and judge.calls == 5


def test_a_judge_answering_short_fails_the_batch_and_judging_goes_on(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, ShortJudge())

    async def play() -> list[dict]:
        referee = Referee(runtime, asyncio.get_running_loop())  # type: ignore[arg-type]
        runs = [_finished(i) for i in range(2)]
        for run in runs:
            referee.on_finish(run)
        answers = [await asyncio.wait_for(_messages_until_answer(r.outbox), 60) for r in runs]
        for _ in range(200):  # the worker winds down (it backs off after a failed batch)
            if not referee._draining:
                break
            await asyncio.sleep(0.05)
        assert referee.in_flight == 0 and not referee._draining and len(referee.backlog) == 0
        return answers

    answers = asyncio.run(play())
    runtime.worker.shutdown(wait=True)
    assert all(a[-1]["code"] == "verdict_failed" for a in answers)


def test_a_promoted_champion_drives_new_runs_with_its_own_weights(client: TestClient,
                                                                  monkeypatch) -> None:
    # GIVEN a new version registered and promoted by the judge
    runtime = client.app.state.runtime
    registry = runtime.trainer.registry
    before = runtime.game.model_version
    net, _ = registry.load(registry.champion)
    newer = registry.register(net, parent_version=registry.champion)
    monkeypatch.setattr(runtime.judge, "close_round", lambda: newer.version)
    # WHEN the referee closes the round
    client.app.state.referee.close_round()
    deadline = time.monotonic() + 10
    while runtime.game.model_version == before and time.monotonic() < deadline:
        time.sleep(0.05)
    # THEN the game's champion is that version (new runs and the champion car drive it)
    assert runtime.game.model_version == newer.version
    runtime.game.set_champion(Policy(net), before)  # the session's other tests expect v0


def test_stats_say_how_many_runs_wait_for_a_verdict(client: TestClient) -> None:
    referee = client.app.state.referee
    before = referee.in_flight
    referee.in_flight = before + 7  # as if seven more finished runs were queued
    try:
        assert client.get("/api/game/stats").json()["verdicts_waiting"] == before + 7
    finally:
        referee.in_flight -= 7
