"""A game server that starts while a race is on (restarted, or added behind the balancer)
simulates that race up to the present and runs it live: the same race, the same result."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from crowdlearning.config import Settings
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.races.offload import Offload
from crowdlearning.races.service import LiveRace, RaceService
from crowdlearning.server.store import Store

INTERVAL_S = 60.0
START = 6_000.0  # a slot of the timetable (fake clock: seconds since the epoch)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _service(tmp_path: Path, registry_root: Path, clock: Clock, name: str) -> RaceService:
    settings = Settings(environment="test", data_dir=tmp_path / name, races_track="oval",
                        races_laps=1, races_max_cars=3, races_interval_s=INTERVAL_S,
                        races_max_lap_s=4.0, races_speed=20, races_offload="thread")
    store = Store(f"sqlite:///{tmp_path / f'{name}.db'}")
    return RaceService(settings, ModelRegistry(registry_root), store.engine, clock=clock,
                       families=lambda: ("easy",), offload=Offload("thread"))


def _frames_at(service: RaceService) -> list[int]:
    """The runner's tick of every frame the service sends to spectators."""
    ticks: list[int] = []
    send = service._frame

    def frame(live: LiveRace) -> None:
        ticks.append(live.runner.tick)
        send(live)

    service._frame = frame  # type: ignore[method-assign]
    return ticks


def test_a_server_started_during_a_race_runs_the_same_race(tmp_path: Path,
                                                           registry_root: Path) -> None:
    from_start = _service(tmp_path, registry_root, Clock(START), "first")
    slot = from_start.timetable.latest(START)
    assert slot.starts_at == START
    reference = asyncio.run(from_start.run_race(slot))
    from_start.close()

    late_clock = Clock(START + 0.1)  # 0.1 s at 20 ticks a second and 20x: 40 ticks in
    late = _service(tmp_path, registry_root, late_clock, "late")
    frames = _frames_at(late)
    result = asyncio.run(late.join_the_race_on())
    late.close()
    assert result is not None
    assert result["digest"] == reference["digest"]  # the race, not a race
    assert result["cars"] == reference["cars"]
    assert frames[0] == 40 and frames[-1] == result["ticks"] > 40
    assert late.status_of(slot.race_id) == "finished"
    assert late.records.get(slot.race_id) is not None


def test_a_race_over_or_recorded_is_not_joined(tmp_path: Path, registry_root: Path) -> None:
    longest_s = 1 * 4.0 / 20  # laps x max lap time at 20x
    over = _service(tmp_path, registry_root, Clock(START + longest_s + 1.5), "over")
    assert asyncio.run(over.join_the_race_on()) is None
    assert over.live is None
    over.close()

    clock = Clock(START)
    recorded = _service(tmp_path, registry_root, clock, "recorded")
    asyncio.run(recorded.run_race(recorded.timetable.latest(START)))
    clock.now = START + 0.05
    frames = _frames_at(recorded)
    assert asyncio.run(recorded.join_the_race_on()) is None
    assert frames == []
    recorded.close()


def test_nobody_joins_a_car_while_the_race_is_caught_up(tmp_path: Path,
                                                        registry_root: Path) -> None:
    service = _service(tmp_path, registry_root, Clock(START + 0.1), "busy")
    slot = service.timetable.latest(START + 0.1)
    live = service.prepare(slot)
    live.catching_up = True
    service.live = live
    user = type("U", (), {"id": 1, "player_id": "p1", "username": "ann"})()
    answer = asyncio.run(service.join(slot.race_id, user, 0, None))  # type: ignore[arg-type]
    assert answer["code"] == "not_racing" and "catching up" in answer["message"]
    assert len(live.seats or ()) == 0
    service.close()


@pytest.mark.parametrize("elapsed_s", [0.0, 0.05])
def test_catch_up_stops_at_the_present(tmp_path: Path, registry_root: Path,
                                       elapsed_s: float) -> None:
    clock = Clock(START + elapsed_s)
    service = _service(tmp_path, registry_root, clock, f"cu{elapsed_s}")
    live = service.prepare(service.timetable.latest(clock.now))
    assert service.catch_up(live) == round(elapsed_s * 20 * 20)
    assert not live.runner.finished
    service.close()


def test_the_first_race_is_caught_up_when_joining_the_one_before_made_it_late(
        tmp_path: Path, registry_root: Path) -> None:
    """The race after the one joined on starts while this server still joins: it is run,
    caught up to the present, and recorded as a server that ran it on time records it."""
    clock = Clock(START + INTERVAL_S - 0.5)
    service = _service(tmp_path, registry_root, clock, "slow")
    first = service.timetable.upcoming(clock.now, 1)[0]
    reference = _service(tmp_path, registry_root, Clock(first.starts_at), "ontime")
    expected = asyncio.run(reference.run_race(first))
    reference.close()

    async def slow_join() -> None:  # the join took 0.55 s: the first race started 0.05 s ago
        clock.now = first.starts_at + 0.05

    service.join_the_race_on = slow_join  # type: ignore[method-assign]
    frames = _frames_at(service)

    async def run() -> None:
        task = asyncio.create_task(service.run_forever())
        for _ in range(200):
            await asyncio.sleep(0.05)
            if service.records.get(first.race_id) is not None:
                break
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())
    record = service.records.get(first.race_id)
    assert record is not None and record.result["digest"] == expected["digest"]
    assert frames[0] == 20  # 0.05 s at 20 ticks a second and 20x
