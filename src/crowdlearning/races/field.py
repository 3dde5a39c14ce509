"""The field: which model versions race, and where each starts on the grid.

The champion always races; the other places (up to ``max_cars`` in all) go to the most recent
other versions of the registry: candidates newer than the champion (not promoted) and previous
champions and candidates older than it. With ``crowd`` (and room for two cars) the second place
goes to the **crowd car**: a copy of the champion driven by the crowd's aggregate input while
anyone steers it (``races/crowd.py``), by the champion's policy otherwise. Then up to
``fork_slots`` **team forks** (``races/forks.py``: a version trained only on one team's data),
in the order given (best placed, then most recent), each labelled with its team's name; the
rest of the places go to the most recent other versions. The grid order is
drawn from the race's seed, so it is the same on every server and in every replay. Grid slot
``k`` is ``k x gap_m`` behind the start line, alternately left and right of the centreline (a
staggered grid); every car starts rolling at the same speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

__all__ = ["Entrant", "GridSlot", "choose_field", "grid_slots"]

Role = Literal["champion", "candidate", "previous", "crowd", "fork"]


@dataclass(frozen=True)
class Entrant:
    """A car of the race: its number (= its grid slot, 0 on pole), the model version driving it,
    and what that version is to the champion; a team fork's team name."""

    car: int
    version: int
    role: Role
    team: str | None = None

    @property
    def name(self) -> str:
        if self.role == "crowd":
            return f"crowd car (v{self.version})"
        if self.role == "fork":
            return f"{self.team} (team fork v{self.version})"
        return f"v{self.version}" + (" (champion)" if self.role == "champion" else "")

    def to_dict(self) -> dict:
        return {**asdict(self), "name": self.name}


@dataclass(frozen=True)
class GridSlot:
    """Where a car starts: ``behind_m`` behind the line, ``lateral_m`` off the centreline
    (left positive)."""

    behind_m: float
    lateral_m: float


def choose_field(versions: Sequence[int], champion: int | None, max_cars: int,
                 seed: int, *, crowd: bool = False, forks: Sequence[tuple[int, str]] = (),
                 fork_slots: int = 0) -> list[Entrant]:
    """The cars of a race in grid order (see the module docstring); ``forks``: (version, team
    name) of the teams' forks, in order of preference (never among ``versions``)."""
    if max_cars < 1:
        raise ValueError("a race needs at least one car")
    fork_versions = {v for v, _ in forks}
    others = sorted((v for v in set(versions) if v != champion and v not in fork_versions),
                    reverse=True)

    def role(v: int) -> Role:
        if v == champion:
            return "champion"
        return "candidate" if champion is not None and v > champion else "previous"

    chosen: list[tuple[int, Role, str | None]] = (
        [(champion, "champion", None)] if champion is not None else [])
    if crowd and champion is not None and max_cars >= 2:
        chosen.append((champion, "crowd", None))
    chosen += [(v, "fork", team) for v, team in forks[:max(0, fork_slots)]]
    chosen = (chosen + [(v, role(v), None) for v in others])[:max_cars]
    if not chosen:
        return []
    order = np.random.default_rng([seed, 0x6A1D]).permutation(len(chosen)).tolist()
    return [Entrant(car, *chosen[i]) for car, i in enumerate(order)]


def grid_slots(cars: int, gap_m: float, width_m: float) -> list[GridSlot]:
    """A staggered grid of ``cars`` slots on a track ``width_m`` wide."""
    side = min(2.0, width_m / 4)
    return [GridSlot(k * gap_m, side if k % 2 == 0 else -side) for k in range(cars)]
