"""The teams' HTTP routes (``server/routes/teams.py``) on a small app, with FastAPI's
TestClient: listing, create / join / leave with their refusals, a team's fork and its points."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI

from crowdlearning import http_guard
from crowdlearning.config import Settings
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.ledger.db import make_engine
from crowdlearning.ledger.migrate import upgrade_to_head
from crowdlearning.races.field import Entrant
from crowdlearning.races.forks import ForkConfig, TeamForks
from crowdlearning.races.runner import RacePlan, RaceRules
from crowdlearning.races.schedule import TrackChoice
from crowdlearning.races.service import RaceService
from crowdlearning.races.teams import TeamStore
from crowdlearning.server.errors import install_error_handlers
from crowdlearning.server.routes import teams
from crowdlearning.server.security import hash_token
from crowdlearning.server.store import Store
from tests.races.test_season import result
from tests.server.conftest import TestClient


@pytest.fixture
def app(tmp_path: Path, registry_root: Path) -> FastAPI:
    settings = Settings(environment="test", data_dir=tmp_path, races_team_max_members=2)
    store = Store(f"sqlite:///{tmp_path / 'server.db'}")
    for name in ("alice", "bob", "carol"):
        user = store.add_user(name, "x")
        assert user is not None
        store.add_token(hash_token(f"{name}-token"), user.id, 3600)
    ledger = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade_to_head(ledger)
    shutil.copytree(registry_root, tmp_path / "models")
    registry = ModelRegistry(tmp_path / "models")
    app = FastAPI()
    http_guard.install(app, max_body_bytes=settings.server_max_body_bytes)
    install_error_handlers(app)
    app.include_router(teams.router)
    app.state.runtime = SimpleNamespace(store=store, settings=settings)
    app.state.teams = TeamStore(ledger, settings.races_team_max_members)
    forks = TeamForks(ForkConfig.from_settings(settings), registry, tmp_path / "dataset",
                      app.state.teams)
    app.state.races = RaceService(settings, registry, store.engine, families=lambda: ("easy",),
                                  forks=forks)
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


def test_teams_are_created_joined_and_left(client: TestClient) -> None:
    assert client.get("/api/teams").json()["teams"] == []
    assert client.get("/api/teams/mine", headers=auth("alice")).json() is None
    r = client.post("/api/teams", json={"name": "Night Owls"}, headers=auth("alice"))
    assert r.status_code == 201
    owls = r.json()
    assert owls["name"] == "Night Owls" and owls["members"] == ["alice"]
    assert owls["fork"] is None and owls["season_points"] == 0 and owls["max_members"] == 2
    joined = client.post(f"/api/teams/{owls['id']}/join", headers=auth("bob")).json()
    assert joined["members"] == ["alice", "bob"]
    assert client.get("/api/teams/mine", headers=auth("bob")).json()["id"] == owls["id"]
    body = client.get("/api/teams").json()
    assert [t["members"] for t in body["teams"]] == [["alice", "bob"]]
    assert body["max_members"] == 2 and body["min_contributions"] == 5
    assert client.get(f"/api/teams/{owls['id']}").json() == body["teams"][0]
    left = client.post("/api/teams/leave", headers=auth("alice")).json()
    assert left["members"] == ["bob"] and not left["dissolved"]
    gone = client.post("/api/teams/leave", headers=auth("bob")).json()
    assert gone["dissolved"] and client.get("/api/teams").json()["teams"] == []


@pytest.mark.parametrize(("name", "status", "code"), [
    ("ab", 422, "team_name_invalid"), ("owls!", 422, "team_name_invalid"),
    ("night  owls", 422, "team_name_invalid"), ("x" * 65, 422, "team_name_invalid"),
    (7, 422, "invalid_input"),
    ("NIGHT OWLS", 409, "team_name_taken")])
def test_bad_or_taken_names_are_refused(client: TestClient, name: str, status: int,
                                        code: str) -> None:
    client.post("/api/teams", json={"name": "Night Owls"}, headers=auth("alice"))
    r = client.post("/api/teams", json={"name": name}, headers=auth("bob"))
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert client.get("/api/teams/mine", headers=auth("bob")).json() is None


def test_the_membership_rules_answer_clear_codes(client: TestClient) -> None:
    r = client.post("/api/teams", json={"name": "owls"})
    assert (r.status_code, r.json()["code"]) == (401, "not_signed_in")
    owls = client.post("/api/teams", json={"name": "owls"}, headers=auth("alice")).json()
    refusals = [
        (client.post("/api/teams", json={"name": "larks"}, headers=auth("alice")),
         409, "already_in_team"),
        (client.post(f"/api/teams/{owls['id']}/join", headers=auth("alice")),
         409, "already_in_team"),
        (client.post("/api/teams/99/join", headers=auth("bob")), 404, "unknown_team"),
        (client.get("/api/teams/99"), 404, "unknown_team"),
        (client.post("/api/teams/leave", headers=auth("bob")), 409, "not_in_team"),
        (client.post("/api/teams", json={"name": "larks", "x": 1}, headers=auth("bob")),
         422, "invalid_input"),
    ]
    for r, status, code in refusals:
        assert (r.status_code, r.json()["code"]) == (status, code), r.json()
    client.post(f"/api/teams/{owls['id']}/join", headers=auth("bob"))
    r = client.post(f"/api/teams/{owls['id']}/join", headers=auth("carol"))
    assert (r.status_code, r.json()["code"]) == (409, "team_full")


def test_a_team_shows_its_fork_and_its_season_points(client: TestClient, app: FastAPI) -> None:
    owls = client.post("/api/teams", json={"name": "owls"}, headers=auth("alice")).json()
    races: RaceService = app.state.races
    registry = races.registry
    net, _ = registry.load(0)
    fork = registry.register(net, parent_version=0, contributions=["a1", "a2"],
                             training={"kind": "team_fork", "team_id": owls["id"],
                                       "team_name": "owls"})
    app.state.teams.set_fork(owls["id"], fork.version)
    now = time.time()
    plan = RacePlan("r100", 1, now, TrackChoice("named", 0, "oval"),
                    (Entrant(0, fork.version, "fork", "owls"), Entrant(1, 0, "champion")),
                    RaceRules(laps=1))
    races.records.add(plan, result("r100", [(0, fork.version, "finished"),
                                            (1, 0, "finished")]), now)
    team = client.get(f"/api/teams/{owls['id']}").json()
    assert team["fork"]["version"] == fork.version and team["fork"]["contributions"] == 2
    assert team["forks"] == [fork.version]
    assert team["fork"]["points"] == 25 and team["season_points"] == 25
    assert team["fork"]["built_at"] is not None
