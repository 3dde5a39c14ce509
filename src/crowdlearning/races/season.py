"""The season table: models ranked by race points, and the players whose data built them.

Points per race: 25, 18, 15, 12, 10, 8, 6, 4 for the first eight finishers (``runner.POINTS``),
none for a car that is out. A season is a calendar month (UTC), as the league's leaderboards.

Credit goes through the registry's lineage: a version's data is every contribution merged into
it or into one of its ancestors (``ModelRegistry.contributions_in``); a contribution's id is the
id of the run that made it, and the store knows who played each run. A player's share of a
model is the part of that model's crowd contributions that are theirs; a player's points are
the sum over models of the model's points times that share (the initial demonstrations and
contributions no player of this server made are not shared out).

A team fork (``races/forks.py``) is ranked like any model; its data is its own contribution list
(its team members' accepted contributions it was trained on, ``ModelMeta.contributions``), so
its points go to the members whose data built it, even after they left the team; its row names
the team.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from crowdlearning.learning.dagger import BASE_DATA_ID
from crowdlearning.learning.registry import ModelRegistry, RegistryError, is_fork

__all__ = ["SeasonTable", "model_credits", "player_points"]


def model_credits(registry: ModelRegistry, version: int,
                  players_of_runs: Callable[[list[str]], dict[str, str]]) -> Counter[str]:
    """How many contributions of each player the version was built from (its lineage; a team
    fork's: its own contribution list)."""
    try:
        meta = registry.meta(version)
        ids = meta.contributions if is_fork(meta) else registry.contributions_in(version)
        ids = [i for i in ids if i != BASE_DATA_ID]
    except RegistryError:
        return Counter()
    who = players_of_runs(ids)
    return Counter(who[i] for i in ids if i in who)


def player_points(models: list[dict], credits: dict[int, Counter[str]]) -> list[dict]:
    """Players ranked by their share of the models' points (see the module docstring)."""
    points: dict[str, float] = {}
    built: dict[str, set[int]] = {}
    for row in models:
        counts = credits.get(row["version"], Counter())
        total = sum(counts.values())
        for player, n in counts.items():
            points[player] = points.get(player, 0.0) + row["points"] * n / total
            built.setdefault(player, set()).add(row["version"])
    ranked = sorted(points, key=lambda p: (-points[p], p))
    return [{"rank": i + 1, "username": p, "points": round(points[p], 2),
             "models": sorted(built[p])} for i, p in enumerate(ranked)]


class SeasonTable:
    """The season's models and players; lineage credits cached per version (a version's
    lineage never changes)."""

    def __init__(self, registry: ModelRegistry,
                 players_of_runs: Callable[[list[str]], dict[str, str]]) -> None:
        self.registry, self.players_of_runs = registry, players_of_runs
        self._credits: dict[int, Counter[str]] = {}
        self._teams: dict[int, str | None] = {}  # version -> its team's name (a team fork)

    def credits(self, version: int) -> Counter[str]:
        if version not in self._credits:
            self._credits[version] = model_credits(self.registry, version, self.players_of_runs)
        return self._credits[version]

    def team(self, version: int) -> str | None:
        """The team name of a team fork; None for any other version."""
        if version not in self._teams:
            try:
                meta = self.registry.meta(version)
            except RegistryError:
                return None
            self._teams[version] = str(meta.training["team_name"]) if is_fork(meta) else None
        return self._teams[version]

    def table(self, season: str, models: list[dict], top_credits: int = 5) -> dict:
        """``models``: ``RaceRecords.season_models(season)``."""
        credits = {row["version"]: self.credits(row["version"]) for row in models}
        rows = [{"rank": i + 1, **row,
                 "credits": [{"username": p, "contributions": n}
                             for p, n in credits[row["version"]].most_common(top_credits)],
                 "contributors": len(credits[row["version"]]),
                 "team": self.team(row["version"])}
                for i, row in enumerate(models)]
        return {"season": season, "models": rows, "players": player_points(models, credits)}
