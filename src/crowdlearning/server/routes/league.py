"""The league: leaderboards per season, the champion's lap times over its versions, and the
race league's season table (models by race points, players credited through the lineage)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query, Request

from crowdlearning.races.schemas import SeasonPublic
from crowdlearning.server.deps import RuntimeDep
from crowdlearning.server.errors import NotFoundError, documented
from crowdlearning.server.schemas import LeaderboardPublic

router = APIRouter(prefix="/api/league", tags=["league"])


def season_start(now: float) -> tuple[str, float]:
    """Seasons are calendar months (UTC): the current season's name and start."""
    d = datetime.fromtimestamp(now, UTC)
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    return start.strftime("%Y-%m"), start.timestamp()


@router.get("/leaderboard", responses=documented("invalid_input"))
def leaderboard(runtime: RuntimeDep,
                by: Literal["improvement", "earnings"] = "improvement",
                limit: int = Query(default=20, ge=1, le=100)) -> LeaderboardPublic:
    season, since = season_start(time.time())
    return LeaderboardPublic(by=by, season=season,
                             rows=runtime.store.leaderboard(since, by, limit))


@router.get("/champion")
async def champion(runtime: RuntimeDep) -> list[dict]:
    """Each champion version (oldest first) on the hidden suite: lap times and completion."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(runtime.worker, runtime.judge.champion_curve,
                                      runtime.settings.server_eval_tracks)


@router.get("/season", responses=documented("invalid_input", "not_found"))
def race_season(request: Request,
                season: str | None = Query(default=None, pattern=r"^\d{4}-\d{2}$")
                ) -> SeasonPublic:
    """The race league's season (default: the current one): models ranked by race points, each
    with the players whose accepted data built it, and the players by their share of points."""
    races = getattr(request.app.state, "races", None)
    if races is None:
        raise NotFoundError("races are off on this server (CROWDLEARNING_RACES_ENABLED)")
    name = season or season_start(time.time())[0]
    return SeasonPublic(**races.season_table(name))
