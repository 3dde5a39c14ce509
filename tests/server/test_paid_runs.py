"""A paid run holds its stake from its start to its verdict, over the real WebSocket path."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from crowdlearning.evaluation.judge_pool import InlineJudgePool, JudgeSpec
from crowdlearning.evaluation.verdict import Decision, Verdict
from crowdlearning.learning.contribution import Contribution
from crowdlearning.server.app import create_app
from crowdlearning.server.backlog import VerdictBacklog
from crowdlearning.server.game_loop import GameFullError, RunSpec
from crowdlearning.server.referee import backlog_dir
from crowdlearning.server.runtime import Runtime
from tests.server.conftest import TestClient, played_run, signup
from tests.server.test_ws import receive_until

HBAR = 100_000_000


class WorsePool(InlineJudgePool):
    """Every run judged *worse*, priced far beyond any hold, without computing anything (not
    even the judge): what is under test is where the penalty comes from."""

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        return [_verdict(spec, c, Decision.WORSE, "", -100 * HBAR) for c in contributions]

    def rejected(self, spec: JudgeSpec, contribution: Contribution, reason: str) -> Verdict:
        return _verdict(spec, contribution, Decision.REJECTED, reason, 0)


def _verdict(spec: JudgeSpec, c: Contribution, decision: Decision, reason: str,
             price: int) -> Verdict:
    return Verdict(c.contribution_id, c.contributor_id, c.digest, decision, reason,
                   spec.champion_version, 0, [], 0, 0, [], [], 0.0, 0.0, 0.0, -100, 0.95, 0,
                   price)


@pytest.fixture
def worse(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(runtime.service, "pool", WorsePool())
    yield


def staked(client: TestClient, deposit: int = 3 * HBAR, stake: int = 2 * HBAR) -> None:
    signup(client)
    assert client.post("/api/wallet/deposit", json={"amount_tinybar": deposit}).status_code == 201
    assert client.post("/api/wallet/stake", json={"amount_tinybar": stake}).status_code == 200


def wait_for(check: Callable[[], object], timeout_s: float = 30.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def start_paid_run(ws, frames: int) -> dict:
    """Start a paid run on an open play socket and let ``frames`` frames pass; its start."""
    ws.receive_json()
    ws.send_json({"type": "start", "paid": True})
    start = receive_until(ws, "start")
    for _ in range(frames):
        receive_until(ws, "frame")
    return start


def test_unstaking_during_a_paid_run_cannot_touch_its_hold(client: TestClient, runtime: Runtime,
                                                           worse: None) -> None:
    # GIVEN a player with 2 HBAR staked who starts a paid run
    staked(client)
    hold = runtime.ledger.hold_tinybar
    with client.websocket_connect("/ws/play") as ws:
        start = start_paid_run(ws, frames=20)
        # THEN the stake is held from the start, and the wallet says which run holds it
        wallet = client.get("/api/wallet").json()
        holds = client.get("/api/wallet/holds").json()
        # WHEN the player tries to unstake everything at tick 20
        refused = client.post("/api/wallet/unstake", json={"amount_tinybar": 2 * HBAR})
        freed = client.post("/api/wallet/unstake", json={"amount_tinybar": 2 * HBAR - hold})
        ws.send_json({"type": "stop"})
        verdict = receive_until(ws, "verdict")
    assert start["paid"] and start["held_tinybar"] == hold
    assert (wallet["stake_tinybar"], wallet["held_tinybar"]) == (2 * HBAR - hold, hold)
    assert holds["held_tinybar"] == hold
    assert [(h["run_id"], h["amount_tinybar"], h["status"]) for h in holds["items"]] == [
        (start["run_id"], hold, "playing")]
    # THEN unstaking the whole stake is refused; only the unheld part came out
    assert refused.status_code == 409 and refused.json()["code"] == "insufficient_funds"
    assert freed.status_code == 200 and freed.json()["held_tinybar"] == hold
    # AND the run stayed paid: the verdict took its penalty from the hold
    assert verdict["paid_mode"] and verdict["decision"] == "worse"
    assert verdict["penalty_tinybar"] == hold
    after = client.get("/api/wallet").json()
    assert (after["stake_tinybar"], after["held_tinybar"]) == (0, 0)
    assert after["available_tinybar"] == 3 * HBAR - hold
    assert client.get("/api/wallet/holds").json()["items"] == []
    runtime.ledger.check_books()


def test_a_paid_run_is_judged_even_if_the_player_disconnects(client: TestClient,
                                                             runtime: Runtime,
                                                             worse: None) -> None:
    # GIVEN a paid run in progress
    staked(client)
    hold = runtime.ledger.hold_tinybar
    with client.websocket_connect("/ws/play") as ws:
        start = start_paid_run(ws, frames=10)
    # WHEN the player disconnects mid-run (to dodge a bad verdict): THEN what was played is
    # judged, and the penalty comes from the hold
    runs = wait_for(lambda: client.get("/api/wallet/runs").json())
    assert runs[0]["run_id"] == start["run_id"] and runs[0]["paid"]
    assert runs[0]["ticks"] >= 10 and runs[0]["penalty_tinybar"] == hold
    wallet = client.get("/api/wallet").json()
    assert (wallet["stake_tinybar"], wallet["held_tinybar"]) == (2 * HBAR - hold, 0)
    assert not list(runtime.holds.root.glob(f"{start['run_id']}*"))  # answered: forgotten


def test_a_paid_start_without_enough_stake_starts_nothing(client: TestClient) -> None:
    staked(client, deposit=2 * HBAR, stake=HBAR)
    client.post("/api/wallet/unstake", json={"amount_tinybar": HBAR})
    with client.websocket_connect("/ws/play") as ws:
        ws.receive_json()
        ws.send_json({"type": "start", "paid": True})
        error = receive_until(ws, "error")
        ws.send_json({"type": "ping"})
        after = ws.receive_json()
    assert error["code"] == "stake_required" and "no run started" in error["message"]
    assert after["type"] == "pong"  # no start, no frames: no run
    assert client.get("/api/wallet").json()["held_tinybar"] == 0


def test_a_paid_run_that_cannot_take_a_slot_gives_its_hold_back(
        client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    staked(client)

    def full(spec: RunSpec, outbox: object, **start: object) -> int:
        raise GameFullError("all places are taken")

    monkeypatch.setattr(runtime.game, "join", full)
    with client.websocket_connect("/ws/play") as ws:
        ws.receive_json()
        ws.send_json({"type": "start", "paid": True})
        error = receive_until(ws, "error")
    assert error["code"] == "full"
    wallet = client.get("/api/wallet").json()
    assert (wallet["stake_tinybar"], wallet["held_tinybar"]) == (2 * HBAR, 0)


def test_a_paid_run_that_ends_before_its_first_tick_is_voided(client: TestClient,
                                                              runtime: Runtime) -> None:
    # GIVEN a paid run that holds stake, stopped before any tick was recorded
    staked(client)
    player = client.get("/api/auth/me").json()["player_id"]
    referee = client.app.state.referee
    spec = RunSpec("run-no-ticks", player, "nobody", runtime.game.seeds[0], paid=True)
    runtime.holds.open(spec)
    assert runtime.ledger.player_balances(player).held_tinybar == runtime.ledger.hold_tinybar
    # WHEN the game ends it with nothing recorded
    referee.on_discard(spec, "stopped before its first tick")
    # THEN the hold goes back to the stake, through void:<run id>
    wait_for(lambda: runtime.ledger.player_balances(player).held_tinybar == 0)
    assert runtime.ledger.player_balances(player).stake_tinybar == 2 * HBAR
    assert runtime.ledger.get_transfer("void:run-no-ticks") is not None
    assert runtime.ledger.hold_of("run-no-ticks").state == "voided"


def test_a_restart_voids_lost_runs_and_keeps_the_holds_of_runs_waiting_for_a_verdict(
        runtime: Runtime, worse: None) -> None:
    # GIVEN, before a restart, a player with two paid runs holding stake: one finished and
    # waiting in the verdict backlog, one still playing when the server stopped (lost)
    run = played_run(runtime, "restarted")
    player = run.spec.player_id
    ledger, hold = runtime.ledger, runtime.ledger.hold_tinybar
    ledger.deposit("deposit-restarted", f"player:{player}:available", 2 * HBAR)
    ledger.lock_stake("stake-restarted", player, 2 * HBAR)
    waiting = dataclasses.replace(run.spec, paid=True)
    lost = RunSpec("run-lost-in-restart", player, "restarted", runtime.game.seeds[0], paid=True)
    runtime.holds.open(waiting)
    runtime.holds.open(lost)
    VerdictBacklog(backlog_dir(runtime.settings)).push(waiting, run.contribution.to_bytes())
    ledger.unlock_stake("unstake-restarted", player, 2 * HBAR - 2 * hold)  # all free stake
    # WHEN the server starts again
    with TestClient(create_app(runtime.settings, runtime)):
        # THEN the lost run's hold is voided at once, the waiting run is judged as paid and
        # its penalty taken from its hold (the player's free stake is gone)
        assert ledger.hold_of(lost.run_id).state == "voided"
        record = wait_for(lambda: runtime.store.run(waiting.run_id))
    assert record.paid and record.penalty_tinybar == hold
    balances = ledger.player_balances(player)
    assert (balances.stake_tinybar, balances.held_tinybar) == (hold, 0)
    assert runtime.holds.marked() & {lost.run_id, waiting.run_id} == set()
    ledger.check_books()
