"""The vectorized simulator: thousands of cars, each on its own track if need be, one call a tick.

``RaceSim`` is the server-authoritative core the gymnasium envs, the game server, the evaluation
and the replay all share. It owns the state arrays (one row per car) and steps them with the
compiled kernels; it never resets cars on its own (callers decide: the vector env autoresets,
evaluation freezes finished cars).

Episode rules: reward is the progress along the centreline this tick [m]; leaving the track (car
centre beyond an edge) ends the episode (``terminated``) with ``exit_penalty`` taken off the reward;
``max_steps`` ticks truncate it. With ``stall_ticks`` > 0, a car that has not advanced
``stall_progress_m`` along the centreline for that many ticks stops too (``stalled``: a car that
stands still, or creeps, teaches nothing and shows a player nothing; the game ends such a run
rather than let it sit). Laps count each time progress since the start passes a multiple of
the track length; lap times are interpolated within the tick [s].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crowdlearning.errors import SimulationError
from crowdlearning.sim import kernels, portable_math
from crowdlearning.sim.observation import assemble, observation_space
from crowdlearning.sim.params import DT_S, CarParams, SensorParams
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_bank import TrackBank

__all__ = ["POSE_FIELDS", "RaceSim", "StepOutcome", "curvature_ahead"]

POSE_FIELDS = ("x_m", "y_m", "yaw_rad", "speed_mps", "steer_rad")
EXIT_PENALTY = 10.0  # reward taken when the car leaves the track [m of progress]


@dataclass(frozen=True)
class StepOutcome:
    """Per-car results of one tick (arrays of length ``num_cars``)."""

    reward: np.ndarray  # float64, progress this tick [m] minus the exit penalty
    terminated: np.ndarray  # bool, left the track this tick
    truncated: np.ndarray  # bool, reached the step limit this tick
    lap_completed: np.ndarray  # bool, finished a lap this tick


class RaceSim:
    """State and stepping of ``num_cars`` cars on the tracks of a ``TrackBank``."""

    def __init__(
        self,
        tracks: Sequence[Track] | TrackBank,
        num_cars: int,
        *,
        car: CarParams | None = None,
        sensors: SensorParams | None = None,
        max_steps: int = 2400,
        stall_ticks: int = 0,
        stall_progress_m: float = 1.0,
    ) -> None:
        if num_cars < 1:
            raise SimulationError(f"num_cars must be >= 1, got {num_cars}")
        if max_steps < 1:
            raise SimulationError(f"max_steps must be >= 1, got {max_steps}")
        if stall_ticks < 0 or not stall_progress_m > 0:
            raise SimulationError("stall_ticks must be >= 0 and stall_progress_m > 0")
        self.bank = tracks if isinstance(tracks, TrackBank) else TrackBank.build(tracks)
        self.car = car or CarParams()
        self.sensors = sensors or SensorParams()
        self.num_cars = int(num_cars)
        self.max_steps = int(max_steps)
        self.stall_ticks = int(stall_ticks)
        self.stall_progress_m = float(stall_progress_m)
        self._params = self.car.as_array()
        self._ray_angles = self.sensors.ray_angles_rad
        space = observation_space(self.sensors)
        self._obs_low, self._obs_high = space.low, space.high
        n = self.num_cars
        self.pose = np.zeros((n, 5))
        self.track_of = np.zeros(n, dtype=np.int64)
        self.idx = np.zeros(n, dtype=np.int64)
        self.frenet = np.zeros((n, 3))  # s [m], lateral [m], heading error [rad]
        self.progress_m = np.zeros(n)
        self.steps = np.zeros(n, dtype=np.int64)
        self.laps = np.zeros(n, dtype=np.int64)
        self.last_lap_time_s = np.full(n, np.nan)
        self.best_lap_time_s = np.full(n, np.nan)
        self._lap_started_s = np.zeros(n)
        self.alive = np.zeros(n, dtype=bool)
        self.stalled = np.zeros(n, dtype=bool)  # stopped for want of progress (``stall_ticks``)
        self._moved_at_m = np.zeros(n)  # progress when the car last advanced stall_progress_m
        self._still_ticks = np.zeros(n, dtype=np.int64)

    # ------------------------------------------------------------------ tracks
    def add_tracks(self, tracks: Sequence[Track] | TrackBank) -> list[int]:
        """Append tracks to the bank; return their indices. Cars and earlier indices are
        untouched (a car on track ``t`` drives on, bit for bit).

        ``tracks`` may be the new tracks or a whole ``TrackBank`` built elsewhere (off a game
        loop's thread: building takes tens of ms a track) that starts with this one's tracks.
        """
        old = self.bank.tracks
        if isinstance(tracks, TrackBank):
            if tracks.tracks[:len(old)] != old:
                raise SimulationError("a grown TrackBank must start with the simulator's tracks")
            bank = tracks
        else:
            bank = TrackBank.build([*old, *tracks]) if tracks else self.bank
        self.bank = bank
        return list(range(len(old), bank.num_tracks))

    # ------------------------------------------------------------------ reset
    def reset_cars(
        self,
        cars: np.ndarray,
        *,
        track_index: np.ndarray | int = 0,
        start_s_m: np.ndarray | float = 0.0,
        speed_mps: np.ndarray | float = 0.0,
        lateral_m: np.ndarray | float = 0.0,
        heading_offset_rad: np.ndarray | float = 0.0,
    ) -> None:
        """Place ``cars`` on their tracks at arc length ``start_s_m``, aligned with the track."""
        cars = np.asarray(cars, dtype=np.int64).reshape(-1)
        if cars.size and (cars.min() < 0 or cars.max() >= self.num_cars):
            raise SimulationError(f"car indices must be in [0, {self.num_cars})")
        tracks = np.broadcast_to(np.asarray(track_index, dtype=np.int64), cars.shape)
        if tracks.size and (tracks.min() < 0 or tracks.max() >= self.bank.num_tracks):
            raise SimulationError(f"track_index must be in [0, {self.bank.num_tracks})")
        values = [np.broadcast_to(np.asarray(v, dtype=np.float64), cars.shape)
                  for v in (start_s_m, speed_mps, lateral_m, heading_offset_rad)]
        if not all(np.all(np.isfinite(v)) for v in values):
            raise SimulationError("reset values must be finite")
        s0, v0, lat0, dyaw0 = values
        b = self.bank
        local = np.round((s0 % b.length[tracks]) / b.spacing[tracks]).astype(np.int64)
        local %= b.count[tracks]
        g = b.start[tracks] + local
        heading = portable_math.arctan2(b.tangent[g, 1], b.tangent[g, 0])
        self.pose[cars, 0:2] = b.centre[g] + lat0[:, None] * b.normal[g]
        self.pose[cars, 2] = (heading + dyaw0 + np.pi) % (2 * np.pi) - np.pi
        self.pose[cars, 3] = np.clip(v0, 0.0, self.car.max_speed_mps)
        self.pose[cars, 4] = 0.0
        self.track_of[cars], self.idx[cars] = tracks, local
        for arr in (self.progress_m, self._lap_started_s, self._moved_at_m):
            arr[cars] = 0.0
        self._still_ticks[cars] = 0
        self.stalled[cars] = False
        self.steps[cars] = 0
        self.laps[cars] = 0
        self.last_lap_time_s[cars] = np.nan
        self.best_lap_time_s[cars] = np.nan
        self.alive[cars] = True
        placed = np.zeros(self.num_cars, bool)  # (``np.isin`` of all cars: 10x slower)
        placed[cars] = True
        self._project(placed)

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray) -> StepOutcome:
        """Apply one action per car (steer, throttle in [-1, 1]); dead cars do not move."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_cars, 2):
            raise SimulationError(f"actions must have shape ({self.num_cars}, 2), "
                                  f"got {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise SimulationError("actions contain NaN or infinity")
        alive = self.alive.copy()
        s_before = self.frenet[:, 0].copy()
        kernels.step_cars(self.pose, actions, alive, self._params, DT_S, self.track_of,
                          self.bank.grip)
        self._project(alive)
        length = self.bank.length[self.track_of]
        ds = (self.frenet[:, 0] - s_before + 0.5 * length) % length - 0.5 * length
        ds = np.where(alive, ds, 0.0)
        laps_before = self.laps.copy()
        progress_before = self.progress_m.copy()
        self.progress_m += ds
        self.steps += alive
        self.laps = np.where(alive, np.maximum(self.laps, np.floor(self.progress_m / length)),
                             self.laps).astype(np.int64)
        lap_done = self.laps > laps_before
        if lap_done.any():
            self._record_laps(lap_done, progress_before, ds, length)
        half = self.bank.half_width[self.track_of]
        terminated = alive & (np.abs(self.frenet[:, 1]) > half)
        truncated = alive & ~terminated & (self.steps >= self.max_steps)
        self.alive &= ~(terminated | truncated)
        if self.stall_ticks:
            self._check_stalls(alive & self.alive)
        reward = ds - EXIT_PENALTY * terminated
        return StepOutcome(reward, terminated, truncated, lap_done)

    def _check_stalls(self, live: np.ndarray) -> None:
        moved = live & (self.progress_m - self._moved_at_m >= self.stall_progress_m)
        self._moved_at_m = np.where(moved, self.progress_m, self._moved_at_m)
        self._still_ticks = np.where(moved, 0, self._still_ticks + live)
        stalled = live & (self._still_ticks >= self.stall_ticks)
        self.stalled |= stalled
        self.alive &= ~stalled

    def _record_laps(self, done: np.ndarray, before: np.ndarray, ds: np.ndarray,
                     length: np.ndarray) -> None:
        boundary = self.laps[done] * length[done]
        frac = np.clip((boundary - before[done]) / np.maximum(ds[done], 1e-12), 0.0, 1.0)
        t_cross = (self.steps[done] - 1 + frac) * DT_S
        lap_time = t_cross - self._lap_started_s[done]
        self.last_lap_time_s[done] = lap_time
        self.best_lap_time_s[done] = np.fmin(self.best_lap_time_s[done], lap_time)
        self._lap_started_s[done] = t_cross

    def _project(self, mask: np.ndarray) -> None:
        b = self.bank
        kernels.project_cars(self.pose, self.track_of, self.idx, mask, b.centre, b.tangent,
                             b.normal, b.s, b.start, b.count, b.length, self.frenet)

    # ------------------------------------------------------------------ sensors
    def ray_distances_m(self) -> np.ndarray:
        """Distance along each sensor ray to the nearest edge, (num_cars, num_rays) [m]."""
        b = self.bank
        out = np.empty((self.num_cars, len(self._ray_angles)))
        kernels.cast_rays(self.pose, self.track_of, self._ray_angles,
                          self.sensors.ray_max_range_m, b.segments, b.grid_origin, b.grid_dims,
                          b.cell_base, b.cell_ptr, b.cell_items, b.cell_size_m, out)
        return out

    def curvature_ahead(self, distances_m: Sequence[float] | np.ndarray) -> np.ndarray:
        """Centreline curvature at the given distances ahead of each car, (num_cars, D) [1/m]."""
        return curvature_ahead(self.bank, self.track_of, self.idx, distances_m)

    def observe(self) -> np.ndarray:
        """The documented observation of every car, (num_cars, obs_dim) float32."""
        obs = assemble(self.ray_distances_m(), self.pose, self.frenet,
                       self.bank.half_width[self.track_of],
                       self.curvature_ahead(self.sensors.preview_distances_m), self.car,
                       self.sensors, grip=self.bank.grip[self.track_of])
        return np.clip(obs, self._obs_low, self._obs_high)


def curvature_ahead(
    bank: TrackBank, track_of: np.ndarray, idx: np.ndarray,
    distances_m: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Curvature [1/m] at ``distances_m`` ahead of centreline points ``idx`` of ``track_of``."""
    t = np.asarray(track_of)[:, None]
    ahead = np.round(np.asarray(distances_m)[None, :] / bank.spacing[t]).astype(np.int64)
    return bank.curvature[bank.start[t] + (np.asarray(idx)[:, None] + ahead) % bank.count[t]]
