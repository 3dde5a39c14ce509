"""Per-track grip: one simulator holds tracks of every grip; full-grip tracks drive as before."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crowdlearning.errors import SimulationError, TrackError
from crowdlearning.sim.expert import ExpertDriver
from crowdlearning.sim.families import family_track, get_family
from crowdlearning.sim.params import DT_S, CarParams
from crowdlearning.sim.race_sim import RaceSim
from crowdlearning.sim.replay import EpisodeStart, pose_digest, simulate
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_gen import generate_track

# The expert's trajectories on gen-3 and gen-11 (8 m/s start, 800 ticks, actions rounded to 1e-6),
# computed with the code of commit 5f8fed0, before grip was per track: full-grip tracks must keep
# them bit for bit. The rounding makes them the same on every CPU: the simulator replays an action
# log bit for bit everywhere, but the expert's arctan/sin come from numpy, whose SIMD dispatch
# (SVML on AVX-512, other code on AVX2) differs in the last bit, and the unrounded trajectory then
# drifts (it did: CI on an AVX2 machine failed the unrounded digests recorded on an AVX-512 one).
# Recomputed 2026-11-30 at 5f8fed0 and at HEAD with numpy's AVX-512 and AVX2 paths: all four agree.
BEFORE_GRIP = ("c1c4f33d60942ef0eb5518719f1aa1690ef500a67c9c8c7fb4b274a1018e6b80",
               "6f31f3378e1a70cd4bc87a243f0789035afbc71eec710e1baae6a971db3306f0")
ACTION_DECIMALS = 6


def _with_grip(track: Track, grip: float) -> Track:
    return Track(track.name, track.centreline_m, track.width_m, track.seed, grip=grip)


def _expert_laps(tracks: list[Track], max_steps: int = 4000) -> RaceSim:
    sim = RaceSim(tracks, len(tracks), max_steps=max_steps)
    sim.reset_cars(np.arange(len(tracks)), track_index=np.arange(len(tracks)), speed_mps=8.0)
    expert = ExpertDriver()
    while sim.alive.any():
        sim.step(expert.act(sim))
        sim.alive &= sim.laps < 1
    return sim


def test_full_grip_tracks_drive_bit_for_bit_as_before_even_beside_a_low_grip_track() -> None:
    # GIVEN two easy tracks and a low-grip track in ONE simulator
    tracks = [generate_track(3), generate_track(11), family_track("low-grip", 3)]
    assert tracks[2].grip == get_family("low-grip").grip_factor < 1.0
    sim = RaceSim(tracks, 3, max_steps=800)
    sim.reset_cars(np.arange(3), track_index=np.arange(3), speed_mps=8.0)
    # WHEN the expert drives them
    expert, poses = ExpertDriver(), [sim.pose.copy()]
    while sim.alive[:2].any():
        sim.step(np.round(expert.act(sim), ACTION_DECIMALS))
        poses.append(sim.pose.copy())
    # THEN the easy cars' trajectories are those of the simulator before per-track grip
    trajectories = np.asarray(poses)
    assert tuple(pose_digest(trajectories[:, i]) for i in range(2)) == BEFORE_GRIP


def test_a_low_grip_track_is_slower_for_the_expert_in_a_mixed_simulator() -> None:
    # GIVEN the same low-grip layouts at full grip and at the family's grip, in one simulator
    low = [family_track("low-grip", s) for s in (1, 2)]
    full = [_with_grip(t, 1.0) for t in low]
    # WHEN the expert drives a lap on each
    sim = _expert_laps(full + low)
    # THEN it finishes all of them (it knows the grip) and is slower on every slippery one
    assert (sim.laps == 1).all()
    lap = sim.best_lap_time_s
    assert np.all(lap[2:] > lap[:2] * 1.1), lap
    # and a car on full grip among them drives exactly as in a simulator of its own
    alone = _expert_laps(full[:1])
    assert alone.best_lap_time_s[0] == lap[0]


def test_the_car_cannot_turn_tighter_than_the_tracks_grip_allows() -> None:
    # GIVEN two cars at 20 m/s with full lock, one on a track of half the grip
    track = generate_track(5)
    sim = RaceSim([track, _with_grip(track, 0.5)], 2)
    sim.reset_cars(np.arange(2), track_index=np.arange(2), speed_mps=20.0)
    sim.pose[:, 4] = CarParams().max_steer_rad  # wheels already at full lock
    yaw0 = sim.pose[:, 2].copy()
    # WHEN they step once
    sim.step(np.array([[1.0, 0.0], [1.0, 0.0]]))
    # THEN each yaw rate is capped at its grip / v, half on the slippery track
    yaw_rate = np.abs(sim.pose[:, 2] - yaw0) / DT_S
    v_mid = 0.5 * (20.0 + sim.pose[:, 3])
    grip = CarParams().grip_mps2
    assert yaw_rate[0] == pytest.approx(grip / v_mid[0], rel=1e-9)
    assert yaw_rate[1] == pytest.approx(0.5 * grip / v_mid[1], rel=1e-9)


def test_grip_is_in_the_json_and_digest_only_when_it_is_not_one() -> None:
    easy, low = generate_track(4), family_track("low-grip", 4)
    assert "grip" not in easy.to_dict() and easy.grip == 1.0
    assert json.loads(low.to_json())["grip"] == 0.65
    again = Track.from_json(low.to_json())
    assert again.grip == 0.65 and again.digest == low.digest
    # the same layout at another grip is another track
    assert _with_grip(low, 1.0).digest != low.digest
    with pytest.raises(TrackError, match="grip"):
        _with_grip(easy, 0.0)


def test_a_low_grip_run_replays_alone_bit_for_bit() -> None:
    # GIVEN a car driven by the expert on a low-grip track beside an easy one
    tracks = [generate_track(6), family_track("low-grip", 6)]
    sim = RaceSim(tracks, 2, max_steps=300)
    sim.reset_cars(np.arange(2), track_index=np.arange(2), speed_mps=6.0)
    expert, actions, poses = ExpertDriver(), [], [sim.pose[1].copy()]
    while sim.alive[1]:
        a = expert.act(sim)
        actions.append(a[1])
        sim.step(a)
        poses.append(sim.pose[1].copy())
    # WHEN its actions are replayed on the track alone (grip comes with the track)
    replay = simulate(tracks[1], EpisodeStart(tracks[1].digest, 0.0, 6.0), np.array(actions),
                      max_steps=300)
    # THEN the trajectory is the same, bit for bit
    assert replay.digest == pose_digest(np.array(poses))


def test_a_simulator_grows_its_tracks_without_disturbing_its_cars() -> None:
    # GIVEN cars driving on two tracks, and a twin simulator that is never grown
    base = [generate_track(1), generate_track(2)]
    grown, twin = RaceSim(base, 2, max_steps=400), RaceSim(base, 2, max_steps=400)
    for sim in (grown, twin):
        sim.reset_cars(np.arange(2), track_index=np.arange(2), speed_mps=8.0)
    expert = ExpertDriver()
    for tick in range(200):
        if tick == 100:  # WHEN tracks are added mid-run
            assert grown.add_tracks([family_track("tight", 1), family_track("low-grip", 1)]) \
                == [2, 3]
        for sim in (grown, twin):
            sim.step(expert.act(sim))
    # THEN the cars drove exactly as without the new tracks, which are now usable
    assert np.array_equal(grown.pose, twin.pose)
    grown.reset_cars(np.array([0]), track_index=3, speed_mps=5.0)
    assert grown.bank.grip[grown.track_of[0]] == 0.65
    with pytest.raises(SimulationError, match="start with"):
        grown.add_tracks(RaceSim(base[:1], 1).bank)


def test_the_curvature_preview_reads_a_corner_as_sharp_as_the_surface_makes_it() -> None:
    # GIVEN one low-grip layout at full grip and at the family's grip, side by side
    low = family_track("low-grip", 4)
    full = _with_grip(low, 1.0)
    sim = RaceSim([full, low], 2)
    sim.reset_cars(np.arange(2), track_index=np.arange(2), start_s_m=37.0, speed_mps=8.0)
    obs = sim.observe()
    preview = slice(13, 18)
    # THEN every other field is identical, and the preview is the full-grip one / the grip
    # (the policy can tell the slippery track from the same layout at full grip)
    np.testing.assert_array_equal(obs[0, :13], obs[1, :13])
    raw = sim.curvature_ahead(sim.sensors.preview_distances_m)[0] * sim.sensors.curvature_scale_m
    np.testing.assert_array_equal(obs[0, preview], np.clip(raw, -2, 2).astype(np.float32))
    np.testing.assert_allclose(obs[1, preview], np.clip(raw / low.grip, -2, 2), rtol=1e-6)
    assert np.abs(obs[1, preview]).sum() > np.abs(obs[0, preview]).sum()
