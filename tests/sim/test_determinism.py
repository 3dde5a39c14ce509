"""Same seed and actions, bit-identical trajectory: across processes, batches and replays."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from crowdlearning.errors import ReplayMismatchError, SimulationError
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.replay import EpisodeStart, pose_digest, simulate, verify
from crowdlearning.sim.track_gen import generate_track

_SCRIPT = """
import numpy as np
from crowdlearning.sim.replay import EpisodeStart, simulate
from crowdlearning.sim.track_gen import generate_track
track = generate_track({seed})
rng = np.random.default_rng({seed})
actions = np.clip(rng.normal([0.0, 0.5], [0.03, 0.3], size=(300, 2)), -1, 1)
traj = simulate(track, EpisodeStart(track.digest, 25.0, 8.0), actions[: {steps}])
print(track.digest, traj.digest)
"""


def _expert_log(seed: int, ticks: int) -> tuple[EpisodeStart, np.ndarray, np.ndarray]:
    """The expert's action log and poses for ``ticks`` ticks on track ``seed``."""
    track = generate_track(seed)
    sim = RaceSim([track], 1)
    start = EpisodeStart(track.digest, start_s_m=40.0, speed_mps=5.0)
    sim.reset_cars(np.array([0]), start_s_m=40.0, speed_mps=5.0)
    expert, actions, poses = ExpertDriver(), [], [sim.pose[0].copy()]
    for _ in range(ticks):
        act = expert.act(sim)
        sim.step(act)
        actions.append(act[0])
        poses.append(sim.pose[0].copy())
    return start, np.array(actions), np.array(poses)


def test_two_processes_give_bit_identical_trajectories() -> None:
    # GIVEN a noisy action log on a generated track
    seed, steps = 21, 60
    code = _SCRIPT.format(seed=seed, steps=steps)
    # WHEN two fresh interpreters simulate it, and this process does too
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    track = generate_track(seed)
    rng = np.random.default_rng(seed)
    actions = np.clip(rng.normal([0.0, 0.5], [0.03, 0.3], size=(300, 2)), -1, 1)
    here = simulate(track, EpisodeStart(track.digest, 25.0, 8.0), actions[:steps])
    # THEN track and trajectory digests agree everywhere
    assert outs[0] == outs[1] == [track.digest, here.digest]


_REPLAY_SCRIPT = """
import hashlib
import sys
import numpy as np
from crowdlearning.sim.replay import EpisodeStart, simulate
from crowdlearning.sim.track_gen import generate_track
actions = np.load(sys.argv[1])
track = generate_track({seed})
replay = simulate(track, EpisodeStart(track.digest, 40.0, 5.0), actions, observe=True)
print(replay.digest, hashlib.sha256(replay.observations.tobytes()).hexdigest())
from crowdlearning.provenance import numpy_simd
print(" ".join(numpy_simd()))
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="the SIMD paths switched off here are x86-64's")
def test_a_log_replays_bit_for_bit_whatever_numpys_simd_path(tmp_path) -> None:
    # GIVEN the expert's 400-tick action log on a generated track, its trajectory and the
    # observations a replay here gives (the judge's screening compares both, bit for bit)
    seed = 5
    start, actions, poses = _expert_log(seed=seed, ticks=400)
    here = simulate(generate_track(seed), start, actions, observe=True)
    assert here.digest == pose_digest(poses)
    log = tmp_path / "actions.npy"
    np.save(log, actions)
    # (numpy knows the targets this test switches off: were they renamed, nothing would be)
    from numpy._core import _multiarray_umath as umath
    assert {"X86_V3", "X86_V4"} <= set(umath.__cpu_dispatch__)
    # WHEN interpreters with numpy's AVX-512 path, and its AVX2 path too, switched off replay it
    # (the judge may run on another CPU than the game server; numpy's transcendental functions
    # differ there in the last bit, the simulator must not)
    # (and, last, the C library's non-FMA variants too)
    digests = set()
    for disabled, glibc in (("X86_V4", ""), ("X86_V3 X86_V4", ""),
                            ("X86_V3 X86_V4", "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F")):
        env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": disabled, "GLIBC_TUNABLES": glibc,
               "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", _REPLAY_SCRIPT.format(seed=seed), str(log)],
                             capture_output=True, text=True, check=True, env=env)
        replayed, simd = out.stdout.splitlines()
        assert not set(disabled.split()) & set(simd.split()), simd  # numpy took the hint
        digests.add(replayed)
    # THEN every replay gives the trajectory the game recorded, and the same observations
    observed = hashlib.sha256(here.observations.tobytes()).hexdigest()
    assert digests == {f"{pose_digest(poses)} {observed}"}


def test_a_car_in_a_large_batch_replays_alone_bit_for_bit() -> None:
    # GIVEN 257 cars on 3 tracks driven by the expert with per-car noise
    tracks = [generate_track(s) for s in (1, 2, 3)]
    n = 257
    sim = RaceSim(tracks, n)
    rng = np.random.default_rng(0)
    track_of = rng.integers(3, size=n)
    start_s = rng.uniform(0, 300, n)
    sim.reset_cars(np.arange(n), track_index=track_of, start_s_m=start_s, speed_mps=3.0)
    expert = ExpertDriver()
    log, poses = [], [sim.pose.copy()]
    for _ in range(100):
        act = np.clip(expert.act(sim) + rng.normal(0, 0.2, (n, 2)), -1, 1)
        sim.step(act)
        log.append(act)
        poses.append(sim.pose.copy())
    log_arr, poses_arr = np.stack(log), np.stack(poses)
    # WHEN some cars are replayed alone
    for car in (0, 100, 256):
        if sim.steps[car] < 100:
            continue  # this car left the track: its log is shorter
        track = tracks[track_of[car]]
        start = EpisodeStart(track.digest, start_s_m=float(start_s[car]), speed_mps=3.0)
        # THEN the replay confirms the batched trajectory exactly
        traj = verify(track, start, log_arr[:, car], poses_arr[:, car])
        assert traj.digest == pose_digest(poses_arr[:, car])


def test_verify_rejects_a_tampered_trajectory_at_the_right_tick() -> None:
    start, actions, poses = _expert_log(seed=8, ticks=80)
    track = generate_track(8)
    assert verify(track, start, actions, poses).steps == 80
    tampered = poses.copy()
    tampered[37, 0] += 1e-9  # one coordinate, a nanometre
    with pytest.raises(ReplayMismatchError, match="tick 37"):
        verify(track, start, actions, tampered)
    edited = actions.copy()
    edited[50, 0] = -edited[50, 0] if edited[50, 0] else 0.5
    with pytest.raises(ReplayMismatchError, match=r"tick 5[1-9]"):
        verify(track, start, edited, poses)


def test_verify_rejects_the_wrong_track_and_a_short_claim() -> None:
    start, actions, poses = _expert_log(seed=8, ticks=20)
    with pytest.raises(ReplayMismatchError, match="played on track"):
        verify(generate_track(9), start, actions, poses)
    with pytest.raises(ReplayMismatchError, match="claimed 20 poses"):
        verify(generate_track(8), start, actions, poses[:-1])


def test_actions_after_the_end_of_an_episode_are_rejected() -> None:
    track = generate_track(4)
    crash = np.tile([1.0, 1.0], (400, 1))  # full left, full throttle: leaves the track
    with pytest.raises(SimulationError, match="after the episode ended"):
        simulate(track, EpisodeStart(track.digest, 0.0, 10.0), crash)
