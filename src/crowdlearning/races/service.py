"""The races of a game server: prepared, run at 20 Hz, watched, recorded, replayed.

``RaceService.run_forever`` is one asyncio task on the game server's event loop, beside the game
loop (``server/game_loop.py``) rather than inside its tick. Why: a race is a handful of cars on a
track no player plays, so it has its own small ``RaceSim`` (up to 8 rows; the game loop's
simulator has fixed slots for players on the play tracks). A race step costs ~0.2 ms (median,
8 cars: observe, 8 small inferences, physics) and a frame with its JSON ~0.09 ms, 10 times a
second: a few percent of a 500-player game tick (~5 ms). It runs between game ticks on the same
thread, so it never runs during a tick and delays one by at most one race step; a bug in a race
cannot stop the players' game; and the game loop's tick figures (``tick_ms``) stay the players'
own. Everything slow (drawing the track, loading the models, recording the result, replays)
runs on the service's own worker thread, never on the loop.

For each race of the timetable (``schedule.Timetable``): about ``LEAD_S`` before its start the
plan is fixed (``plan_for``: the unlocked families and the registry's versions at that moment),
its track drawn and its models loaded; at the start time it runs until every car has finished
or is out, ``races_speed`` simulated ticks per wall tick (1: real time), a frame to every
spectator ``races_frame_hz`` times a second; then its result is recorded (``records.py``). A race
longer than the interval makes the next slots pass unrun (the timetable moves on).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from crowdlearning.config import Settings
from crowdlearning.evaluation.curriculum import unlocked_families
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.races.field import choose_field
from crowdlearning.races.records import RaceRecords, season_of
from crowdlearning.races.runner import RacePlan, RaceRules, RaceRunner, load_policies, replay
from crowdlearning.races.schedule import RaceSlot, Timetable, TrackChoice, choose_track
from crowdlearning.races.season import SeasonTable
from crowdlearning.races.spectators import REACTIONS, Spectators
from crowdlearning.server.throttle import Throttle
from crowdlearning.sim.params import CONTROL_RATE_HZ
from crowdlearning.sim.track import Track

__all__ = ["LEAD_S", "LiveRace", "RaceService"]

log = logging.getLogger(__name__)
LEAD_S = 20.0  # a race is planned and loaded this long before it starts (at most half the gap)
KEEP_REPLAYS = 4  # replays kept in memory (each a few hundred kB of frames)
Status = Literal["scheduled", "grid", "racing", "finished"]


@dataclass
class LiveRace:
    """The race being prepared or run."""

    slot: RaceSlot
    plan: RacePlan
    runner: RaceRunner
    spectators: Spectators
    status: Status = "grid"


class RaceService:
    """See the module docstring."""

    def __init__(self, settings: Settings, registry: ModelRegistry, engine: sa.Engine, *,
                 families: Callable[[], Sequence[str]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.registry, self.clock = settings, registry, clock
        self.families = families or (lambda: unlocked_families(registry.root))
        self.timetable = Timetable(settings.races_interval_s, settings.races_seed)
        self.records = RaceRecords(engine)
        self.season = SeasonTable(registry, self.records.players_of_runs)
        self.rules = RaceRules(
            laps=settings.races_laps, grid_gap_m=settings.races_grid_gap_m,
            start_speed_mps=settings.races_start_speed_mps, resets=settings.races_resets,
            max_lap_s=settings.races_max_lap_s,
            stall_ticks=round(settings.server_stall_seconds * CONTROL_RATE_HZ))
        self.live: LiveRace | None = None
        self._channels: dict[str, Spectators] = {}
        self._reactions = (Throttle(settings.races_reactions_per_min, 60.0)
                           if settings.races_reactions_per_min else None)
        self._replays: OrderedDict[str, tuple[list[dict], dict]] = OrderedDict()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="races")

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)

    # --- plans ------------------------------------------------------------------------------
    def plan_for(self, slot: RaceSlot) -> RacePlan:
        """The race's plan from what is unlocked and registered now (reads the registry)."""
        champion = self.registry.champion
        entrants = choose_field(self.registry.versions(), champion,
                                self.settings.races_max_cars, slot.seed)
        track = choose_track(slot.seed, tuple(self.families()), self.settings.races_track)
        return RacePlan(slot.race_id, slot.seed, slot.starts_at, track, tuple(entrants),
                        self.rules)

    def prepare(self, slot: RaceSlot) -> LiveRace:
        """Plan the race, draw its track, load its models (blocking: off the event loop)."""
        plan = self.plan_for(slot)
        runner = RaceRunner(plan, load_policies(self.registry,
                                                [e.version for e in plan.entrants]))
        return LiveRace(slot, plan, runner, self.channel(slot.race_id))

    def channel(self, race_id: str) -> Spectators:
        if race_id not in self._channels:
            self._channels[race_id] = Spectators(self.settings.races_max_spectators,
                                                 self.settings.server_ws_send_queue,
                                                 self._reactions)
        return self._channels[race_id]

    # --- the task ---------------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Run the timetable's races one after the other until cancelled."""
        try:
            while True:
                slot = self.timetable.upcoming(self.clock(), 1)[0]
                lead = min(LEAD_S, self.timetable.interval_s / 2)
                await asyncio.sleep(max(0.0, slot.starts_at - lead - self.clock()))
                self._drop_passed()
                try:
                    await self.run_race(slot)
                except Exception:  # a failed race must not stop the next ones, nor the game
                    log.exception("race %s failed", slot.race_id)
                    self.live = None
                    self._end_channel(slot.race_id, "race_failed",
                                      "this race failed on the server; see the next one")
                    await asyncio.sleep(1.0)
        finally:
            self.close()

    def _end_channel(self, race_id: str, code: str, message: str) -> None:
        channel = self._channels.pop(race_id, None)
        if channel is not None:
            channel.close({"type": "error", "code": code, "message": message})

    def _drop_passed(self) -> None:
        """Spectators waiting for a race whose start passed unrun (the race before it ran
        late) are told so, and its channel goes."""
        now = self.clock()
        for race_id in list(self._channels):
            slot = self.timetable.slot_of(race_id)
            if (slot is None or slot.starts_at < now - 1.0) and not self._is_live(race_id):
                self._end_channel(race_id, "not_run",
                                  "this race did not run (the one before it ran late)")

    async def run_race(self, slot: RaceSlot) -> dict:
        """Prepare, wait for the start, run, record and announce one race; its result."""
        loop = asyncio.get_running_loop()
        live = await loop.run_in_executor(self.worker, self.prepare, slot)
        self.live = live
        live.spectators.event({"type": "grid", "race": self.public(live.slot.race_id)})
        await asyncio.sleep(max(0.0, slot.starts_at - self.clock()))
        live.status = "racing"
        live.spectators.frame(live.runner.frame())
        await self._drive(live)
        result = live.runner.result()
        await loop.run_in_executor(self.worker, self.records.add, live.plan, result,
                                   self.clock())
        live.status = "finished"
        live.spectators.close({"type": "result", "race": self.public(slot.race_id),
                               "result": result})
        self._channels.pop(slot.race_id, None)
        return result

    async def _drive(self, live: LiveRace) -> None:
        """Step the race in real time (``races_speed`` ticks a wall tick), frames to spectators
        ``races_frame_hz`` times a second. A late wall tick is not made up for."""
        loop = asyncio.get_running_loop()
        period = 1.0 / CONTROL_RATE_HZ
        every = max(1, round(CONTROL_RATE_HZ / self.settings.races_frame_hz))
        runner, wall_ticks, next_at = live.runner, 0, loop.time()
        while not runner.finished:
            for _ in range(self.settings.races_speed):
                runner.step()
            wall_ticks += 1
            if wall_ticks % every == 0 or runner.finished:
                live.spectators.frame(runner.frame())
            next_at += period
            now = loop.time()
            if next_at < now - period:
                next_at = now
            await asyncio.sleep(max(0.0, next_at - now))

    # --- what the routes ask ------------------------------------------------------------------
    def status_of(self, race_id: str) -> Status | None:
        """Where the race is (None: no such race, or one that passed unrun)."""
        if self._is_live(race_id):
            return self.live.status  # type: ignore[union-attr]
        slot = self.timetable.slot_of(race_id)
        if slot is None:
            return None
        if self.records.get(race_id) is not None:
            return "finished"
        return "scheduled" if slot.starts_at > self.clock() else None

    def public(self, race_id: str) -> dict | None:
        """A race as the API and the socket's ``hello`` name it (None if unknown)."""
        if self.live is not None and self._is_live(race_id):
            return _race_public(self.live.plan, self.live.status,
                                track_length_m=self.live.runner.length_m)
        record = self.records.get(race_id)
        if record is not None:
            return _race_public(record.plan, "finished", result=record.result)
        slot = self.timetable.slot_of(race_id)
        if slot is None or slot.starts_at <= self.clock():
            return None
        return _race_public(self.plan_for(slot), "scheduled")

    def _is_live(self, race_id: str) -> bool:
        """The race is being prepared or run (a finished one is read from the records)."""
        return (self.live is not None and self.live.slot.race_id == race_id
                and self.live.status != "finished")

    def track(self, race_id: str) -> Track | None:
        """The race's track (None if unknown)."""
        if self.live is not None and self.live.slot.race_id == race_id:
            return self.live.runner.track
        record = self.records.get(race_id)
        if record is not None:
            return _track(record.plan.track)
        slot = self.timetable.slot_of(race_id)
        if slot is None or slot.starts_at <= self.clock():
            return None
        return _track(self.plan_for(slot).track)

    def timetable_public(self) -> list[dict]:
        """The next races (a race being run first)."""
        now = self.clock()
        out = []
        if self.live is not None and self.live.status != "finished":
            out.append(self.public(self.live.slot.race_id))
        for slot in self.timetable.upcoming(now, self.settings.races_timetable):
            if self.live is not None and slot.race_id == self.live.slot.race_id:
                continue
            out.append(_race_public(self.plan_for(slot), "scheduled"))
        return out

    def recent_public(self, limit: int) -> list[dict]:
        return [_race_public(r.plan, "finished", result=r.result)
                for r in self.records.recent(limit)]

    def subscribe(self, race_id: str) -> tuple[Spectators | None, str]:
        """The spectators' channel of a live or scheduled race, or (None, why)."""
        status = self.status_of(race_id)
        if status is None:
            return None, "unknown_race"
        if status == "finished":
            return None, "finished"
        if status == "scheduled" and race_id not in {
                s.race_id for s in self.timetable.upcoming(self.clock(),
                                                           self.settings.races_timetable)}:
            return None, "not_yet"
        return self.channel(race_id), ""

    def replay(self, race_id: str) -> tuple[list[dict], dict] | None:
        """A finished race re-simulated from its plan: frames at 10 Hz of race time and the
        result (blocking, seconds of CPU for a long race: call it on ``worker``)."""
        if race_id in self._replays:
            self._replays.move_to_end(race_id)
            return self._replays[race_id]
        record = self.records.get(race_id)
        if record is None:
            return None
        policies = load_policies(self.registry, [e.version for e in record.plan.entrants])
        frames, result = replay(record.plan, policies,
                                frame_every=round(CONTROL_RATE_HZ / 10))
        self._replays[race_id] = (frames, result)
        while len(self._replays) > KEEP_REPLAYS:
            self._replays.popitem(last=False)
        return frames, result

    def season_table(self, season: str) -> dict:
        return self.season.table(season, self.records.season_models(season))

    @staticmethod
    def season_of(when: float) -> str:
        return season_of(when)


@functools.lru_cache(maxsize=16)
def _track(choice: TrackChoice) -> Track:
    return choice.track()


def _race_public(plan: RacePlan, status: Status, *, result: dict | None = None,
                 track_length_m: float | None = None) -> dict:
    return {"race_id": plan.race_id, "status": status, "starts_at": plan.starts_at,
            "laps": plan.rules.laps, "track": {"family": plan.track.family,
                                               "track_seed": plan.track.track_seed,
                                               "name": plan.track.name,
                                               "length_m": track_length_m},
            "cars": [e.to_dict() for e in plan.entrants],
            "share_url": f"/watch?race={plan.race_id}", "result": result,
            "reactions": list(REACTIONS)}
