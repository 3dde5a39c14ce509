"""The holds behind a game server's paid runs: opened at start, voided when never judged."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger, StakeRequiredError, make_engine
from crowdlearning.server.game_loop import FinishedRun, Outbox, RunSpec
from crowdlearning.server.referee import Referee
from crowdlearning.server.run_holds import RunHolds
from tests.ledger.factories import HOLD, STAKE_MINIMUM, funded_player, new_ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = new_ledger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    funded_player(ledger, "alice", 0, stake=STAKE_MINIMUM + 2 * HOLD)
    funded_player(ledger, "broke", 0)
    return ledger


def paid(run_id: str, player: str = "alice") -> RunSpec:
    return RunSpec(run_id, player, player, 0, paid=True)


def test_a_hold_opens_with_its_marker_and_nothing_is_kept_without_stake(
        ledger: Ledger, tmp_path: Path) -> None:
    holds = RunHolds(ledger, tmp_path / "paid-runs")
    holds.open(paid("run-a"))
    with pytest.raises(StakeRequiredError):
        holds.open(paid("run-b", "broke"))
    assert holds.marked() == {"run-a"}
    assert ledger.hold_of("run-a").state == "open" and ledger.hold_of("run-b") is None


def test_at_start_only_runs_neither_live_nor_waiting_are_voided(ledger: Ledger,
                                                               tmp_path: Path) -> None:
    # GIVEN three paid runs holding stake when the server stopped
    holds = RunHolds(ledger, tmp_path / "paid-runs")
    for run_id in ("run-live", "run-waiting", "run-lost"):
        holds.open(paid(run_id))
    # WHEN the server starts again (twice: voiding is idempotent)
    restarted = RunHolds(ledger, tmp_path / "paid-runs")
    voided = restarted.void_orphans({"run-live", "run-waiting"})
    again = restarted.void_orphans({"run-live", "run-waiting"})
    # THEN the lost run's hold went back to the stake; the others still hold theirs
    assert voided == ["run-lost"] and again == []
    assert [ledger.hold_of(r).state for r in ("run-live", "run-waiting", "run-lost")] == [
        "open", "open", "voided"]
    assert ledger.player_balances("alice").held_tinybar == 2 * HOLD
    assert restarted.marked() == {"run-live", "run-waiting"}
    ledger.check_books()


def test_another_servers_runs_are_never_voided(ledger: Ledger, tmp_path: Path) -> None:
    RunHolds(ledger, tmp_path / "east").open(paid("run-east"))
    assert RunHolds(ledger, tmp_path / "west").void_orphans(set()) == []
    assert ledger.hold_of("run-east").state == "open"


class GivingUpJudge:
    def submit_many(self, runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
        return [{"type": "error", "code": "verdict_failed", "message": "bad recording"}
                for _ in runs]


def test_the_referee_voids_paid_runs_that_will_not_be_judged(ledger: Ledger,
                                                             tmp_path: Path) -> None:
    # GIVEN paid runs holding stake: one the judge gives up on, one finishing into a full
    # verdict queue, one with nothing recorded
    holds = RunHolds(ledger, tmp_path / "paid-runs")
    for run_id in ("run-failed", "run-queue-full", "run-empty"):
        holds.open(paid(run_id))
    runtime = SimpleNamespace(
        settings=Settings(data_dir=tmp_path, server_verdict_queue=1), judge=GivingUpJudge(),
        worker=ThreadPoolExecutor(1), holds=holds,
        game=SimpleNamespace(on_finish=None, live_run_ids=lambda: {
            "run-failed", "run-queue-full", "run-empty"}))
    recording = SimpleNamespace(to_bytes=lambda: b"recording")

    async def play() -> list[dict]:
        referee = Referee(runtime, asyncio.get_running_loop())  # type: ignore[arg-type]
        failed = FinishedRun(paid("run-failed"), "stopped", recording, Outbox(8))  # type: ignore[arg-type]
        full = FinishedRun(paid("run-queue-full"), "stopped", recording, Outbox(8))  # type: ignore[arg-type]
        referee.on_finish(failed)
        referee.on_finish(full)  # the queue (1) is full
        referee.on_discard(paid("run-empty"), "stopped before its first tick")
        answers = []
        for run in (failed, full):
            answers.append(json.loads((await asyncio.wait_for(run.outbox.take(), 10))[-1]))
        for _ in range(200):
            if ledger.player_balances("alice").held_tinybar == 0:
                break
            await asyncio.sleep(0.05)
        return answers

    answers = asyncio.run(play())
    runtime.worker.shutdown(wait=True)
    # THEN each was answered, and every hold went back to the stake
    assert [a["code"] for a in answers] == ["verdict_failed", "verdict_queue_full"]
    assert [ledger.hold_of(r).state for r in ("run-failed", "run-queue-full", "run-empty")] == [
        "voided"] * 3
    assert ledger.player_balances("alice").held_tinybar == 0
    assert holds.marked() == set()
    ledger.check_books()
