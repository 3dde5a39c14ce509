"""Races' slow computation in a child process (``races/offload.py``): the same race plan, track,
replay and fork weights as on a thread of the server, bit for bit; the thread fallback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.races import offload as offload_module
from crowdlearning.races.forks import build_fork
from crowdlearning.races.offload import Offload, prepare_race, replay_race
from crowdlearning.races.runner import RacePlan, RaceRunner, load_policies, replay
from crowdlearning.races.schedule import choose_track
from crowdlearning.races.teams import Team
from crowdlearning.sim.families import FAMILIES
from tests.races.conftest import VERSIONS, oval_plan
from tests.races.test_teams_forks import World


@pytest.fixture(scope="module")
def child() -> Iterator[Offload]:
    """One child process for the module (spawning one costs ~2 s of imports)."""
    off = Offload("process", name="test")
    yield off
    off.close()


def test_a_prepared_race_is_the_same_race_in_the_child(child: Offload, registry_root: Path,
                                                         oval_policies: dict) -> None:
    plan = oval_plan(cars=VERSIONS, laps=1, seed=21)
    # a generated track of a harder family too: the child draws the same one
    families = tuple(f.name for f in FAMILIES)
    generated = RacePlan("r200", 5, 200.0, choose_track(5, families[1:2]), plan.entrants,
                         plan.rules)
    here = prepare_race(generated, registry_root)
    there = child.run(prepare_race, generated, registry_root)
    assert child.in_process and child.jobs >= 1
    assert there.track.digest == here.track.digest == generated.track.track().digest
    assert there.track.grip == here.track.grip
    for name in ("centre", "normal", "segments", "cell_ptr", "cell_items", "length"):
        np.testing.assert_array_equal(getattr(there.bank, name), getattr(here.bank, name))
    assert sorted(there.weights) == list(range(VERSIONS))
    for v, (arch, state) in here.weights.items():
        assert there.weights[v][0] == arch
        for key, value in state.items():
            assert there.weights[v][1][key].dtype == np.float32
            np.testing.assert_array_equal(there.weights[v][1][key], value)
    # raced from the child's preparation: the same poses as from the old in-process loading
    prepared = child.run(prepare_race, plan, registry_root)
    live = RaceRunner(plan, prepared.policies(), prepared.track, bank=prepared.bank)
    live.run()
    old = RaceRunner(plan, oval_policies)
    old.run()
    assert live.tick > 100 and live.result() == old.result()
    with pytest.raises(ValueError, match="TrackBank"):
        RaceRunner(plan, oval_policies, bank=here.bank)  # the bank of another track


def test_a_replay_in_the_child_reproduces_the_live_race(child: Offload, registry_root: Path,
                                                         oval_policies: dict) -> None:
    plan = oval_plan(cars=3, laps=1, seed=12)
    live = RaceRunner(plan, oval_policies)
    live.run()
    recorded = RacePlan.from_json(plan.to_json())  # as the records give it back
    frames, result = child.run(replay_race, recorded, registry_root, 2)
    assert result["digest"] == live.digest and result == live.result()
    here_frames, here_result = replay(recorded, load_policies(ModelRegistry(registry_root),
                                                              range(VERSIONS)), frame_every=2)
    assert frames == here_frames and result == here_result
    assert frames[-1]["status"] == "finished" and len(frames) > 50


def test_a_fork_trained_in_the_child_has_the_thread_paths_weights(
        child: Offload, tmp_path: Path, registry_root: Path) -> None:
    worlds = []
    for name in ("thread", "process"):
        world = World(tmp_path / name, registry_root)
        world.accept(("a1", "alice"), ("b1", "bob"), ("b2", "bob"))
        worlds.append(world)
    team = Team(worlds[0].team.id, "Night Owls", 0, (1, 2))
    here = build_fork(worlds[0].registry, worlds[0].dataset, team, ["a1", "b1", "b2"],
                      updates=5, seed=3)
    there = build_fork(worlds[1].registry, worlds[1].dataset, team, ["a1", "b1", "b2"],
                       updates=5, seed=3, offload=child)
    assert there.weights_sha256 == here.weights_sha256
    assert there.dataset_digest == here.dataset_digest and there.version == here.version
    assert there.training == here.training and there.training["rows"] == 64 + 3 * 16
    base, _ = worlds[1].registry.load(0)
    trained, _ = worlds[1].registry.load(there.version)
    assert any(not np.array_equal(a.detach().numpy(), b.detach().numpy())
               for a, b in zip(base.parameters(), trained.parameters(), strict=True))


def test_the_fork_builder_trains_in_a_child_and_stops_it_after(tmp_path: Path,
                                                               registry_root: Path) -> None:
    world = World(tmp_path, registry_root)
    assert world.forks.offload.mode == "process" and not world.forks.offload.running
    world.accept(("a1", "alice"), ("b1", "bob"), ("b2", "bob"))
    [meta] = world.forks.build_due()
    assert world.forks.offload.jobs == 1 and world.forks.offload.in_process
    assert not world.forks.offload.running  # no idle child until the next build
    assert meta.contributions == ["a1", "b1", "b2"]
    world.forks.close()


def test_without_a_child_the_jobs_run_here(monkeypatch: pytest.MonkeyPatch,
                                           registry_root: Path) -> None:
    def cannot(*args: object, **kwargs: object) -> None:
        raise OSError("no semaphores here")

    monkeypatch.setattr(offload_module, "ProcessPoolExecutor", cannot)
    off = Offload("process", name="test")
    plan = oval_plan(cars=2, laps=1)
    prepared = off.run(prepare_race, plan, registry_root)
    assert prepared.track.name == "oval"
    assert sorted(prepared.weights) == sorted({e.version for e in plan.entrants})
    assert not off.in_process and "no semaphores" in (off.fallback_reason or "")
    assert off.jobs == 0
    thread = Offload("thread")
    assert not thread.in_process and thread.fallback_reason is None
    with pytest.raises(ValueError, match="offload mode"):
        Offload("fork")  # type: ignore[arg-type]
