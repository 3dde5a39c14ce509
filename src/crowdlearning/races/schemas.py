"""The races' HTTP answers (``server/routes/races.py``, ``/api/league/season``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["RacePublic", "RacesPublic", "ReplayPublic", "SeasonPublic"]


class CarPublic(BaseModel):
    car: int = Field(description="the car's number: its grid slot (0 = pole)")
    version: int = Field(description="the model version driving it")
    role: Literal["champion", "candidate", "previous", "crowd", "fork"] = Field(
        description="`crowd`: the crowd car, a copy of the champion driven by the crowd's "
        "aggregate input while anyone steers it; `fork`: a team fork, trained only on its "
        "team's accepted data")
    name: str
    team: str | None = Field(default=None, description="a team fork's team name")


class TrackPublic(BaseModel):
    family: str = Field(description="the track family, or `named` for a named track")
    track_seed: int
    name: str
    length_m: float | None = Field(default=None, description="known once the race is on")


class ResultCar(BaseModel):
    position: int
    car: int
    version: int
    role: str
    name: str
    team: str | None = Field(default=None, description="a team fork's team name")
    state: Literal["finished", "out", "racing"]
    reason: str | None = Field(description="why it is out: left_track, stalled, time_up")
    race_time_s: float | None
    best_lap_s: float | None
    lap_times_s: list[float]
    laps_done: int
    distance_m: float
    resets: int = Field(description="times it was put back on the track")
    points: int


class ResultPublic(BaseModel):
    race_id: str
    ticks: int
    race_time_s: float
    digest: str = Field(description="SHA-256 of every tick's poses: a replay gives the same")
    cars: list[ResultCar] = Field(description="in finishing order")


class RacePublic(BaseModel):
    race_id: str
    status: Literal["scheduled", "grid", "racing", "finished"]
    starts_at: float = Field(description="Unix time [s]")
    laps: int
    track: TrackPublic
    cars: list[CarPublic] = Field(description="the field in grid order (for a scheduled race: "
                                  "as it would be now; fixed about 20 s before the start)")
    share_url: str
    result: ResultPublic | None
    reactions: list[str]


class RacesPublic(BaseModel):
    now: float
    interval_s: float
    timetable: list[RacePublic] = Field(description="the race being run, then the next ones")
    recent: list[RacePublic] = Field(description="finished races, newest first")


class ReplayPublic(BaseModel):
    race: RacePublic
    frame_hz: float
    frames: list[dict] = Field(description="frames as on the race socket, 10 per race second")
    digest: str
    verified: bool = Field(description="the re-simulation's poses equal the live race's")


class CreditPublic(BaseModel):
    username: str
    contributions: int


class SeasonModel(BaseModel):
    rank: int
    version: int
    races: int
    wins: int
    podiums: int
    finishes: int
    points: int
    best_lap_s: float | None
    credits: list[CreditPublic] = Field(description="players whose accepted data built it "
                                        "(its lineage; a team fork: its own contributions), "
                                        "most contributions first")
    contributors: int
    team: str | None = Field(default=None, description="a team fork's team name")


class SeasonPlayer(BaseModel):
    rank: int
    username: str
    points: float = Field(description="the models' points, shared by contributions")
    models: list[int]


class SeasonPublic(BaseModel):
    season: str
    models: list[SeasonModel]
    players: list[SeasonPlayer]
