"""Team forks: built only from the members' accepted data, never the champion, raced with their
team's name, credited to the members (``races/forks.py``, ``field.py``, ``season.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from crowdlearning.config import Settings
from crowdlearning.learning.dagger import BASE_DATA_ID, DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.labels import LabelSet
from crowdlearning.learning.registry import ModelRegistry, RegistryError
from crowdlearning.learning.train import TrainConfig
from crowdlearning.ledger.db import make_engine
from crowdlearning.ledger.migrate import upgrade_to_head
from crowdlearning.races.forks import ForkConfig, TeamForks
from crowdlearning.races.records import RaceRecords, season_of
from crowdlearning.races.runner import RacePlan, RaceRunner, load_policies
from crowdlearning.races.schedule import RaceSlot
from crowdlearning.races.season import SeasonTable
from crowdlearning.races.service import RaceService
from crowdlearning.races.teams import TeamStore
from crowdlearning.server.store import RunRecord, Store
from tests.races.conftest import VERSIONS
from tests.races.test_season import result

HOUR_NS = 3600 * 10**9


def rows(source: str, n: int, seed: int) -> LabelSet:
    rng = np.random.default_rng(seed)
    return LabelSet.from_actions(rng.normal(size=(n, 18)).astype(np.float32),
                                 rng.uniform(-1, 1, (n, 2)).astype(np.float32), source)


class World:
    """A registry (v0 champion, v1..v3), a dataset, the users alice, bob, carol; alice and bob
    are the team "Night Owls"; carol is in no team."""

    def __init__(self, tmp: Path, registry_root: Path) -> None:
        shutil.copytree(registry_root, tmp / "models")
        self.registry = ModelRegistry(tmp / "models")
        self.dataset = AggregatedDataset(tmp / "dataset")
        self.store = Store(f"sqlite:///{tmp / 'server.db'}")
        self.users = {}
        for name in ("alice", "bob", "carol"):
            user = self.store.add_user(name, "x")
            assert user is not None
            self.users[name] = user
        self.ledger: sa.Engine = make_engine(f"sqlite:///{tmp / 'ledger.db'}")
        upgrade_to_head(self.ledger)
        self.now = [10**18]
        self.teams = TeamStore(self.ledger, max_members=4, clock=lambda: self.now[0])
        self.team = self.teams.create(self.users["alice"].id, "Night Owls")
        self.teams.join(self.users["bob"].id, self.team.id)
        self.forks = TeamForks(ForkConfig(min_contributions=3, interval_s=3600, updates=5),
                               self.registry, tmp / "dataset", self.teams)
        self.dataset.append(BASE_DATA_ID, "platform", rows(BASE_DATA_ID, 64, 0))

    def accept(self, *ids_and_players: tuple[str, str], merged: bool = True) -> None:
        """Contributions appended to the dataset; ``merged``: also listed by a new mainline
        version (as a round's merge does), else appended only."""
        for i, (cid, name) in enumerate(ids_and_players):
            user = self.users[name]
            self.dataset.append(cid, user.player_id, rows(cid, 16, 100 + i))
            self.store.add_run(RunRecord(cid, user.id, 0, "label", False, 100, "improved", 50,
                                         0, 0, None, None, 1e9))
        if merged:
            net, _ = self.registry.load(self.registry.champion)  # type: ignore[arg-type]
            parent = max(self.registry.mainline_versions())
            self.registry.register(net, parent_version=parent,
                                   contributions=[c for c, _ in ids_and_players])


@pytest.fixture
def world(tmp_path: Path, registry_root: Path) -> World:
    return World(tmp_path, registry_root)


def test_a_fork_holds_only_the_members_accepted_merged_contributions(world: World) -> None:
    world.accept(("a1", "alice"), ("x1", "carol"), ("b1", "bob"), ("a2", "alice"))
    world.accept(("a3", "alice"), merged=False)  # appended by a merge that never registered
    [meta] = world.forks.build_due()
    assert meta.contributions == ["a1", "b1", "a2"]  # carol's x1 is not the team's; a3 unmerged
    assert meta.training["kind"] == "team_fork"
    assert meta.training["team_name"] == "Night Owls"
    assert meta.training["team_id"] == world.team.id
    assert meta.training["members"] == ["p1", "p2"] and meta.training["updates"] == 5
    assert meta.parent_version == 0 and meta.training["base_version"] == 0  # the champion's base
    # its lineage's data is exactly what it was trained on: the base's own and the team's
    assert world.registry.contributions_in(meta.version) == [BASE_DATA_ID, "a1", "b1", "a2"]
    assert meta.training["rows"] == 64 + 3 * 16
    assert world.teams.get(world.team.id).fork_version == meta.version  # type: ignore
    assert world.registry.is_fork(meta.version)
    assert meta.version not in world.registry.mainline_versions()
    assert world.registry.version_of_contribution("a1") == VERSIONS  # where it was merged


def test_a_fork_is_deterministic_and_never_the_champion(world: World, tmp_path: Path,
                                                      registry_root: Path) -> None:
    world.accept(("a1", "alice"), ("b1", "bob"), ("b2", "bob"))
    [first] = world.forks.build_due()
    world.now[0] += HOUR_NS
    world.accept(("a2", "alice"))
    [second] = world.forks.build_due()
    assert second.contributions == ["a1", "b1", "b2", "a2"]
    assert second.weights_sha256 != first.weights_sha256
    again = World(tmp_path / "again", registry_root)  # the same world again: the same fork
    again.accept(("a1", "alice"), ("b1", "bob"), ("b2", "bob"))
    [same] = again.forks.build_due()
    assert same.weights_sha256 == first.weights_sha256
    champion = world.registry.champion
    with pytest.raises(RegistryError, match="team fork"):
        world.registry.set_champion(second.version)
    assert world.registry.champion == champion
    # the next round's candidate is trained from the champion, never from a fork
    trainer = DaggerTrainer(world.registry, world.dataset, train=TrainConfig(updates=2))
    merged = trainer.merge([], promote=True)
    assert merged.parent_version == champion and not world.registry.is_fork(merged.version)
    assert world.registry.champion == merged.version


def test_forks_wait_for_enough_data_new_data_and_the_interval(world: World) -> None:
    world.accept(("a1", "alice"), ("b1", "bob"))
    assert world.forks.build_due() == []  # 2 < races_fork_min_contributions (3)
    world.accept(("a2", "alice"))
    [fork] = world.forks.build_due()
    assert world.forks.build_due() == []  # nothing new
    world.accept(("b2", "bob"))
    assert [t.id for t, _ in world.forks.due()] == [world.team.id]
    assert world.forks.build_due() == []  # new data, but within the interval
    world.now[0] += HOUR_NS
    [rebuilt] = world.forks.build_due()
    assert rebuilt.contributions == ["a1", "b1", "a2", "b2"] and rebuilt.version > fork.version


def test_the_field_races_the_teams_forks_with_their_names(world: World, tmp_path: Path
                                                          ) -> None:
    world.accept(("a1", "alice"), ("b1", "bob"), ("a2", "alice"))
    [fork] = world.forks.build_due()
    settings = Settings(environment="test", data_dir=tmp_path, races_track="oval",
                        races_max_cars=4, races_fork_slots=1, races_crowd_car=False)
    service = RaceService(settings, world.registry, world.store.engine,
                          families=lambda: ("easy",), forks=world.forks)
    plan = service.plan_for(RaceSlot("r100", 100.0, 7))
    by_role = {e.role: e for e in plan.entrants}
    assert by_role["fork"].version == fork.version and by_role["fork"].team == "Night Owls"
    assert by_role["fork"].name == f"Night Owls (team fork v{fork.version})"
    assert by_role["champion"].version == 0
    # the other places go to the most recent mainline versions, never to a fork
    others = sorted(e.version for e in plan.entrants if e.role in ("candidate", "previous"))
    assert others == [VERSIONS - 1, VERSIONS]
    assert RacePlan.from_json(plan.to_json()) == plan
    runner = RaceRunner(plan, load_policies(world.registry, [e.version for e in plan.entrants]))
    car = by_role["fork"].car
    assert runner.frame()["cars"][car]["team"] == "Night Owls"
    assert "team" not in runner.frame()["cars"][by_role["champion"].car]
    row = next(r for r in runner.result()["cars"] if r["car"] == car)
    assert row["team"] == "Night Owls" and row["name"] == by_role["fork"].name
    # a dissolved team's fork races no more
    world.teams.leave(world.users["alice"].id)
    world.teams.leave(world.users["bob"].id)
    world.forks._racing = None
    assert "fork" not in {e.role for e in service.plan_for(RaceSlot("r100", 100.0, 7)).entrants}


def test_the_season_credits_a_fork_to_the_members_whose_data_built_it(world: World) -> None:
    world.accept(("a1", "alice"), ("x1", "carol"), ("b1", "bob"), ("a2", "alice"))
    [fork] = world.forks.build_due()
    records = RaceRecords(world.store.engine)
    plan = service_plan(world, fork.version)
    records.add(plan, result("r100", [(0, fork.version, "finished"), (1, VERSIONS, "finished")]),
                1e9)
    season = season_of(100.0)
    table = SeasonTable(world.registry, records.players_of_runs).table(
        season, records.season_models(season))
    models = {m["version"]: m for m in table["models"]}
    assert table["models"][0]["version"] == fork.version and models[fork.version]["points"] == 25
    assert models[fork.version]["team"] == "Night Owls" and models[VERSIONS]["team"] is None
    assert models[fork.version]["credits"] == [{"username": "alice", "contributions": 2},
                                               {"username": "bob", "contributions": 1}]
    players = {p["username"]: p for p in table["players"]}
    # the fork's 25 points: alice 2/3, bob 1/3; the mainline v4's 18: a1, x1, b1, a2
    assert players["alice"]["points"] == pytest.approx(25 * 2 / 3 + 18 / 2, abs=0.01)
    assert players["bob"]["points"] == pytest.approx(25 / 3 + 18 / 4, abs=0.01)
    assert players["carol"]["points"] == pytest.approx(18 / 4, abs=0.01)
    assert fork.version not in players["carol"]["models"]
    forks = world.forks.racing({fork.version: 25})
    assert forks == [(fork.version, "Night Owls")]


def service_plan(world: World, fork_version: int) -> RacePlan:
    from crowdlearning.races.field import Entrant
    from crowdlearning.races.runner import RaceRules
    from crowdlearning.races.schedule import TrackChoice

    return RacePlan("r100", 11, 100.0, TrackChoice("named", 0, "oval"),
                    (Entrant(0, fork_version, "fork", "Night Owls"),
                     Entrant(1, VERSIONS, "candidate")), RaceRules(laps=1))
