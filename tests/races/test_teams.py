"""Teams: names, membership rules, dissolution, fork claims (``races/teams.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdlearning.ledger.db import make_engine
from crowdlearning.ledger.migrate import upgrade_to_head
from crowdlearning.races.teams import (
    AlreadyInTeamError,
    NotInTeamError,
    TeamFullError,
    TeamNameError,
    TeamNameTakenError,
    TeamStore,
    UnknownTeamError,
    check_name,
)
from tests.ledger.factories import postgres_schema_engine


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """The ledger's database at the newest migration (0011: the teams), on SQLite or in a
    fresh PostgreSQL schema."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
            stack.callback(engine.dispose)
        else:
            url = request.getfixturevalue("postgres_url")
            engine = stack.enter_context(postgres_schema_engine(url))
        upgrade_to_head(engine)
        yield engine


@pytest.fixture
def clock() -> list[int]:
    return [1_000 * 10**9]


@pytest.fixture
def teams(engine: sa.Engine, clock: list[int]) -> TeamStore:
    def tick() -> int:
        clock[0] += 1
        return clock[0]

    return TeamStore(engine, max_members=3, clock=tick)


@pytest.mark.parametrize("name", ["abc", "Night Owls", "x-2_y", "A" * 24, "r2 d2", "007"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["ab", "A" * 25, " owls", "owls ", "-owls", "owls_",
                                  "night  owls", "owls!", "Ünter", "<b>x</b>", "a\tb c", "",
                                  "a--b", "x _y", "   "])
def test_bad_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(TeamNameError) as exc:
        check_name(name)
    assert exc.value.code == "team_name_invalid" and exc.value.status == 422


def test_a_player_creates_a_team_others_join_and_names_are_unique_whatever_the_case(
        teams: TeamStore) -> None:
    owls = teams.create(1, "Night Owls")
    assert owls.name == "Night Owls" and owls.members == (1,) and owls.fork_version is None
    with pytest.raises(TeamNameTakenError):
        teams.create(2, "NIGHT owls")
    assert teams.team_of(2) is None  # the refused creation left nothing behind
    assert teams.join(2, owls.id).members == (1, 2)
    assert teams.team_of(2) == teams.get(owls.id)
    assert [t.name for t in teams.teams()] == ["Night Owls"]


def test_a_player_is_in_one_team_at_most(teams: TeamStore) -> None:
    owls = teams.create(1, "owls")
    larks = teams.create(2, "larks")
    with pytest.raises(AlreadyInTeamError):
        teams.join(1, larks.id)
    with pytest.raises(AlreadyInTeamError):
        teams.create(1, "another")
    assert [t.name for t in teams.teams()] == ["owls", "larks"]
    teams.leave(1)
    assert teams.join(1, larks.id).members == (2, 1)
    assert teams.get(owls.id) is None  # its last member left: dissolved


def test_a_team_has_a_bounded_size(teams: TeamStore) -> None:
    owls = teams.create(1, "owls")
    teams.join(2, owls.id)
    teams.join(3, owls.id)
    with pytest.raises(TeamFullError) as exc:
        teams.join(4, owls.id)
    assert exc.value.code == "team_full"
    assert teams.team_of(4) is None and teams.get(owls.id).members == (1, 2, 3)  # type: ignore


def test_leaving_and_dissolving(teams: TeamStore) -> None:
    with pytest.raises(NotInTeamError):
        teams.leave(1)
    owls = teams.create(1, "owls")
    teams.join(2, owls.id)
    assert teams.leave(1).members == (2,)
    left = teams.leave(2)
    assert left.members == () and teams.get(owls.id) is None
    with pytest.raises(UnknownTeamError):
        teams.join(3, owls.id)
    again = teams.create(3, "OWLS")  # the name is free again; the id is not reused
    assert again.id != owls.id


def test_a_fork_build_is_claimed_once_per_interval(teams: TeamStore, clock: list[int]) -> None:
    owls = teams.create(1, "owls")
    hour = 3600 * 10**9
    assert teams.claim_fork(owls.id, hour)
    assert not teams.claim_fork(owls.id, hour)  # another server, a moment later
    clock[0] += hour
    assert teams.claim_fork(owls.id, hour)
    assert teams.set_fork(owls.id, 7)
    assert teams.get(owls.id).fork_version == 7  # type: ignore[union-attr]
    assert not teams.set_fork(999, 8)
