"""Teams of the race league (``races/teams.py``): list, create, join, leave; each team's fork.

Anyone may list the teams; creating, joining and leaving need a signed-in player. A refusal is
``{"code", "detail"}`` with one of ``TEAM_CODES``' codes (``races/teams.py`` names the rules).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, Field, WithJsonSchema
from starlette.responses import Response

from crowdlearning import http_guard
from crowdlearning.http_guard import StrictBody
from crowdlearning.races.forks import TeamForks
from crowdlearning.races.records import season_of
from crowdlearning.races.teams import (
    NAME_MAX,
    NAME_MIN,
    NAME_PATTERN,
    Team,
    TeamError,
    TeamStore,
    UnknownTeamError,
)
from crowdlearning.server.deps import CurrentUser, StoreDep
from crowdlearning.server.errors import CODES, NotFoundError
from crowdlearning.server.routes.allow import AllowEveryMethodRoute

__all__ = ["TEAM_CODES", "router"]



class _TeamRoute(AllowEveryMethodRoute):
    """A route whose ``TeamError`` is its ``{"code", "detail"}`` answer (``TeamError.code``,
    ``.status``: the team's rules say what went wrong), and whose 405 names every method of its
    path in ``Allow``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except TeamError as exc:
                return http_guard.error_response(exc.status, exc.code, str(exc))

        return handle


router = APIRouter(prefix="/api/teams", tags=["teams"], route_class=_TeamRoute)

TEAM_CODES: dict[str, tuple[int, str]] = {
    "team_name_invalid": (422, f"a team name is {NAME_MIN} to {NAME_MAX} characters: words of "
                               "letters (A-Z) and digits, one space, `-` or `_` between two "
                               "words"),
    "team_name_taken": (409, "a team has that name already (whatever its case)"),
    "already_in_team": (409, "you are in a team already: leave it first"),
    "team_full": (409, "the team has as many members as a team may have"),
    "not_in_team": (409, "you are in no team"),
    "unknown_team": (404, "no such team (a team whose last member left is dissolved)"),
}
_WRITE = ("bad_origin", "too_large", "not_signed_in", "not_found")


def documented(*codes: str) -> dict[int | str, dict[str, Any]]:
    return http_guard.documented({**CODES, **TEAM_CODES}, *codes)


class TeamCreate(StrictBody):
    # the rule in the schema; ``check_name`` answers a name outside it in words
    # (``team_name_invalid``), as the usernames' rule (``server/schemas.py``)
    name: Annotated[str, WithJsonSchema({
        "type": "string", "minLength": NAME_MIN, "maxLength": NAME_MAX,
        "pattern": NAME_PATTERN,
        "description": "words of letters and digits, one space, `-` or `_` between two words; "
                       "unique whatever its case"})]


class ForkPublic(BaseModel):
    version: int = Field(description="the model version: the team's latest fork")
    built_at: float | None = Field(description="Unix time [s]")
    contributions: int = Field(description="the members' accepted contributions it was "
                               "trained on")
    points: int = Field(description="its race points this season")


class TeamPublic(BaseModel):
    id: int
    name: str
    created_at: float = Field(description="Unix time [s]")
    members: list[str] = Field(description="usernames, in the order they joined")
    max_members: int
    fork: ForkPublic | None = Field(description="the team's latest fork, once it has one")
    forks: list[int] = Field(description="every fork the team had, oldest first")
    season_points: int = Field(description="the race points of all its forks this season")
    dissolved: bool = Field(default=False, description="its last member left")


class TeamsPublic(BaseModel):
    season: str
    max_members: int
    min_contributions: int = Field(description="accepted contributions a team needs before "
                                   "its first fork is built")
    teams: list[TeamPublic]


def teams_of(request: Request) -> TeamStore:
    teams = getattr(request.app.state, "teams", None)
    if teams is None:
        raise NotFoundError("races are off on this server (CROWDLEARNING_RACES_ENABLED)")
    return teams


TeamsDep = Annotated[TeamStore, Depends(teams_of)]


class _Public:
    """Teams as the API shows them: usernames, and their forks' points this season."""

    def __init__(self, request: Request, store: StoreDep, teams: TeamsDep) -> None:
        races = getattr(request.app.state, "races", None)
        self.forks: TeamForks | None = getattr(races, "forks", None)
        self.season = season_of(time.time())
        self.points: dict[int, int] = {}
        if races is not None:
            self.points = {r["version"]: r["points"]
                           for r in races.records.season_models(self.season)}
        self.store, self.max_members = store, teams.max_members
        self._by_team = self.forks.forks_by_team() if self.forks is not None else {}

    def __call__(self, team: Team, names: dict[int, str] | None = None) -> TeamPublic:
        names = names if names is not None else self.store.usernames(list(team.members))
        forks = self._by_team.get(team.id, [])
        fork = None
        if team.fork_version is not None:
            contributions = 0
            if self.forks is not None:
                contributions = len(self.forks.contributions_of(team.fork_version))
            fork = ForkPublic(version=team.fork_version,
                              built_at=None if team.fork_built_at_ns is None
                              else team.fork_built_at_ns / 1e9,
                              contributions=contributions,
                              points=self.points.get(team.fork_version, 0))
        return TeamPublic(id=team.id, name=team.name, created_at=team.created_at_ns / 1e9,
                          members=[names.get(u, f"user {u}") for u in team.members],
                          max_members=self.max_members, fork=fork, forks=forks,
                          season_points=sum(self.points.get(v, 0) for v in forks),
                          dissolved=not team.members)


PublicDep = Annotated[_Public, Depends(_Public)]


@router.get("", responses=documented("not_found"))
def list_teams(teams: TeamsDep, public: PublicDep, request: Request) -> TeamsPublic:
    """Every team with its members and its fork (none: races are off, 404)."""
    found = teams.teams()
    names = public.store.usernames(sorted({u for t in found for u in t.members}))
    forks = public.forks
    return TeamsPublic(season=public.season, max_members=teams.max_members,
                       min_contributions=(forks.config.min_contributions
                                          if forks is not None else 0),
                       teams=[public(t, names) for t in found])


@router.get("/mine", responses=documented("not_signed_in", "not_found"))
def my_team(user: CurrentUser, teams: TeamsDep, public: PublicDep) -> TeamPublic | None:
    """The signed-in player's team (null: none)."""
    team = teams.team_of(user.id)
    return None if team is None else public(team)


@router.post("/leave", responses=documented(*_WRITE, "not_in_team"))
def leave_team(user: CurrentUser, teams: TeamsDep, public: PublicDep) -> TeamPublic:
    """Leave your team: the team as it is now (``dissolved`` when you were its last member;
    its forks stay in the registry and the season, and race no more)."""
    return public(teams.leave(user.id))


@router.get("/{team_id:int}", responses=documented("not_found", "unknown_team", "invalid_input"))
def one_team(team_id: Annotated[int, Path(ge=1, le=2**53)], teams: TeamsDep,
             public: PublicDep) -> TeamPublic:
    team = teams.get(team_id)
    if team is None:
        raise UnknownTeamError(f"no team {team_id}")
    return public(team)


@router.post("", status_code=status.HTTP_201_CREATED, responses=documented(
    *_WRITE, "invalid_input", "team_name_invalid", "team_name_taken", "already_in_team"))
def create_team(body: TeamCreate, user: CurrentUser, teams: TeamsDep,
                public: PublicDep) -> TeamPublic:
    """A new team, with the signed-in player its first member."""
    return public(teams.create(user.id, body.name))


@router.post("/{team_id:int}/join", responses=documented(
    *_WRITE, "invalid_input", "unknown_team", "already_in_team", "team_full"))
def join_team(team_id: Annotated[int, Path(ge=1, le=2**53)], user: CurrentUser,
              teams: TeamsDep, public: PublicDep) -> TeamPublic:
    """Join a team (you are in none; it has room)."""
    return public(teams.join(user.id, team_id))
