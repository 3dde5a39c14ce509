"""Missions (issue 11.3): planned from the champion's segment record off the event loop, offered
at GET /api/game/missions, and runs started where they aim."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pytest

from crowdlearning.evaluation.curriculum import play_tracks
from crowdlearning.evaluation.screening import Screener
from crowdlearning.judging.tracks import TrackCatalog
from crowdlearning.learning.routing import Mission, RouterConfig, plan_missions
from crowdlearning.learning.uncertainty import SegmentRecord
from crowdlearning.server.game_loop import FinishedRun, GameLoop, Outbox, RunSpec, RunStart
from crowdlearning.server.missions import MissionBoard, champion_record
from crowdlearning.server.runtime import Runtime
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track import Track
from tests.server.conftest import TestClient, signup
from tests.server.test_browser_pages import (  # noqa: F401 - fixtures
    PASSWORD,
    browser,
    server_url,
)
from tests.server.test_game_loop import _policy
from tests.server.test_play_render_browser import Socket
from tests.server.test_ws import receive_until

if TYPE_CHECKING:
    from playwright.sync_api import Browser

FAILED_SEGMENT = 3  # the one segment of each fake record where the champion failed


def fake_record(version: int, tracks: Sequence[Track]) -> SegmentRecord:
    """A record where the champion failed in segment 3 of every track and was sure elsewhere."""
    counts = [int(np.ceil(t.length_m / 25.0)) for t in tracks]
    track_of = np.repeat(np.arange(len(tracks)), counts)
    start = np.concatenate([np.arange(c) * 25.0 for c in counts])
    local = np.concatenate([np.arange(c) for c in counts])
    failures = np.where(local == FAILED_SEGMENT, 5, 0)
    m = len(start)
    return SegmentRecord(tuple(tracks), 25.0, track_of, start, np.full(m, 40),
                         np.full(m, 10), np.ones(m), failures)


class CountingSource:
    """``fake_record``, counting calls, optionally held until ``release`` is set."""

    def __init__(self, hold: bool = False) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, version: int, tracks: Sequence[Track]) -> SegmentRecord:
        self.calls.append(version)
        assert self.release.wait(30)
        return fake_record(version, tracks)


def test_the_board_plans_missions_from_the_champions_record_and_follows_the_champion() -> None:
    tracks = play_tracks(3)
    source = CountingSource()
    board = MissionBoard(source, count=6, router=RouterConfig(explore=0.0, max_share=0.5,
                                                                  temperature=0.1))
    try:
        # WHEN the board is first asked: nothing yet, the record is being computed elsewhere
        first = board.offer(0, tracks)
        assert first == {"ready": False, "model_version": 0, "missions": []}
        board.wait(30)
        offered = board.offer(0, tracks)
        # THEN six missions aim at the segments the champion failed in, starting 24 m before
        assert offered["ready"] and len(offered["missions"]) == 6
        for m in offered["missions"]:
            track = tracks[m["track_seed"]]
            assert m["track_name"] == track.name and m["model_version"] == 0
            assert m["reason"] == "failed" and m["target_m"] == FAILED_SEGMENT * 25.0
            assert m["start_s_m"] == pytest.approx((m["target_m"] - 24.0) % track.length_m)
            assert m["value"] == pytest.approx(1.0 + 4.0 * 0.5)
            assert board.find(m["id"], 0) is not None
        assert len({m["id"] for m in offered["missions"]}) == 6
        assert board.offer(0, tracks) == offered and source.calls == [0]  # cached
        # WHEN the champion changes, the board is planned again and old missions are stale
        old = offered["missions"][0]["id"]
        assert not board.offer(1, tracks)["ready"]
        assert board.find(old, 1) is None
        board.wait(30)
        new = board.offer(1, tracks)
        assert new["ready"] and source.calls == [0, 1]
        assert all(m["id"].startswith("v1-") for m in new["missions"])
        assert board.find(old, 1) is None and board.find(new["missions"][0]["id"], 1)
    finally:
        board.close()


class FailingOn:
    """A record where the champion failed in segment 3 of the ``failing`` tracks only; the
    tracks of each call are kept."""

    def __init__(self, failing: Sequence[Track]) -> None:
        self.failing = {t.digest for t in failing}
        self.calls: list[list[Track]] = []

    def __call__(self, version: int, tracks: Sequence[Track]) -> SegmentRecord:
        self.calls.append(list(tracks))
        record = fake_record(version, tracks)
        keep = np.array([tracks[t].digest in self.failing for t in record.track_of])
        return dataclasses.replace(record, failures=np.where(keep, record.failures, 0))


def test_the_board_looks_further_along_the_frontier_for_corners_the_champion_fails() -> None:
    tracks = play_tracks(2, ("easy", "tight"), frontier=40)
    easy, tight = list(tracks.values())[:2], list(tracks.values())[2:]
    assert len(tight) == 40 and all(s >= 10**8 for s in list(tracks)[2:])
    # the champion drives the first 30 tight play tracks cleanly and fails on the last ten
    source = FailingOn(tight[30:])
    board = MissionBoard(source, count=4, router=RouterConfig(explore=0.0, max_share=0.5,
                                                              temperature=0.1),
                         per_family=1, first_frontier=16, widen_batch=8)
    try:
        record, seeds = board.survey(0, tracks)
        # one easy track, 16 tight ones, then 8 more at a time until 4 segments failed
        assert [len(c) for c in source.calls] == [17, 8, 8, 8]
        assert seeds == list(tracks)[:1] + list(tracks)[2:]
        assert record.tracks == tuple(easy[:1] + tight) and record.failing_segments == 10
        board.offer(0, tracks)
        board.wait(30)
        missions = board.offer(0, tracks)["missions"]
        assert len(missions) == 4
        for m in missions:  # every mission goes where the champion fails: tracks 30-39
            assert m["reason"] == "failed" and tracks[m["track_seed"]] in tight[30:]
            assert m["target_m"] == FAILED_SEGMENT * 25.0
        # a champion failing often on the first tracks: nothing more is surveyed
        everywhere = FailingOn([*easy, *tight])
        _, first = MissionBoard(everywhere, count=4, per_family=1).survey(0, tracks)
        assert [len(c) for c in everywhere.calls] == [17] and len(first) == 17
    finally:
        board.close()
    with pytest.raises(ValueError, match="widen_batch"):
        MissionBoard(source, widen_batch=0)


def test_the_game_serves_more_tracks_of_the_frontier_and_the_screen_knows_them() -> None:
    served = play_tracks(3, ("easy", "tight", "technical"), frontier=12)
    by_family = [sum(1 for s in served if s // 10**8 == r) for r in (0, 1, 3)]
    assert by_family == [3, 3, 12] and list(served) == sorted(served)
    assert play_tracks(3, ("easy", "tight"), frontier=2) == play_tracks(3, ("easy", "tight"))
    catalog = TrackCatalog(3, ("easy", "tight", "technical"), frontier=12)
    assert all(catalog[t.digest] is not None for t in served.values())
    # a frontier of a family unlocked later: every family's tracks, as many as a frontier's
    later = play_tracks(3, ("easy", "tight", "technical", "low-grip"), frontier=12)
    assert all(catalog[t.digest].digest == t.digest for t in later.values())


def test_the_production_record_is_the_champions_survey(runtime: Runtime) -> None:
    tracks = [runtime.tracks[s] for s in runtime.game.seeds[:2]]
    records = champion_record(runtime.trainer, members=2, max_rows=500)
    record = records(0, tracks)
    assert record.tracks == tuple(tracks)
    assert len(record) == sum(int(np.ceil(t.length_m / 25.0)) for t in tracks)
    assert record.visited.any() and np.isfinite(record.spread[record.visited]).all()
    # its approach: missions aimed at segments the version failed start on its approaches
    plan = plan_missions(record, 6, np.random.default_rng(0), RouterConfig(explore=0.0))
    met = records.approach(0, record, plan)
    assert [m.reason for m in met] == [m.reason for m in plan]
    assert all(not m.on_approach for m in met if m.reason != "failed")
    if record.failures.any():  # the initial model fails somewhere on most play tracks
        assert any(m.on_approach for m in met)


def test_missions_on_the_champions_approach_carry_its_motion_and_others_none() -> None:
    # GIVEN a board whose approach moves every mission aimed at a failure (as
    # ``learning.routing.meet_failures`` does where the champion fails again)
    def approach(version: int, record: SegmentRecord, plan: list[Mission]) -> list[Mission]:
        return [dataclasses.replace(m, start_s_m=m.target_m - 50.0, speed_mps=17.5,
                                    lateral_m=-0.4, heading_rad=0.05, on_approach=True)
                if m.reason == "failed" else m for m in plan]

    board = MissionBoard(CountingSource(), count=12, router=RouterConfig(explore=0.3,
                                                                        temperature=0.1),
                         approach=approach)
    try:
        board.offer(0, play_tracks(3))
        board.wait(30)
        missions = board.offer(0, play_tracks(3))["missions"]
    finally:
        board.close()
    # THEN the failed ones offer the approach's start and motion, the others leave the motion
    # to the run's secret seed
    failed = [m for m in missions if m["reason"] == "failed"]
    others = [m for m in missions if m["reason"] != "failed"]
    assert failed and others
    for m in failed:
        assert (m["speed_mps"], m["lateral_m"], m["heading_rad"]) == (17.5, -0.4, 0.05)
        assert m["start_s_m"] == m["target_m"] - 50.0
    assert all(m["speed_mps"] is None and m["lateral_m"] is None for m in others)


def test_a_run_on_an_approach_starts_with_the_missions_motion_and_replays() -> None:
    finished: list[FinishedRun] = []
    tracks = play_tracks(2)
    loop = GameLoop(_policy(), 0, tracks, capacity=2, run_ticks=20, on_finish=finished.append,
                    random_starts=True)
    loop.join(RunSpec("run-a", "p0", "u0", 1), Outbox(64), start_s_m=60.0, mission="v0-2-abc",
              motion=(14.0, 0.6, -0.08))
    for _ in range(24):
        loop.step()
    (run,) = finished
    c = run.contribution
    # the mission's place and motion, not the secret seed's (its disturbance is the seed's)
    assert (c.start.start_s_m, c.start.speed_mps, c.start.lateral_m,
            c.start.heading_offset_rad) == (60.0, 14.0, 0.6, -0.08)
    assert c.states[0, 3] == pytest.approx(14.0, abs=0.5)
    # and the run replays from its recorded start, as screening checks it
    by_digest = {t.digest: t for t in tracks.values()}
    assert Screener(by_digest.__getitem__).check(c) == ""


def test_a_mission_run_starts_at_its_place_with_its_own_secret_speed_and_offset() -> None:
    finished: list[FinishedRun] = []
    tracks = play_tracks(2)
    loop = GameLoop(_policy(), 0, tracks, capacity=3, run_ticks=5, on_finish=finished.append,
                    random_starts=True)
    for i in range(2):
        loop.join(RunSpec(f"run-{i}", f"p{i}", f"u{i}", 1), Outbox(64), start_s_m=40.0,
                  mission="v0-1-abc")
    for _ in range(8):
        loop.step()
    assert len(finished) == 2
    starts = [run.contribution.start for run in finished]
    for run in finished:
        c = run.contribution
        drawn = RunStart.draw(c.meta["start_seed"], tracks[1])
        assert c.meta["mission"] == "v0-1-abc"
        assert c.start.start_s_m == 40.0  # the mission's place
        assert (c.start.speed_mps, c.start.lateral_m) == (drawn.speed_mps, drawn.lateral_m)
    assert starts[0].speed_mps != starts[1].speed_mps  # each from its own secret seed


@pytest.fixture
def board(runtime: Runtime) -> Iterator[MissionBoard]:
    """The runtime's board swapped for one planning from a fake record."""
    saved = runtime.missions
    runtime.missions = MissionBoard(CountingSource(), count=4)
    try:
        yield runtime.missions
    finally:
        runtime.missions.close()
        runtime.missions = saved


