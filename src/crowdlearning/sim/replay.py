"""Re-simulate a recorded action log and confirm or reject a claimed trajectory.

The simulator is deterministic: the same track, start and actions give bit-identical poses in any
process and in any batch (see ``kernels``). So a trajectory is named by the SHA-256 of its poses,
and the server can check any claim by replaying the actions on a single car.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from crowdlearning.errors import ReplayMismatchError, SimulationError
from crowdlearning.sim.params import CarParams
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.track import Track

__all__ = ["EpisodeStart", "Trajectory", "simulate", "verify"]


@dataclass(frozen=True)
class EpisodeStart:
    """Where and how an episode starts; with the track and the actions it fixes the trajectory."""

    track_digest: str
    start_s_m: float = 0.0
    speed_mps: float = 0.0
    lateral_m: float = 0.0
    heading_offset_rad: float = 0.0


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Poses before and after every tick, (T + 1, 5): x, y, yaw, speed, steer angle."""

    poses: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool
    laps: int
    observations: np.ndarray | None = None  # (T, obs_dim) before each action, if asked for

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def digest(self) -> str:
        return pose_digest(self.poses)


def pose_digest(poses: np.ndarray) -> str:
    """SHA-256 of poses as little-endian float64: equal digests mean bit-identical poses."""
    return hashlib.sha256(np.ascontiguousarray(poses, dtype="<f8").tobytes()).hexdigest()


def simulate(
    track: Track,
    start: EpisodeStart,
    actions: np.ndarray,
    *,
    car: CarParams | None = None,
    max_steps: int = 2400,
    observe: bool = False,
) -> Trajectory:
    """Drive one car through ``actions`` (T, 2); actions after the episode ended are an error.

    With ``observe`` the observation before each action is recorded too.
    """
    if start.track_digest != track.digest:
        raise ReplayMismatchError(
            f"episode was played on track {start.track_digest[:12]}, not {track.digest[:12]}")
    actions = np.asarray(actions, dtype=np.float64).reshape(-1, 2)
    sim = RaceSim([track], 1, car=car, max_steps=max_steps)
    sim.reset_cars(np.array([0]), start_s_m=start.start_s_m, speed_mps=start.speed_mps,
                   lateral_m=start.lateral_m, heading_offset_rad=start.heading_offset_rad)
    poses = np.empty((len(actions) + 1, 5))
    poses[0] = sim.pose[0]
    rewards = np.empty(len(actions))
    observations = [] if observe else None
    for t, action in enumerate(actions):
        if not sim.alive[0]:
            raise SimulationError(f"action log continues after the episode ended at tick {t}")
        if observations is not None:
            observations.append(sim.observe()[0])
        out = sim.step(action[None, :])
        poses[t + 1], rewards[t] = sim.pose[0], out.reward[0]
    done = not sim.alive[0]
    return Trajectory(poses, rewards, terminated=done and sim.steps[0] < max_steps,
                      truncated=done and sim.steps[0] >= max_steps, laps=int(sim.laps[0]),
                      observations=None if observations is None else np.array(observations))


def verify(
    track: Track,
    start: EpisodeStart,
    actions: np.ndarray,
    claimed_poses: np.ndarray,
    *,
    car: CarParams | None = None,
    max_steps: int = 2400,
) -> Trajectory:
    """Replay ``actions``; return the trajectory if it equals ``claimed_poses`` bit for bit.

    Raises ``ReplayMismatchError`` naming the first tick whose pose differs.
    """
    replayed = simulate(track, start, actions, car=car, max_steps=max_steps)
    claimed = np.asarray(claimed_poses, dtype=np.float64)
    if claimed.shape != replayed.poses.shape:
        raise ReplayMismatchError(
            f"claimed {claimed.shape[0]} poses, the action log gives {replayed.poses.shape[0]}")
    same = np.all(claimed == replayed.poses, axis=1)
    if not same.all():
        tick = int(np.argmin(same))
        raise ReplayMismatchError(f"trajectory diverges from the replay at tick {tick}")
    return replayed
