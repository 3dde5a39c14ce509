"""Tracks: generated from a seed, plain data, named by a digest, rejected when malformed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crowdlearning.errors import TrackError
from crowdlearning.sim.track import Track
from crowdlearning.sim.track_gen import NAMED_TRACKS, generate_track, named_track, track_features


def test_same_seed_same_track_and_different_seeds_differ() -> None:
    # GIVEN two generations from one seed and one from another
    a, b, c = generate_track(11), generate_track(11), generate_track(12)
    # THEN the first two are the same track, the third is not
    assert a.digest == b.digest
    assert np.array_equal(a.centreline_m, b.centreline_m)
    assert a.digest != c.digest


def test_json_round_trip_is_exact() -> None:
    track = generate_track(5)
    again = Track.from_json(track.to_json())
    assert again.digest == track.digest
    assert np.array_equal(again.centreline_m, track.centreline_m)
    assert again.width_m == track.width_m
    assert json.loads(track.to_json())["format"] == "crowdlearning.track/1"


def test_generated_tracks_are_valid_closed_circuits() -> None:
    for seed in range(25):
        track = generate_track(seed)
        track.check_geometry()  # raises if corners fold or parts overlap
        # closed: the last point is about one spacing from the first
        gap = np.hypot(*(track.centreline_m[0] - track.centreline_m[-1]))
        assert gap == pytest.approx(track.spacing_m, rel=0.06)
        # a full loop turns by 2 pi
        assert abs(np.sum(track.curvature_1pm * track.segment_lengths_m)) == pytest.approx(
            2 * np.pi, rel=0.01)


def test_generator_varies_curvature_with_hairpins_and_chicanes() -> None:
    feats = [track_features(generate_track(seed)) for seed in range(60)]
    hairpins = np.mean([f["hairpin"] for f in feats])
    chicanes = np.mean([f["chicane"] for f in feats])
    radii = np.array([f["tightest_radius_m"] for f in feats])
    print(f"hairpins {hairpins:.0%}, chicanes {chicanes:.0%}, "
          f"tightest radius median {np.median(radii):.1f} m")
    assert hairpins >= 0.10
    assert chicanes >= 0.40
    assert radii.min() < 10.0 < radii.max()


@pytest.mark.parametrize("name", sorted(NAMED_TRACKS))
def test_named_tracks_exist_and_are_valid(name: str) -> None:
    track = named_track(name)
    track.check_geometry()
    assert track.name == name
    assert 400 < track.length_m < 3000


def test_unknown_named_track_is_a_clear_error() -> None:
    with pytest.raises(TrackError, match="unknown track 'nope'"):
        named_track("nope")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other"), "expected format"),
        (lambda d: d.update(width_m=-3), "width_m must be"),
        (lambda d: d.update(centreline_mm=d["centreline_mm"][:10]), "points"),
        (lambda d: d.update(centreline_mm="abc"), "malformed|shape"),
        (lambda d: d.pop("name"), "malformed"),
    ],
)
def test_malformed_track_json_is_rejected(mutate, message: str) -> None:
    data = generate_track(3).to_dict()
    mutate(data)
    with pytest.raises(TrackError, match=message):
        Track.from_dict(data)


def test_overlapping_track_is_rejected() -> None:
    # GIVEN a figure of two loops squeezed so that the parts overlap
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    squeezed = np.stack([100 * np.cos(theta), 6 * np.sin(theta)], axis=1)
    track = Track.from_loop(squeezed, width_m=12.0, name="squeezed")
    with pytest.raises(TrackError):
        track.check_geometry()


def test_unparseable_json_is_rejected() -> None:
    with pytest.raises(TrackError, match="does not parse"):
        Track.from_json("{not json")
