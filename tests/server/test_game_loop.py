"""The game loop without the network: slots, batched steps, recording, refused inputs."""

from __future__ import annotations

import asyncio
from functools import cache

import numpy as np
import pytest
import torch

from crowdlearning.evaluation.curriculum import play_tracks
from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.learning.disturbance import Disturbance, apply_disturbance
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.server.game_loop import (
    FinishedRun,
    GameFullError,
    GameLoop,
    InputRejectedError,
    Outbox,
    RunSpec,
    RunStart,
)
from crowdlearning.sim.replay import simulate


@cache
def _policy() -> Policy:
    return Policy(train_initial_model(0)[0])


class CountingPolicy:
    """The initial policy, counting its batched calls."""

    def __init__(self) -> None:
        self.calls, self.rows = 0, []

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.rows.append(len(obs))
        return _policy().act(obs)


def make_loop(capacity: int = 4, run_ticks: int = 60, *, random_starts: bool = False
              ) -> tuple[GameLoop, list[FinishedRun]]:
    """A loop whose runs start on the start line (scripted tests), or where the server's
    secret seeds say (``random_starts``, as in production)."""
    finished: list[FinishedRun] = []
    loop = GameLoop(_policy(), 0, play_tracks(2), capacity=capacity, run_ticks=run_ticks,
                    on_finish=finished.append, random_starts=random_starts)
    return loop, finished


def spec(i: int, mode: str = "label", seed: int = 0) -> RunSpec:
    return RunSpec(f"run-{i}", f"p{i}", f"user{i}", seed, mode)  # type: ignore[arg-type]


def test_one_batched_inference_per_tick_for_all_runs() -> None:
    loop, _ = make_loop(capacity=4)
    counting = CountingPolicy()
    loop.set_champion(counting, 0)  # type: ignore[arg-type]
    for i in range(3):
        loop.join(spec(i, seed=i % 2), Outbox(8))
    for _ in range(5):
        loop.step()
    assert counting.calls == 5
    assert counting.rows == [4] * 5  # three players and the champion, one call


def test_a_full_loop_refuses_and_a_freed_slot_is_reused() -> None:
    loop, _ = make_loop(capacity=2)
    a = loop.join(spec(0), Outbox(8))
    loop.join(spec(1), Outbox(8))
    with pytest.raises(GameFullError):
        loop.join(spec(2), Outbox(8))
    loop.abandon(a)
    assert loop.join(spec(3), Outbox(8)) == a


def test_refused_inputs_change_nothing_and_the_recording_replays() -> None:
    # GIVEN a run that got some frames
    loop, finished = make_loop()
    slot = loop.join(spec(0), Outbox(64))
    for _ in range(5):
        loop.step()
    # WHEN a valid input, then an out-of-order one and a future one arrive
    loop.set_input(slot, 4, 0.5, None, False)
    for tick, code in ((2, "out_of_order"), (99, "future_tick")):
        with pytest.raises(InputRejectedError) as refused:
            loop.set_input(slot, tick, -0.9, None, False)
        assert refused.value.code == code
    for _ in range(3):
        loop.step()
    loop.stop(slot)
    loop.step()
    # THEN only the valid input is recorded, answering tick 4
    c = finished[0].contribution
    assert finished[0].reason == "stopped" and c.num_ticks == 8
    assert np.all(np.isnan(c.player[:5])) and np.all(c.player[5:, 0] == 0.5)
    assert np.all(c.input_tick[5:] == 4) and np.all(c.input_tick[:5] == -1)
    # and the executed actions re-simulate to the recorded states, bit for bit
    replay = simulate(play_tracks(1)[0], c.start, c.executed)
    assert np.array_equal(replay.poses[: c.num_ticks], c.states)


def test_takeover_mode_records_interventions_only_while_held() -> None:
    loop, finished = make_loop()
    slot = loop.join(spec(0, mode="takeover"), Outbox(64))
    loop.step()
    loop.set_input(slot, 0, -0.3, None, True)
    loop.step()
    loop.set_input(slot, 1, None, None, False)
    loop.step()
    loop.stop(slot)
    loop.step()
    c = finished[0].contribution
    assert c.intervention.tolist() == [False, True, False]
    assert c.executed[1, 0] == -0.3