def test_a_run_starts_on_a_mission_and_stale_ones_are_refused(
        client: TestClient, runtime: Runtime, board: MissionBoard) -> None:
    client.get("/api/game/missions")
    board.wait(30)
    answer = client.get("/api/game/missions").json()
    assert answer["ready"] and answer["model_version"] == runtime.game.model_version
    mission = answer["missions"][0]
    signup(client)
    with client.websocket_connect("/ws/play") as ws:
        ws.receive_json()
        # an id the board does not offer (made up, or for another champion) is refused
        for bad in ("v0-0-deadbeef", mission["id"].replace("v", "v9", 1)):
            ws.send_json({"type": "start", "mission": bad})
            error = receive_until(ws, "error")
            assert error["code"] == "unknown_mission" and "/api/game/missions" in \
                error["message"]
        # WHEN the player starts on the mission
        ws.send_json({"type": "start", "mode": "label", "mission": mission["id"]})
        start = receive_until(ws, "start")
        frame = receive_until(ws, "frame")
        ws.send_json({"type": "stop"})
        end = receive_until(ws, "end")
    # THEN the run is on the mission's track, at its place, and its record names the mission
    assert start["track_seed"] == mission["track_seed"] and start["mission"] == mission["id"]
    track = runtime.tracks[mission["track_seed"]]
    sim = RaceSim([track], 1)
    sim.reset_cars(np.array([0]), start_s_m=mission["start_s_m"], speed_mps=8.0)
    moved = float(np.hypot(*(np.array(frame["pose"][:2]) - sim.pose[0, :2])))
    assert moved <= 0.45 * frame["tick"] + 0.01  # 8 m/s: at most 0.4 m a tick since tick 0
    assert end["mission"] == mission["id"]


