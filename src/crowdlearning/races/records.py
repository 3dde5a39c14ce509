"""Finished races in the web server's database (the ``Store``'s engine; tables created on first
use): one row per race (its plan, result and the digest of its poses) and one per car (for the
season table). A race is recorded once: every server computes the same race from the same seed,
so a second server finishing it finds it recorded and keeps the first record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from crowdlearning.races.runner import RacePlan
from crowdlearning.server.store import runs, users

__all__ = ["RaceRecord", "RaceRecords", "season_of"]

_meta = sa.MetaData()
races = sa.Table(
    "races", _meta,
    sa.Column("race_id", sa.String(24), primary_key=True),
    sa.Column("starts_at", sa.Float, nullable=False, index=True),
    sa.Column("season", sa.String(7), nullable=False, index=True),
    sa.Column("track_name", sa.String(64), nullable=False),
    sa.Column("laps", sa.Integer, nullable=False),
    sa.Column("plan", sa.Text, nullable=False),  # RacePlan.to_json()
    sa.Column("result", sa.Text, nullable=False),  # RaceRunner.result(), JSON
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
)
race_cars = sa.Table(
    "race_cars", _meta,
    sa.Column("race_id", sa.String(24), sa.ForeignKey("races.race_id"), primary_key=True),
    sa.Column("car", sa.Integer, primary_key=True),
    sa.Column("season", sa.String(7), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("finished", sa.Boolean, nullable=False),
    sa.Column("race_time_s", sa.Float),
    sa.Column("best_lap_s", sa.Float),
    sa.Column("points", sa.Integer, nullable=False),
)


def season_of(when: float) -> str:
    """Seasons are calendar months (UTC), as the league's: ``YYYY-MM``."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m")


@dataclass(frozen=True)
class RaceRecord:
    plan: RacePlan
    result: dict
    recorded_at: float

    @property
    def race_id(self) -> str:
        return self.plan.race_id


class RaceRecords:
    """The races and race_cars tables on ``engine`` (see the module docstring)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        try:
            _meta.create_all(engine)
        except sa.exc.DBAPIError:  # another game server created them at the same moment
            _meta.create_all(engine)

    def add(self, plan: RacePlan, result: dict, recorded_at: float) -> bool:
        """Record a finished race; False if it was recorded already (by this or another
        server)."""
        season = season_of(plan.starts_at)
        try:
            with self.engine.begin() as c:
                c.execute(races.insert().values(
                    race_id=plan.race_id, starts_at=plan.starts_at, season=season,
                    track_name=plan.track.name, laps=plan.rules.laps, plan=plan.to_json(),
                    result=json.dumps(result, separators=(",", ":")), digest=result["digest"],
                    recorded_at=recorded_at))
                c.execute(race_cars.insert(), [
                    {"race_id": plan.race_id, "car": row["car"], "season": season,
                     "version": row["version"], "position": row["position"],
                     "finished": row["state"] == "finished", "race_time_s": row["race_time_s"],
                     "best_lap_s": row["best_lap_s"], "points": row["points"]}
                    for row in result["cars"] if row.get("role") != "crowd"])
        except sa.exc.IntegrityError:
            return False
        return True

    def get(self, race_id: str) -> RaceRecord | None:
        with self.engine.connect() as c:
            row = c.execute(races.select().where(races.c.race_id == race_id)).first()
        return None if row is None else _record(row)

    def recent(self, limit: int) -> list[RaceRecord]:
        query = races.select().order_by(races.c.starts_at.desc()).limit(limit)
        with self.engine.connect() as c:
            return [_record(row) for row in c.execute(query)]

    def season_models(self, season: str) -> list[dict[str, Any]]:
        """Per model version this season: races, wins, podiums, finishes, points, best lap;
        ranked by points, then wins, then the older version first."""
        c_ = race_cars.c
        query = (sa.select(
            c_.version, sa.func.count().label("races"),
            sa.func.sum(sa.case((c_.finished & (c_.position == 1), 1), else_=0)).label("wins"),
            sa.func.sum(sa.case((c_.finished & (c_.position <= 3), 1), else_=0)).label("podiums"),
            sa.func.sum(sa.case((c_.finished, 1), else_=0)).label("finishes"),
            sa.func.sum(c_.points).label("points"),
            sa.func.min(c_.best_lap_s).label("best_lap_s"))
            .where(c_.season == season).group_by(c_.version)
            .order_by(sa.desc("points"), sa.desc("wins"), c_.version))
        with self.engine.connect() as c:
            return [dict(row._mapping) for row in c.execute(query)]

    def players_of_runs(self, run_ids: list[str]) -> dict[str, str]:
        """The player (username) who played each of ``run_ids`` (a contribution's id is its
        run's), for the runs this server's store knows."""
        out: dict[str, str] = {}
        with self.engine.connect() as c:
            for i in range(0, len(run_ids), 500):
                chunk = run_ids[i:i + 500]
                query = (sa.select(runs.c.run_id, users.c.username)
                         .join(users, users.c.id == runs.c.user_id)
                         .where(runs.c.run_id.in_(chunk)))
                out.update({r.run_id: r.username for r in c.execute(query)})
        return out


def _record(row: sa.Row) -> RaceRecord:
    return RaceRecord(RacePlan.from_json(row.plan), json.loads(row.result), row.recorded_at)