def test_a_run_ends_at_its_tick_budget() -> None:
    loop, finished = make_loop(run_ticks=25)
    outbox = Outbox(4)
    loop.join(spec(0), outbox)
    for _ in range(30):
        loop.step()
    assert finished and finished[0].contribution.num_ticks <= 25
    assert finished[0].reason in {"time_up", "left_track"}
    assert loop.players == 0
    assert outbox.dropped_frames > 0  # only the newest 4 frames were kept for a slow reader
    messages = asyncio.run(outbox.take())
    assert '"type": "end"' in messages[-1]


def test_a_run_keeps_the_policy_it_started_with_when_the_champion_changes() -> None:
    # GIVEN a run driven by version 0 for a few ticks
    loop, finished = make_loop(capacity=4, run_ticks=200)
    old = loop.policy
    old_slot = loop.join(spec(0), Outbox(64))
    for _ in range(5):
        loop.step()
    # WHEN the champion becomes version 1 (a different, randomly initialised network)
    torch.manual_seed(1)
    new = Policy(PolicyNet())
    loop.set_champion(new, 1)
    new_slot = loop.join(spec(1), Outbox(64))
    for _ in range(5):
        loop.step()
    assert loop.policy_versions == [0, 1]
    loop.stop(old_slot)
    loop.stop(new_slot)
    loop.step()
    # THEN the old run was proposed version 0's actions throughout, and says so
    runs = {f.spec.run_id: f.contribution for f in finished}
    before, after = runs["run-0"], runs["run-1"]
    assert before.model_version == 0 and before.num_ticks == 10
    assert np.allclose(before.proposed, old.act(before.observations), atol=1e-5)
    assert not np.allclose(before.proposed[5:], new.act(before.observations[5:]), atol=1e-2)
    # and the run that joined after the swap was proposed version 1's
    assert after.model_version == 1 and after.num_ticks == 5
    assert np.allclose(after.proposed, new.act(after.observations), atol=1e-5)
    assert not np.allclose(after.proposed, old.act(after.observations), atol=1e-2)
    # as was the champion car; version 0's policy is dropped once no run uses it
    champion_obs = loop.sim.observe()[[loop.champion_slot]]
    loop.step()
    assert np.allclose(loop.last_proposed[loop.champion_slot], new.act(champion_obs)[0],
                       atol=1e-5)
    assert loop.policy_versions == [1] and loop.model_version == 1


def test_runs_that_record_nothing_are_discarded_and_a_disconnect_can_still_be_judged() -> None:
    # GIVEN three runs: one stopped before its first tick, one abandoned, one ended by a
    # disconnect after a few ticks (what a paid run's socket does)
    loop, finished = make_loop()
    discarded: list[tuple[str, str]] = []
    loop.on_discard = lambda s, why: discarded.append((s.run_id, why))
    slots = [loop.join(spec(i), Outbox(100)) for i in range(3)]
    loop.stop(slots[0])
    loop.step()
    loop.step()
    assert loop.live_run_ids() == {"run-1", "run-2"}
    loop.abandon(slots[1])
    loop.stop(slots[2], "disconnected")
    loop.step()
    # THEN the first two are discarded (nothing to judge), the third is judged on its ticks
    assert [run_id for run_id, _ in discarded] == ["run-0", "run-1"]
    assert "before its first tick" in discarded[0][1]
    assert [(f.spec.run_id, f.reason, f.contribution.num_ticks) for f in finished] == [
        ("run-2", "disconnected", 2)]
    assert loop.live_run_ids() == set()


