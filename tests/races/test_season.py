from __future__ import annotations

from pathlib import Path

import pytest

from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.races.records import RaceRecords, season_of
from crowdlearning.races.runner import points_for
from crowdlearning.races.season import SeasonTable
from crowdlearning.server.store import RunRecord, Store
from tests.races.conftest import oval_plan

JUNE = 1_780_000_000.0  # 2026-05-28


def result(race_id: str, order: list[tuple[int, int, str]]) -> dict:
    """(car, version, state) in finishing order -> a result as ``RaceRunner.result`` makes."""
    cars = [{"position": i + 1, "car": car, "version": v, "state": state,
             "race_time_s": 40.0 + i if state == "finished" else None,
             "best_lap_s": 40.0 + i if state == "finished" else None,
             "points": points_for(i + 1, state == "finished")}
            for i, (car, v, state) in enumerate(order)]
    return {"race_id": race_id, "ticks": 800, "race_time_s": 42.0, "digest": "d" * 64,
            "cars": cars}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'server.db'}")
    alice, bob = store.add_user("alice", "x"), store.add_user("bob", "x")
    assert alice is not None and bob is not None
    for run_id, user in (("c1", alice), ("c2", alice), ("c3", bob)):
        store.add_run(RunRecord(run_id, user.id, 0, "label", False, 100, "improved", 50, 0, 0,
                                None, None, JUNE))
    return store


def test_points_go_to_the_first_eight_finishers_only() -> None:
    assert [points_for(p, True) for p in range(1, 10)] == [25, 18, 15, 12, 10, 8, 6, 4, 0]
    assert points_for(1, False) == 0


def test_a_race_is_recorded_once(store: Store) -> None:
    records = RaceRecords(store.engine)
    plan = oval_plan(cars=2)
    res = result(plan.race_id, [(1, 3, "finished"), (0, 0, "out")])
    assert records.add(plan, res, JUNE)
    assert not records.add(plan, res, JUNE)  # another server ran the same race
    got = records.get(plan.race_id)
    assert got is not None and got.plan == plan and got.result == res
    assert [r.race_id for r in records.recent(5)] == [plan.race_id]
    assert RaceRecords(store.engine).get(plan.race_id) is not None  # tables exist: reused


def test_the_season_ranks_models_and_credits_players_through_the_lineage(
        store: Store, registry: ModelRegistry) -> None:
    records = RaceRecords(store.engine)
    season = season_of(100.0)
    plan = oval_plan(cars=3)  # starts at t=100 s: season 1970-01
    records.add(plan, result("r100", [(0, 3, "finished"), (1, 1, "finished"),
                                      (2, 0, "out")]), JUNE)
    plan2 = oval_plan(cars=3)
    plan2 = type(plan2)("r400", 4, 400.0, plan2.track, plan2.entrants, plan2.rules)
    records.add(plan2, result("r400", [(1, 1, "finished"), (0, 3, "finished"),
                                       (2, 0, "finished")]), JUNE)
    table = SeasonTable(registry, records.players_of_runs).table(
        season, records.season_models(season))
    models = {m["version"]: m for m in table["models"]}
    assert [m["version"] for m in table["models"]] == [1, 3, 0]  # tied: most wins, oldest
    assert models[3]["points"] == 25 + 18 and models[1]["points"] == 18 + 25
    assert models[3]["wins"] == 1 and models[3]["races"] == 2
    assert models[0]["points"] == 15 and models[0]["finishes"] == 1
    # v3's lineage is c1, c2 (alice) and c3 (bob); v1's only c1; v0 the initial model
    assert models[3]["credits"] == [{"username": "alice", "contributions": 2},
                                    {"username": "bob", "contributions": 1}]
    assert models[1]["credits"] == [{"username": "alice", "contributions": 1}]
    assert models[0]["credits"] == [] and models[0]["contributors"] == 0
    players = {p["username"]: p for p in table["players"]}
    assert players["alice"]["points"] == pytest.approx(43 * 2 / 3 + 43, abs=0.01)
    assert players["bob"]["points"] == pytest.approx(43 / 3, abs=0.01)
    assert players["alice"]["models"] == [1, 3] and players["bob"]["models"] == [3]
    assert [p["rank"] for p in table["players"]] == [1, 2]
    assert SeasonTable(registry, records.players_of_runs).table("2000-01", []) == {
        "season": "2000-01", "models": [], "players": []}
