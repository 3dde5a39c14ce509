"""Contribution records: frozen, validated, serialized without pickles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.learning.contribution import Contribution, ContributionError
from crowdlearning.learning.train import new_network
from crowdlearning.policy.network import Policy
from tests.learning.factories import play


@pytest.fixture(scope="module")
def contribution() -> Contribution:
    return play(Policy(new_network(0)), make_persona("expert", np.random.default_rng(0)),
                ticks=60)


def test_a_played_session_is_a_valid_contribution(contribution: Contribution) -> None:
    c = contribution
    assert c.num_ticks == 60 or c.meta["left_track"]
    assert c.has_input.all()  # the expert answered every tick
    assert np.all(c.input_tick == c.ticks)
    with pytest.raises(ValueError):
        c.executed[0, 0] = 0.5  # frozen arrays


def test_round_trip_through_bytes_is_exact(contribution: Contribution) -> None:
    again = Contribution.from_bytes(contribution.to_bytes())
    assert again.digest == contribution.digest
    assert again.header() == contribution.header()
    assert np.array_equal(again.player, contribution.player, equal_nan=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {"ticks": c.ticks + (np.arange(c.num_ticks) == 5)}, "consecutive"),
        (lambda c: {"executed": np.where(np.arange(c.num_ticks)[:, None] == 3, 1.5,
                                         c.executed)}, "outside"),
        (lambda c: {"input_tick": c.input_tick + 1}, "future"),
        (lambda c: {"intervention": np.ones(c.num_ticks, bool)}, "label mode"),
        (lambda c: {"states": c.states[:-1]}, "shape"),
        (lambda c: {"observations": np.full_like(c.observations, np.nan)}, "NaN"),
        (lambda c: {"mode": "drive"}, "mode must be"),
        (lambda c: {"beta": 1.5}, "beta"),
        (lambda c: {"contributor_id": ""}, "contributor_id"),
    ],
)
def test_malformed_records_are_rejected_with_the_bad_value_named(
    contribution: Contribution, change, message: str
) -> None:
    with pytest.raises(ContributionError, match=message):
        dataclasses.replace(contribution, **change(contribution))


def test_garbage_bytes_are_rejected() -> None:
    with pytest.raises(ContributionError, match="not a contribution"):
        Contribution.from_bytes(b"definitely not an npz")
