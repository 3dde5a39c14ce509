"""The races' HTTP routes and socket on a small app (the races and league routers only), with
FastAPI's TestClient; a race is run on the client's event loop through its portal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI

from crowdlearning.config import Settings
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.races.offload import Offload
from crowdlearning.races.schedule import RaceSlot
from crowdlearning.races.service import RaceService
from crowdlearning.server.errors import install_error_handlers
from crowdlearning.server.routes import league, races
from crowdlearning.server.security import hash_token
from crowdlearning.server.store import RunRecord, Store
from tests.server.conftest import TestClient


@pytest.fixture
def app(tmp_path: Path, registry_root: Path, child: Offload) -> FastAPI:
    settings = Settings(environment="test", data_dir=tmp_path, races_track="oval", races_laps=1,
                        races_max_cars=3, races_interval_s=60, races_max_lap_s=4.0,
                        races_speed=20, races_reactions_per_min=2)
    store = Store(f"sqlite:///{tmp_path / 'server.db'}")
    user = store.add_user("alice", "x")
    assert user is not None
    store.add_token(hash_token("alice-token"), user.id, 3600)
    store.add_run(RunRecord("c2", user.id, 0, "label", False, 100, "improved", 50, 0, 0, None,
                            None, time.time()))
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(races.router)
    app.include_router(league.router)
    app.state.runtime = SimpleNamespace(store=store, settings=settings)
    app.state.races = RaceService(
        settings, ModelRegistry(registry_root), store.engine, families=lambda: ("easy",),
        decisions_of=lambda user_id, n: [r.decision for r in store.runs_of(user_id, n)],
        offload=child)
    return app


@pytest.fixture(scope="module")
def child() -> Iterator[Offload]:
    """The races' child process (``races/offload.py``), started once for the module: a race
    started a second ahead is prepared in time."""
    off = Offload("process", name="test-api")
    assert off.start()
    yield off
    off.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def test_the_timetable_lists_the_next_races(client: TestClient) -> None:
    body = client.get("/api/races").json()
    assert body["interval_s"] == 60 and body["recent"] == []
    table = body["timetable"]
    assert len(table) == 6 and all(r["status"] == "scheduled" for r in table)
    starts = [r["starts_at"] for r in table]
    assert starts == sorted(starts) and starts[1] - starts[0] == 60
    first = table[0]
    assert first["track"]["name"] == "oval" and first["laps"] == 1
    assert [c["car"] for c in first["cars"]] == [0, 1, 2]
    assert "v0 (champion)" in {c["name"] for c in first["cars"]}
    assert first["share_url"] == f"/watch?race={first['race_id']}"
    assert client.get(f"/api/races/{first['race_id']}").json() == first
    track = client.get(f"/api/races/{first['race_id']}/track").json()
    assert track["name"] == "oval" and len(track["centreline_mm"]) > 100
    for path in ("/api/races/r12", "/api/races/nope/track", "/api/races/r60/replay"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_a_race_is_recorded_replayable_and_in_the_season(client: TestClient,
                                                         app: FastAPI) -> None:
    service: RaceService = app.state.races
    slot = service.timetable.latest(time.time())  # started already: runs at once
    result = client.portal.call(service.run_race, slot)  # type: ignore[union-attr]
    race = client.get(f"/api/races/{slot.race_id}").json()
    assert race["status"] == "finished" and race["result"] == result
    assert [c["position"] for c in result["cars"]] == [1, 2, 3]
    recent = client.get("/api/races").json()["recent"]
    assert [r["race_id"] for r in recent] == [slot.race_id]
    replay = client.get(f"/api/races/{slot.race_id}/replay").json()
    assert replay["verified"] and replay["digest"] == result["digest"]
    assert replay["frames"][-1]["status"] == "finished"
    assert replay["frames"][-1]["order"] == [c["car"] for c in result["cars"]]
    season = client.get("/api/league/season").json()
    assert season["season"] == time.strftime("%Y-%m", time.gmtime(slot.starts_at))
    assert {m["version"] for m in season["models"]} == {c["version"] for c in result["cars"]}
    credited = {m["version"]: m["credits"] for m in season["models"]}
    for version, credits in credited.items():  # alice's run c2 is in v2's and v3's lineage
        assert credits == ([{"username": "alice", "contributions": 1}] if version >= 2 else [])
    assert client.get("/api/league/season?season=1999-01").json()["models"] == []
    assert client.get("/api/league/season?season=bad").status_code == 422
    # a finished race's socket answers its result and closes
    with client.websocket_connect(f"/ws/races/{slot.race_id}") as ws:
        message = ws.receive_json()
        assert message["type"] == "result" and message["result"]["digest"] == result["digest"]


def test_spectators_get_hello_frames_reactions_and_the_result(client: TestClient,
                                                              app: FastAPI) -> None:
    service: RaceService = app.state.races
    slot = _a_coming_slot(service)
    with client.websocket_connect("/ws/races/r12") as ws:
        assert ws.receive_json()["code"] == "unknown_race"
    headers = {"Authorization": "Bearer alice-token"}
    with client.websocket_connect(f"/ws/races/{slot.race_id}") as anon, \
            client.websocket_connect(f"/ws/races/{slot.race_id}", headers=headers) as alice:
        for ws in (anon, alice):
            hello = ws.receive_json()
            assert hello["type"] == "hello" and hello["race"]["status"] == "scheduled"
        assert hello["signed_in"]
        anon.send_json({"type": "react", "emoji": "🔥"})
        assert anon.receive_json()["code"] == "not_signed_in"
        for emoji, code in (("🔥", None), ("🏁", None), ("🔥", "rate_limited"),
                            ("nope", "bad_message")):
            alice.send_json({"type": "react", "emoji": emoji})
            if code:
                assert alice.receive_json()["code"] == code
        early = slot.__class__(slot.race_id, time.time(), slot.seed)  # start it now
        client.portal.start_task_soon(service.run_race, early)  # type: ignore[union-attr]
        got = {"frames": 0, "reactions": {}}
        while True:
            message = anon.receive_json()
            if message["type"] == "result":
                break
            if message["type"] == "frame":
                got["frames"] += 1
                assert len(message["cars"]) == 3 and message["spectators"] == 2
                for emoji, n in message.get("reactions", {}).items():
                    got["reactions"][emoji] = got["reactions"].get(emoji, 0) + n
        assert got["frames"] >= 2 and got["reactions"] == {"🔥": 1, "🏁": 1}
        assert message["race"]["status"] == "finished"


def test_spectators_of_a_race_that_did_not_run_are_told_so(app: FastAPI) -> None:
    service: RaceService = app.state.races
    passed = service.timetable.latest(time.time() - 120)
    channel = service.channel(passed.race_id)
    box = channel.join()
    assert box is not None
    service._drop_passed()
    assert channel.closed and passed.race_id not in service._channels
    assert box._items[-1][1].endswith('"final":true}') and '"not_run"' in box._items[-1][1]


def test_crowd_play_messages_on_the_race_socket(client: TestClient, app: FastAPI) -> None:
    service: RaceService = app.state.races
    slot = _a_coming_slot(service)
    headers = {"Authorization": "Bearer alice-token"}
    with client.websocket_connect(f"/ws/races/{slot.race_id}") as anon, \
            client.websocket_connect(f"/ws/races/{slot.race_id}", headers=headers) as alice:
        for ws in (anon, alice):
            assert ws.receive_json()["type"] == "hello"
        anon.send_json({"type": "join", "car": 0})
        assert anon.receive_json()["code"] == "not_signed_in"
        alice.send_json({"type": "join", "car": 0})
        assert alice.receive_json()["code"] == "not_racing"  # not on the grid yet
        early = slot.__class__(slot.race_id, time.time() + 1.0, slot.seed)
        client.portal.start_task_soon(service.run_race, early)  # type: ignore[union-attr]
        assert alice.receive_json()["type"] == "grid"
        for message, code in (({"type": "join", "car": 9}, "unknown_car"),
                              ({"type": "join", "car": "0"}, "bad_message"),
                              ({"type": "steer", "tick": 0, "steer": 0.1}, "not_steering")):
            alice.send_json(message)
            assert alice.receive_json()["code"] == code
        alice.send_json({"type": "join", "car": 1})
        joined = alice.receive_json()
        assert joined["type"] == "joined" and joined["car"] == 1
        assert joined["weight"] == 0.667  # (1 + 1 improved) / (2 + 1 judged)
        for message, code in (({"type": "join", "car": 0}, "already_steering"),
                              ({"type": "steer", "tick": 99_999, "steer": 0.1}, "future_tick"),
                              ({"type": "steer", "tick": 0, "steer": 2}, "bad_message"),
                              ({"type": "steer", "tick": 0, "steer": 0.1, "intervene": True},
                               "bad_message"),
                              ({"type": "steer", "tick": 0, "device": "keyboard",
                                "steer": 0.1}, "bad_message")):
            alice.send_json(message)
            assert alice.receive_json()["code"] == code
        alice.send_json({"type": "steer", "tick": 0, "steer": 0.1})
        alice.send_json({"type": "leave"})
        handed = alice.receive_json()  # what was labelled: nothing to judge without a referee
        assert handed["type"] == "contribution" and handed["submitted"] is False
        assert alice.receive_json() == {"type": "left", "submitted": 0}
        counted = []
        while (message := anon.receive_json())["type"] != "result":
            if message["type"] == "frame":
                counted.append(message["cars"][1]["steering"])
        assert counted and counted[-1] == 0


def _a_coming_slot(service: RaceService) -> RaceSlot:
    """The first race of the timetable that starts at least 20 s from now: the next one can
    start while a slow machine opens the sockets, and a race that started unrun is gone."""
    return service.timetable.upcoming(time.time() + 20, 1)[0]

