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
runs from the service's own worker thread, never on the loop; its pure computation (the track
drawn and packed, the models' weights read, the replays' re-simulation) in a child process
(``races/offload.py``, ``races_offload``), so that it never holds the game loop's GIL
(docs/benchmarks.md, "Race jobs beside the game loop"). The live race, its inference
included, stays on the loop.

For each race of the timetable (``schedule.Timetable``): about ``LEAD_S`` before its start the
plan is fixed (``plan_for``: the unlocked families and the registry's versions at that moment),
its track drawn and its models loaded; at the start time it runs until every car has finished
or is out, ``races_speed`` simulated ticks per wall tick (1: real time), a frame to every
spectator ``races_frame_hz`` times a second; then its result is recorded (``records.py``). A race
longer than the interval makes the next slots pass unrun (the timetable moves on). A server that
starts while a race is on (restarted, or added behind the balancer while the others run it)
simulates that race from its start up to the present and runs the rest live
(``join_the_race_on``): races are deterministic from their plan.

Crowd play (``races/crowd.py``): signed-in spectators join a car (``join``), steer it
(``steer``) and leave (``leave``); each car segment they labelled becomes their contribution,
handed to the referee (``submit``: ``Referee.on_finish``) as a practice run, so its verdict
reaches their socket and their wallet's run history. The crowd car's executed input goes into
the recorded plan (``RacePlan.crowd``): the replay re-simulates the same race.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from crowdlearning.config import Settings
from crowdlearning.evaluation.curriculum import unlocked_families
from crowdlearning.learning.device import WheelParams
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.races.chat import Chat, MuteStore
from crowdlearning.races.chat_relay import ChatRelay
from crowdlearning.races.crowd import CrowdSeats, Seat, labeller_contribution, verdict_weight
from crowdlearning.races.field import choose_field
from crowdlearning.races.forks import TeamForks
from crowdlearning.races.offload import Offload, draw_track, prepare_race, replay_race
from crowdlearning.races.records import RaceRecords, season_of
from crowdlearning.races.runner import (
    RacePlan,
    RaceRules,
    RaceRunner,
    Segment,
)
from crowdlearning.races.schedule import RaceSlot, Timetable, TrackChoice, choose_track
from crowdlearning.races.season import SeasonTable
from crowdlearning.races.spectators import REACTIONS, SpectatorBox, Spectators
from crowdlearning.server.game_loop import FinishedRun, RunSpec
from crowdlearning.server.throttle import Throttle
from crowdlearning.sim.params import CONTROL_RATE_HZ
from crowdlearning.sim.track import Track

__all__ = ["LEAD_S", "LiveRace", "RaceService"]

log = logging.getLogger(__name__)
LEAD_S = 20.0  # a race is planned and loaded this long before it starts (at most half the gap)
KEEP_REPLAYS = 4  # replays kept in memory (each a few hundred kB of frames)
KEEP_TRACKS = 16  # tracks of recorded or scheduled races kept in memory (``track``)
Status = Literal["scheduled", "grid", "racing", "finished"]


@dataclass
class LiveRace:
    """The race being prepared or run."""

    slot: RaceSlot
    plan: RacePlan
    runner: RaceRunner
    spectators: Spectators
    status: Status = "grid"
    seats: CrowdSeats | None = None
    boxes: dict[int, SpectatorBox] = dataclasses.field(default_factory=dict)  # by user id
    frame_tick: int = 0  # the tick of the newest frame sent
    catching_up: bool = False  # simulated up to the present on the worker (``catch_up``)


class RaceService:
    """See the module docstring."""

    def __init__(self, settings: Settings, registry: ModelRegistry, engine: sa.Engine, *,
                 families: Callable[[], Sequence[str]] | None = None,
                 clock: Callable[[], float] = time.time,
                 submit: Callable[[FinishedRun], None] | None = None,
                 decisions_of: Callable[[int, int], list[str]] | None = None,
                 mutes_engine: sa.Engine | None = None,
                 forks: TeamForks | None = None, offload: Offload | None = None) -> None:
        self.settings, self.registry, self.clock = settings, registry, clock
        self.forks = forks  # the teams' forks (races/forks.py): built elsewhere, raced here
        self.submit = submit  # a labeller's finished contribution goes there (the referee)
        self.decisions_of = decisions_of  # (user id, n) -> their latest verdicts' decisions
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
        self._tracks: OrderedDict[TrackChoice, Track] = OrderedDict()  # (route threads)
        self._tracks_lock = threading.Lock()
        # race chat (races/chat.py): mutes in the shared ledger database when there is one
        self.chat = Chat(settings, MuteStore(mutes_engine) if mutes_engine is not None else None,
                         clock=clock)
        # ... and across the game servers sharing a judge's Redis (races/chat_relay.py)
        self.chat_relay = ChatRelay(settings.judge_url) if settings.judge_url else None
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="races")
        # the worker's pure computation, in a child process (started with ``run_forever``, or
        # at the first job); ``offload`` given: the caller's, left running by ``close``
        self._own_offload = offload is None
        self.offload = offload or Offload(settings.races_offload, name="races")

    def close(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)
        if self._own_offload:
            self.offload.close()

    # --- plans ------------------------------------------------------------------------------
    def plan_for(self, slot: RaceSlot) -> RacePlan:
        """The race's plan from what is unlocked and registered now (reads the registry)."""
        champion = self.registry.champion
        forks: list[tuple[int, str]] = []
        if self.forks is not None and self.settings.races_fork_slots:
            points = {r["version"]: r["points"]
                      for r in self.records.season_models(season_of(slot.starts_at))}
            forks = self.forks.racing(points)
        entrants = choose_field(self.registry.mainline_versions(), champion,
                                self.settings.races_max_cars, slot.seed,
                                crowd=self.settings.races_crowd_car, forks=forks,
                                fork_slots=self.settings.races_fork_slots)
        track = choose_track(slot.seed, tuple(self.families()), self.settings.races_track,
                             play_tracks=self.settings.server_play_tracks)
        return RacePlan(slot.race_id, slot.seed, slot.starts_at, track, tuple(entrants),
                        self.rules)

    def prepare(self, slot: RaceSlot) -> LiveRace:
        """Plan the race, draw its track, load its models (blocking: off the event loop)."""
        plan = self.plan_for(slot)
        crowd = self.settings.races_max_labellers > 0
        prepared = self.offload.run(prepare_race, plan, str(self.registry.root))
        runner = RaceRunner(plan, prepared.policies(), prepared.track, bank=prepared.bank,
                            record=crowd)
        seats = CrowdSeats(runner, self.settings.races_max_labellers) if crowd else None
        if seats is not None:
            runner.crowd_input = seats.tick
        return LiveRace(slot, plan, runner, self.channel(slot.race_id), seats=seats)

    def channel(self, race_id: str) -> Spectators:
        if race_id not in self._channels:
            self._channels[race_id] = Spectators(self.settings.races_max_spectators,
                                                 self.settings.server_ws_send_queue,
                                                 self._reactions,
                                                 chat=self.chat.room(race_id))
        return self._channels[race_id]

    # --- the task ---------------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Run the timetable's races one after the other until cancelled."""
        relay = (asyncio.create_task(self.chat_relay.run(self._channels.get))
                 if self.chat_relay is not None else None)
        try:
            # the child's imports now, on the worker (ahead of the first race's preparation),
            # not in the first race's lead time; the timetable does not wait for them
            self.worker.submit(self.offload.start)
            lead = min(LEAD_S, self.timetable.interval_s / 2)
            # the first race after this server started is run even if joining the race
            # before it (and the child's start) made it late: caught up, not dropped
            first: RaceSlot | None = self.timetable.upcoming(self.clock(), 1)[0]
            await self.join_the_race_on()
            while True:
                slot = self.timetable.upcoming(self.clock(), 1)[0]
                late = first is not None and first.starts_at <= self.clock() < (
                    first.starts_at + lead)
                if late:
                    slot = first  # type: ignore[assignment]
                first = None
                await asyncio.sleep(max(0.0, slot.starts_at - lead - self.clock()))
                self._drop_passed(keep=slot.race_id)
                try:
                    await self.run_race(slot, catch_up=late)
                except Exception:  # a failed race must not stop the next ones, nor the game
                    self._failed(slot.race_id)
                    await asyncio.sleep(1.0)
        finally:
            if relay is not None:
                relay.cancel()
                await asyncio.gather(relay, return_exceptions=True)
            self.close()

    async def join_the_race_on(self) -> dict | None:
        """At start: the race of the timetable that started before this server did and may
        still be on (another game server runs it, and this one restarted or was just added
        behind the balancer) is prepared now, simulated up to the present and then run live
        like the others, so the spectators the balancer sends here see it instead of an
        ``unknown_race``. Its result (None if no race is on)."""
        loop = asyncio.get_running_loop()
        now = self.clock()
        slot = self.timetable.latest(now)
        longest_s = self.rules.laps * self.rules.max_lap_s / self.settings.races_speed
        if now - slot.starts_at >= longest_s + 1.0:
            return None
        if await loop.run_in_executor(self.worker, self.records.get, slot.race_id) is not None:
            return None  # over, and recorded by a server that ran it
        try:
            return await self.run_race(slot, catch_up=True)
        except Exception:  # the next races are still run
            self._failed(slot.race_id)
            return None

    def catch_up(self, live: LiveRace) -> int:
        """Simulate ``live`` from its start up to the present (blocking: on the worker, before
        the loop sees the race's runner); the ticks simulated. A race is deterministic from its
        plan, so the cars are where they are on a server that ran it from its start, except
        for what the crowd steered there (not known here: the crowd car drives itself over the
        part caught up, as it does with nobody steering)."""
        runner = live.runner
        per_s = CONTROL_RATE_HZ * self.settings.races_speed
        while not runner.finished:
            behind = int((self.clock() - live.slot.starts_at) * per_s) - runner.tick
            if behind <= 0:
                break
            for _ in range(min(behind, 200)):  # the clock moves on while this runs
                runner.step()
                if runner.finished:
                    break
        runner.closed = []  # nobody labelled the caught-up part
        return runner.tick

    def _failed(self, race_id: str) -> None:
        """A race raised: logged, no longer live, its spectators told (call from ``except``)."""
        log.exception("race %s failed", race_id)
        self.live = None
        self._end_channel(race_id, "race_failed",
                          "this race failed on the server; see the next one")

    def _end_channel(self, race_id: str, code: str, message: str) -> None:
        channel = self._channels.pop(race_id, None)
        if channel is not None:
            channel.close({"type": "error", "code": code, "message": message})

    def _drop_passed(self, keep: str = "") -> None:
        """Spectators waiting for a race whose start passed unrun (the race before it ran
        late) are told so, and its channel goes (``keep``: the race about to be run)."""
        now = self.clock()
        for race_id in list(self._channels):
            slot = self.timetable.slot_of(race_id)
            if race_id != keep and (slot is None or slot.starts_at < now - 1.0) \
                    and not self._is_live(race_id):
                self._end_channel(race_id, "not_run",
                                  "this race did not run (the one before it ran late)")

    async def run_race(self, slot: RaceSlot, *, catch_up: bool = False) -> dict:
        """Prepare, wait for the start, run, record and announce one race; its result.
        ``catch_up``: a race that started already, simulated up to the present first
        (``join_the_race_on``); its spectators get frames once it is."""
        loop = asyncio.get_running_loop()
        live = await loop.run_in_executor(self.worker, self.prepare, slot)
        if catch_up:
            live.status, live.catching_up = "racing", True
            self.live = live
            ticks = await loop.run_in_executor(self.worker, self.catch_up, live)
            live.catching_up = False
            log.info("race %s joined on at tick %d", slot.race_id, ticks)
        else:
            self.live = live
            live.spectators.event({"type": "grid", "race": self.public(live.slot.race_id)})
            await asyncio.sleep(max(0.0, slot.starts_at - self.clock()))
            live.status = "racing"
        self._frame(live)
        try:
            await self._drive(live)
        finally:
            live.runner.close_all()
            self._hand_in(live)
            for user_id in list(live.seats.seats) if live.seats else []:
                live.seats.leave(user_id)
        result = live.runner.result()
        plan = dataclasses.replace(live.plan, crowd=tuple(live.runner.crowd_log))
        await loop.run_in_executor(self.worker, self.records.add, plan, result,
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
                if runner.closed:
                    self._hand_in(live)
            wall_ticks += 1
            if wall_ticks % every == 0 or runner.finished:
                self._frame(live)
            next_at += period
            now = loop.time()
            if next_at < now - period:
                next_at = now
            await asyncio.sleep(max(0.0, next_at - now))

    def _frame(self, live: LiveRace) -> None:
        """A frame to every spectator, with how many steer each car (and who drives the crowd
        car)."""
        frame = live.runner.frame()
        if live.seats is not None:
            counts = live.seats.counts()
            for car in frame["cars"]:
                car["steering"] = counts[car["car"]]
            frame["labellers"] = len(live.seats)
        crowd = live.runner.crowd_car
        if crowd is not None:
            frame["cars"][crowd]["driver"] = "crowd" if live.runner.crowd_driving else "policy"
        live.frame_tick = frame["tick"]
        live.spectators.frame(frame)

    # --- crowd play -----------------------------------------------------------------------
    async def join(self, race_id: str, user: Any, car: int, box: SpectatorBox) -> dict:
        """Seat a signed-in spectator on ``car`` of the live race: the ``joined`` message, or
        an ``error`` one."""
        live = self.live
        if live is None or not self._is_live(race_id) or live.seats is None:
            return _error("not_racing", "join a car of a race on the grid or racing")
        if live.catching_up:  # its runner is being stepped on the worker
            return _error("not_racing", "this server is catching up on the race: join in a "
                          "second")
        if not 0 <= car < live.runner.n:
            return _error("unknown_car", f"car must be 0..{live.runner.n - 1}")
        seats = live.seats
        if user.id in seats.seats:
            return _error("already_steering", "you steer a car of this race already: "
                          "leave it first")
        if len(seats) >= seats.max_seats:
            return _error("full", "every seat of this race is taken")
        decisions: list[str] = []
        if self.decisions_of is not None:
            decisions = await asyncio.to_thread(self.decisions_of, user.id,
                                                self.settings.races_weight_runs)
        if live is not self.live or live.status == "finished" or user.id in seats.seats:
            return _error("not_racing", "the race is over")
        try:
            seat = seats.join(user.id, user.player_id, user.username, car,
                              verdict_weight(decisions))
        except (ValueError, OverflowError) as exc:
            return _error("full", str(exc))
        live.boxes[user.id] = box
        entrant = live.plan.entrants[car]
        return {"type": "joined", "car": car, "name": entrant.name,
                "crowd": entrant.role == "crowd", "weight": round(seat.weight, 3),
                "tick": live.frame_tick}

    def steer(self, race_id: str, user_id: int, tick: int, steer: float | None,
              throttle: float | None, keys: int | None, device: str) -> dict | None:
        """A labeller's input answering frame ``tick``; an ``error`` message if refused."""
        live = self.live
        seat = (live.seats.seats.get(user_id) if live is not None and live.seats is not None
                and self._is_live(race_id) else None)
        if seat is None:
            return _error("not_steering", "join a car first")
        if tick > live.frame_tick:  # type: ignore[union-attr]
            return _error("future_tick", f"tick {tick} was never sent (newest is "
                          f"{live.frame_tick}); input ignored")  # type: ignore[union-attr]
        if tick < max(seat.last_input_tick, 0):
            return _error("out_of_order", f"tick {tick} is older than the previous input's "
                          f"tick {seat.last_input_tick}; input ignored")
        live.seats.set_input(seat, tick, steer, throttle, keys, device)  # type: ignore
        return None

    def leave(self, race_id: str, user_id: int, box: SpectatorBox | None = None) -> int:
        """The labeller lets go: their contribution so far is handed in; how many. With
        ``box``: only if that socket is the one that joined (another tab of the same player
        closing leaves the seat alone)."""
        live = self.live
        if live is None or live.seats is None or user_id not in live.seats.seats:
            return 0
        if box is not None and live.boxes.get(user_id) is not box:
            return 0
        seat = live.seats.seats[user_id]
        segment = dataclasses.replace(live.runner.open_segment(seat.car), reason="left")
        sent = self._submit(live, seat, segment) if self._is_live(race_id) else 0
        live.seats.leave(user_id)
        live.boxes.pop(user_id, None)
        return sent

    def _hand_in(self, live: LiveRace) -> None:
        """The segments that ended: each labeller of that car hands in their contribution."""
        runner, seats = live.runner, live.seats
        closed, runner.closed = runner.closed, []
        if seats is None:
            return
        for segment in closed:
            for seat in [s for s in seats.seats.values() if s.car == segment.car]:
                self._submit(live, seat, segment)
            if segment.reason == "reset":
                seats.rest_wheels(segment.car)

    def _submit(self, live: LiveRace, seat: Seat, segment: Segment) -> int:
        box = live.boxes.get(seat.user_id)
        run_id = f"race-{uuid.uuid4().hex[:20]}"
        assert live.seats is not None
        contribution = None
        if segment.end > segment.first:
            contribution = labeller_contribution(
                run_id, seat, segment, live.runner.recorded(segment),
                live.seats.inputs(seat, segment),
                model_version=live.plan.entrants[segment.car].version,
                race_id=live.plan.race_id, wheel=WheelParams())
        submitted = contribution is not None and self.submit is not None
        if box is not None:
            box.event({"type": "contribution", "run_id": run_id if submitted else None,
                       "car": segment.car, "reason": segment.reason,
                       "ticks": segment.end - segment.first,
                       "labels": 0 if contribution is None
                       else int(contribution.has_input.sum()), "submitted": submitted})
        if not submitted or contribution is None or self.submit is None:
            return 0
        spec = RunSpec(run_id, seat.player_id, seat.username, live.plan.track.track_seed,
                       "label", False, beta=0.0)
        if box is not None:
            box.awaiting += 1
        self.submit(FinishedRun(spec, segment.reason, contribution, box or SpectatorBox(8)))
        return 1

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
        """The race's track (None if unknown; blocking: a track not drawn yet is drawn by the
        offload, tens of ms)."""
        if self.live is not None and self.live.slot.race_id == race_id:
            return self.live.runner.track
        record = self.records.get(race_id)
        if record is not None:
            return self._track(record.plan.track)
        slot = self.timetable.slot_of(race_id)
        if slot is None or slot.starts_at <= self.clock():
            return None
        return self._track(self.plan_for(slot).track)

    def _track(self, choice: TrackChoice) -> Track:
        """A track drawn once (by the offload: off the game loop's GIL) and kept."""
        with self._tracks_lock:
            found = self._tracks.get(choice)
        if found is None:
            found = self.offload.run(draw_track, choice)
            with self._tracks_lock:
                self._tracks[choice] = found
                while len(self._tracks) > KEEP_TRACKS:
                    self._tracks.popitem(last=False)
        return found

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
        frames, result = self.offload.run(replay_race, record.plan, str(self.registry.root),
                                          round(CONTROL_RATE_HZ / 10))
        self._replays[race_id] = (frames, result)
        while len(self._replays) > KEEP_REPLAYS:
            self._replays.popitem(last=False)
        return frames, result

    def season_table(self, season: str) -> dict:
        return self.season.table(season, self.records.season_models(season))

    @staticmethod
    def season_of(when: float) -> str:
        return season_of(when)


def _error(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}


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
