"""Teams of the race league: a player creates one, others join and leave it.

- A name is 3..24 characters: words of ASCII letters and digits, one space, ``-`` or ``_``
  between two words (``NAME_PATTERN``, ``check_name``): no name of blanks or punctuation, no
  look-alike letters from other scripts. Names are unique case-insensitively (``name_key``: the
  lower-cased name).
- A player (the game server's user id) is in at most one team at a time: to join another team
  they leave theirs first. A team holds at most ``max_members`` (``races_team_max_members``).
- The creator is the team's first member; nobody owns a team after that. The last member to
  leave dissolves it: its row goes, its name is free again, its id is never reused, and its
  forks stay in the model registry (their metadata names the team) but race no more.

The tables (``race_teams``, ``race_team_members``) are in the ledger's database (migration 0011),
which every game server of a deployment shares. Each change is one database transaction; the
team's row is locked while a member joins (``FOR UPDATE`` on PostgreSQL; SQLite's writers are
serialized by ``BEGIN IMMEDIATE``), so two players taking the last place cannot both get it.
Each team also remembers its latest fork (``races/forks.py``): ``claim_fork`` and ``set_fork``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from crowdlearning.errors import CrowdLearningError
from crowdlearning.ledger.schema import race_team_members as members_t
from crowdlearning.ledger.schema import race_teams as teams_t

__all__ = [
    "NAME_MAX", "NAME_MIN", "NAME_PATTERN", "AlreadyInTeamError", "NotInTeamError", "Team",
    "TeamError", "TeamFullError", "TeamNameError", "TeamNameTakenError", "TeamStore",
    "UnknownTeamError", "check_name",
]

NAME_MIN, NAME_MAX = 3, 24
NAME_PATTERN = r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$"
_NAME = re.compile(NAME_PATTERN)


class TeamError(CrowdLearningError):
    """A team request refused; ``code`` and ``status`` are what the HTTP answer says."""

    code, status = "team_error", 409


class TeamNameError(TeamError, ValueError):
    code, status = "team_name_invalid", 422


class TeamNameTakenError(TeamError):
    code, status = "team_name_taken", 409


class AlreadyInTeamError(TeamError):
    code, status = "already_in_team", 409


class TeamFullError(TeamError):
    code, status = "team_full", 409


class NotInTeamError(TeamError):
    code, status = "not_in_team", 409


class UnknownTeamError(TeamError):
    code, status = "unknown_team", 404


def check_name(name: str) -> str:
    """The team name, or ``TeamNameError`` saying what is wrong with it."""
    if not NAME_MIN <= len(name) <= NAME_MAX:
        raise TeamNameError(f"a team name is {NAME_MIN} to {NAME_MAX} characters")
    if not _NAME.fullmatch(name):
        raise TeamNameError("a team name is words of letters (A-Z) and digits, with one space, "
                            "'-' or '_' between two words")
    return name


@dataclass(frozen=True)
class Team:
    id: int
    name: str
    created_at_ns: int
    members: tuple[int, ...]  # user ids, in the order they joined
    fork_version: int | None = None  # the latest team fork (``races/forks.py``)
    fork_built_at_ns: int | None = None


class TeamStore:
    """Teams and their members on the ledger's ``engine`` (see the module docstring)."""

    def __init__(self, engine: sa.Engine, max_members: int = 8,
                 clock: Callable[[], int] = time.time_ns) -> None:
        if max_members < 1:
            raise ValueError("a team holds at least one member")
        self.engine, self.max_members, self.clock = engine, max_members, clock

    # --- reading ------------------------------------------------------------------------------
    def teams(self) -> list[Team]:
        """Every team, oldest first."""
        with self.engine.connect() as c:
            return self._teams(c, None)

    def get(self, team_id: int) -> Team | None:
        with self.engine.connect() as c:
            found = self._teams(c, team_id)
        return found[0] if found else None

    def team_of(self, user_id: int) -> Team | None:
        with self.engine.connect() as c:
            team_id = c.execute(sa.select(members_t.c.team_id)
                                .where(members_t.c.user_id == user_id)).scalar()
            found = self._teams(c, team_id) if team_id is not None else []
        return found[0] if found else None

    @staticmethod
    def _teams(c: sa.Connection, team_id: int | None) -> list[Team]:
        query = teams_t.select().order_by(teams_t.c.id)
        members = (sa.select(members_t.c.team_id, members_t.c.user_id)
                   .order_by(members_t.c.joined_at_ns, members_t.c.user_id))
        if team_id is not None:
            query = query.where(teams_t.c.id == team_id)
            members = members.where(members_t.c.team_id == team_id)
        by_team: dict[int, list[int]] = {}
        for row in c.execute(members):
            by_team.setdefault(row.team_id, []).append(int(row.user_id))
        return [Team(r.id, r.name, r.created_at_ns, tuple(by_team.get(r.id, ())),
                     r.fork_version, r.fork_built_at_ns) for r in c.execute(query)]

    # --- membership ---------------------------------------------------------------------------
    def create(self, user_id: int, name: str) -> Team:
        """A new team named ``name`` with ``user_id`` its first member."""
        name = check_name(name)
        now = self.clock()
        try:
            with self.engine.begin() as c:
                self._not_in_a_team(c, user_id)
                team_id = c.execute(teams_t.insert().values(
                    name=name, name_key=name.lower(), created_at_ns=now)).inserted_primary_key[0]
                c.execute(members_t.insert().values(user_id=user_id, team_id=team_id,
                                                    joined_at_ns=now))
        except sa.exc.IntegrityError as exc:
            if self.team_of(user_id) is not None:  # joined one at the same moment
                raise AlreadyInTeamError("you are in a team already: leave it first") from exc
            raise TeamNameTakenError(f"a team is named {name!r} already (names are unique "
                                     "whatever their case)") from exc
        team = self.get(int(team_id))
        assert team is not None
        return team

    def join(self, user_id: int, team_id: int) -> Team:
        """``user_id`` joins the team (they are in no team, it has room)."""
        try:
            with self.engine.begin() as c:
                row = c.execute(sa.select(teams_t.c.id).where(teams_t.c.id == team_id)
                                .with_for_update()).first()
                if row is None:
                    raise UnknownTeamError(f"no team {team_id}")
                self._not_in_a_team(c, user_id)
                count = c.execute(sa.select(sa.func.count()).select_from(members_t)
                                  .where(members_t.c.team_id == team_id)).scalar_one()
                if count >= self.max_members:
                    raise TeamFullError(f"the team has {count} members, the most a team "
                                        "may have")
                c.execute(members_t.insert().values(user_id=user_id, team_id=team_id,
                                                    joined_at_ns=self.clock()))
        except sa.exc.IntegrityError as exc:  # joined a team at the same moment
            raise AlreadyInTeamError("you are in a team already: leave it first") from exc
        team = self.get(team_id)
        if team is None:  # dissolved at that very moment
            raise UnknownTeamError(f"no team {team_id}")
        return team

    def leave(self, user_id: int) -> Team:
        """``user_id`` leaves their team; the team as it is now (no members: dissolved)."""
        with self.engine.begin() as c:
            team_id = c.execute(sa.select(members_t.c.team_id)
                                .where(members_t.c.user_id == user_id)).scalar()
            if team_id is None:
                raise NotInTeamError("you are in no team")
            c.execute(sa.select(teams_t.c.id).where(teams_t.c.id == team_id).with_for_update())
            c.execute(members_t.delete().where(members_t.c.user_id == user_id))
            left = c.execute(sa.select(sa.func.count()).select_from(members_t)
                             .where(members_t.c.team_id == team_id)).scalar_one()
            found = self._teams(c, team_id)
            if left == 0:
                c.execute(teams_t.delete().where(teams_t.c.id == team_id))
        return found[0]

    @staticmethod
    def _not_in_a_team(c: sa.Connection, user_id: int) -> None:
        if c.execute(sa.select(members_t.c.team_id)
                     .where(members_t.c.user_id == user_id)).first() is not None:
            raise AlreadyInTeamError("you are in a team already: leave it first")

    # --- forks --------------------------------------------------------------------------------
    def claim_fork(self, team_id: int, interval_ns: int) -> bool:
        """Claim building the team's next fork: True for exactly one caller per
        ``interval_ns`` (whichever game server asks first)."""
        now = self.clock()
        with self.engine.begin() as c:
            done = c.execute(teams_t.update()
                             .where(teams_t.c.id == team_id,
                                    sa.or_(teams_t.c.fork_claimed_at_ns.is_(None),
                                           teams_t.c.fork_claimed_at_ns <= now - interval_ns))
                             .values(fork_claimed_at_ns=now))
        return done.rowcount == 1

    def set_fork(self, team_id: int, version: int) -> bool:
        """The team's latest fork is ``version``; False if the team was dissolved meanwhile."""
        with self.engine.begin() as c:
            done = c.execute(teams_t.update().where(teams_t.c.id == team_id)
                             .values(fork_version=version, fork_built_at_ns=self.clock()))
        return done.rowcount == 1
