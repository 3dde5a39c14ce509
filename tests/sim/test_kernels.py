"""Physics, projection and range rays of the compiled kernels."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.sim.params import DT_S, CarParams, SensorParams
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.raycast_numpy import cast_rays_numpy
from crowdlearning.sim.track_gen import generate_track, named_track


def _random_poses_on_track(sim: RaceSim, rng: np.random.Generator, n: int) -> None:
    track = sim.bank.tracks[0]
    sim.reset_cars(np.arange(n), start_s_m=rng.uniform(0, track.length_m, n),
                   lateral_m=rng.uniform(-0.9, 0.9, n) * track.half_width_m,
                   heading_offset_rad=rng.uniform(-np.pi, np.pi, n))


@pytest.mark.parametrize("track_name", ["hairpin-valley", "chicane-park", "gen-2", "gen-6"])
def test_grid_rays_equal_brute_force_rays(track_name: str) -> None:
    # GIVEN cars anywhere on tracks where other parts of the track come close
    track = named_track(track_name) if not track_name.startswith("gen") else generate_track(
        int(track_name[4:]))
    sensors = SensorParams(ray_angles_deg=tuple(np.linspace(-180, 180, 25)[:-1]),
                           ray_max_range_m=120.0)
    sim = RaceSim([track], 300, sensors=sensors)
    _random_poses_on_track(sim, np.random.default_rng(0), 300)
    # WHEN both ray casters measure every ray
    grid = sim.ray_distances_m()
    brute = cast_rays_numpy(track, sim.pose, sensors.ray_angles_rad, sensors.ray_max_range_m)
    # THEN they agree to floating-point precision
    np.testing.assert_allclose(grid, brute, rtol=0, atol=1e-9)
    assert (grid < sensors.ray_max_range_m).mean() > 0.5  # the rays do hit things


def test_side_rays_see_the_near_edge_on_a_straight() -> None:
    track = named_track("oval")
    sim = RaceSim([track], 1, sensors=SensorParams(ray_angles_deg=(-90.0, 90.0)))
    sim.reset_cars(np.array([0]), start_s_m=60.0, lateral_m=2.0)  # on the bottom straight
    right, left = sim.ray_distances_m()[0]
    assert left == pytest.approx(track.half_width_m - 2.0, abs=0.05)
    assert right == pytest.approx(track.half_width_m + 2.0, abs=0.05)


def test_full_throttle_accelerates_toward_top_speed_and_braking_stops() -> None:
    car = CarParams()
    sim = RaceSim([named_track("oval")], 1, car=car)
    sim.reset_cars(np.array([0]), start_s_m=0.0)
    for _ in range(20):  # 1 s of full throttle from rest
        sim.step(np.array([[0.0, 1.0]]))
    v1 = sim.pose[0, 3]
    assert 0.8 * car.max_accel_mps2 < v1 < car.max_accel_mps2  # ~ a * t, a bit less (drag)
    for _ in range(40):
        sim.step(np.array([[0.0, -1.0]]))
    assert sim.pose[0, 3] == 0.0  # never negative, stops


def test_steering_is_rate_limited_and_grip_limits_the_turn() -> None:
    car = CarParams()
    sim = RaceSim([named_track("oval")], 2, car=car)
    sim.reset_cars(np.array([0, 1]), start_s_m=60.0, speed_mps=np.array([5.0, 25.0]))
    yaw0 = sim.pose[:, 2].copy()
    sim.step(np.array([[1.0, 0.0], [1.0, 0.0]]))
    # the wheel moves at most steer_rate * dt per tick
    np.testing.assert_allclose(sim.pose[:, 4], car.steer_rate_radps * DT_S)
    for _ in range(5):
        sim.step(np.array([[1.0, 0.0], [1.0, 0.0]]))
    yaw_rate = (sim.pose[:, 2] - yaw0) / (6 * DT_S)
    # at 25 m/s the grip (9 m/s^2) caps the yaw rate near grip / v
    assert yaw_rate[1] <= car.grip_mps2 / 24.0 + 1e-9
    assert yaw_rate[0] > yaw_rate[1]


def test_projection_tracks_progress_and_lateral_offset() -> None:
    track = named_track("oval")
    sim = RaceSim([track], 1)
    sim.reset_cars(np.array([0]), start_s_m=30.0, lateral_m=-1.5, speed_mps=10.0)
    assert sim.frenet[0, 0] == pytest.approx(30.0, abs=track.spacing_m)
    assert sim.frenet[0, 1] == pytest.approx(-1.5, abs=1e-6)
    s_start = sim.frenet[0, 0]
    for _ in range(20):
        sim.step(np.array([[0.0, 0.3]]))
    assert sim.progress_m[0] == pytest.approx(sim.frenet[0, 0] - s_start, abs=1e-9)
    assert sim.progress_m[0] > 9.0