def test_the_missions_answer_while_the_board_is_computing(
        client: TestClient, runtime: Runtime) -> None:
    source = CountingSource(hold=True)
    saved = runtime.missions
    runtime.missions = MissionBoard(source, count=3)
    try:
        ticks = runtime.game.tick_count
        began = time.perf_counter()
        answers = [client.get("/api/game/missions") for _ in range(3)]
        took = time.perf_counter() - began
        assert all(a.status_code == 200 for a in answers)
        assert all(a.json() == {"ready": False, "model_version": runtime.game.model_version,
                                "missions": []} for a in answers)
        assert took < 2.0 and source.calls == [runtime.game.model_version]  # computed once
        time.sleep(0.3)
        assert runtime.game.tick_count > ticks  # the game kept ticking meanwhile
        source.release.set()
        runtime.missions.wait(30)
        assert len(client.get("/api/game/missions").json()["missions"]) == 3
    finally:
        source.release.set()
        runtime.missions.close()
        runtime.missions = saved


@pytest.mark.slow
def test_the_play_page_lists_missions_and_picking_one_starts_the_run_there(
        browser: Browser, server_url: str) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    socket = Socket(page)
    try:
        page.goto(f"{server_url}/index.html")
        page.fill("#username", f"mission{time.time_ns() % 10**9}")
        page.fill("#password", PASSWORD)
        page.click("#signup")
        page.wait_for_selector("#game:not([hidden])")
        # the board is computed by the server on first request: the list fills in a while later
        page.wait_for_selector("#missions button.mission", timeout=120_000)
        first = page.locator("#missions button.mission").first
        text = first.text_content() or ""
        assert "value" in text and any(w in text for w in ("fails", "unsure", "not been"))
        mission_id = first.get_attribute("data-mission")
        first.click()
        page.wait_for_selector("body[data-playing='1']", timeout=30_000)
        sent = [m for _, m in socket.sent if m["type"] == "start"]
        got = [m for _, m in socket.received if m["type"] == "start"]
        assert sent[-1]["mission"] == mission_id and got[-1]["mission"] == mission_id
        assert "mission" in (page.text_content("#hudTrack") or "")
        assert not errors, errors
    finally:
        context.close()