def test_each_run_starts_where_a_secret_seed_says() -> None:
    # GIVEN three runs on one track
    loop, finished = make_loop(capacity=4, run_ticks=20, random_starts=True)
    track = play_tracks(2)[0]
    for i in range(3):
        loop.join(spec(i, seed=0), Outbox(64))
    # THEN they start at different places and speeds, each derived from its own secret seed
    starts = [loop._runs[slot].start for slot in range(4) if loop._runs[slot] is not None]
    assert len({round(s.start_s_m, 3) for s in starts}) == 3
    for start in starts:
        assert RunStart.draw(start.seed, track) == start
        assert 0 <= start.start_s_m < track.length_m and 6.0 <= start.speed_mps <= 10.0
    # AND each recorded contribution starts there and keeps its seed (shown in its verdict)
    for _ in range(25):
        loop.step()
    by_seed = {s.seed: s for s in starts}
    assert len(finished) == 3
    for run in finished:
        start = by_seed[run.contribution.meta["start_seed"]]
        assert run.contribution.start.start_s_m == start.start_s_m
        assert run.contribution.start.lateral_m == start.lateral_m
        assert run.contribution.start.speed_mps == start.speed_mps


def test_each_run_gets_the_road_its_secret_seed_says_and_only_the_car_feels_it() -> None:
    finished: list[FinishedRun] = []
    loop = GameLoop(_policy(), 0, play_tracks(2), capacity=3, run_ticks=30,
                    on_finish=finished.append, random_starts=True, disturbance=(0.15, 0.2))
    for i in range(2):
        loop.join(spec(i, seed=0), Outbox(64))
    for _ in range(35):
        loop.step()
    assert len(finished) == 2
    for run in finished:
        c = run.contribution
        wind = Disturbance.draw(c.meta["start_seed"], 0.15, 0.2)
        assert 0.15 <= c.meta["disturbance_std"] <= 0.2
        assert c.meta["disturbance_std"] == pytest.approx(wind.std, abs=1e-6)
        # no input: the policy drives, and the car executes its proposal plus the noise
        expected = apply_disturbance(c.proposed, wind.steering(c.num_ticks))
        assert np.array_equal(c.executed, expected)
        assert np.isnan(c.player).all()  # nothing of the noise is recorded as an input
        assert simulate(play_tracks(2)[0], c.start, c.executed).poses[:-1].tolist() == \
            c.states.tolist()  # the screen re-simulates the run from what was executed


def test_a_run_whose_car_stands_still_ends_stalled_and_is_still_judged() -> None:
    finished: list[FinishedRun] = []
    loop = GameLoop(_policy(), 0, play_tracks(2), capacity=2, run_ticks=600,
                    on_finish=finished.append, random_starts=False, stall_ticks=60)
    outbox = Outbox(8)
    slot = loop.join(spec(0, mode="takeover"), outbox)
    loop.step()
    tick = 0
    while not finished and tick < 400:
        loop.set_input(slot, tick, 0.0, -1.0, True)  # takes the wheel and holds the brake
        loop.step()
        tick += 1
    assert finished, "a car braked to a stop must not sit out the run"
    run = finished[0]
    assert run.reason == "stalled"
    c = run.contribution
    assert c.meta["stalled"] and not c.meta["left_track"]
    speeds = c.states[:, 3]
    assert speeds[-1] < 0.5  # it really stood still
    # from the first tick it stood still (< 1 m of progress since), 60 ticks to the end
    assert 60 <= c.num_ticks < 400
    end = [m for m in asyncio.run(outbox.take()) if '"type": "end"' in m]
    assert end and '"reason": "stalled"' in end[-1]


def test_stall_detection_can_be_switched_off() -> None:
    finished: list[FinishedRun] = []
    loop = GameLoop(_policy(), 0, play_tracks(2), capacity=2, run_ticks=200,
                    on_finish=finished.append, random_starts=False, stall_ticks=0)
    slot = loop.join(spec(0, mode="takeover"), Outbox(8))
    loop.step()
    for tick in range(210):
        if loop.run_at(slot) is None:
            break
        loop.set_input(slot, tick, 0.0, -1.0, True)
        loop.step()
    assert finished[0].reason == "time_up"
