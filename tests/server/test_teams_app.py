"""Teams on the full game server (``create_app``): the router, the ledger-backed team store and
the fork builder are wired; signed-in players create, join and leave."""

from __future__ import annotations

from crowdlearning.races.forks import TeamForks
from tests.server.conftest import TestClient, signup


def test_the_game_server_serves_teams_and_races_their_forks(client: TestClient) -> None:
    app = client.app
    runtime = app.state.runtime  # type: ignore[attr-defined]
    assert isinstance(app.state.races.forks, TeamForks)  # type: ignore[attr-defined]
    assert app.state.teams.engine is runtime.ledger.engine  # type: ignore[attr-defined]
    bob = signup(client)
    alice = signup(client)  # the client's cookie is alice's now; bob uses his bearer token
    as_bob = {"Authorization": f"Bearer {bob['token']}"}
    names = alice["user"]["username"], bob["user"]["username"]
    r = client.post("/api/teams", json={"name": f"team {names[0]}"})
    assert r.status_code == 201, r.text
    team = r.json()
    joined = client.post(f"/api/teams/{team['id']}/join", headers=as_bob).json()
    assert joined["members"] == list(names)
    listed = {t["id"]: t for t in client.get("/api/teams").json()["teams"]}
    assert listed[team["id"]]["members"] == list(names) and listed[team["id"]]["fork"] is None
    assert client.get("/api/teams/mine", headers=as_bob).json()["id"] == team["id"]
    assert client.post("/api/teams/leave").json()["members"] == [names[1]]
    assert client.post("/api/teams/leave", headers=as_bob).json()["dissolved"]
    assert client.get(f"/api/teams/{team['id']}").json()["code"] == "unknown_team"
