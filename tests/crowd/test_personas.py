"""Scripted players behave as their names say, through the players' interface."""

from __future__ import annotations

import numpy as np
import pytest

from crowdlearning.crowd.personas import PERSONAS, make_persona
from crowdlearning.crowd.simulation import make_crowd, play_round
from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.learning.labels import extract_labels
from crowdlearning.learning.train import new_network
from crowdlearning.policy.network import Policy
from tests.learning.factories import play


@pytest.fixture(scope="module")
def round_contributions():
    policy = Policy(train_initial_model(0)[0])
    rng = np.random.default_rng(0)
    crowd = make_crowd({name: 2 for name in PERSONAS}, rng)
    return play_round(policy, 0, crowd, rng, round_id="t", max_ticks=200)


def _by_persona(contributions):
    out: dict[str, list] = {}
    for c in contributions:
        out.setdefault(c.contributor_id.rsplit("-", 1)[0], []).append(c)
    return out


def test_every_persona_plays_in_both_modes(round_contributions) -> None:
    groups = _by_persona(round_contributions)
    assert set(groups) == set(PERSONAS)
    for cs in groups.values():
        assert {c.mode for c in cs} == {"label", "takeover"}


def test_lazy_labels_copy_the_policy_and_random_labels_do_not(round_contributions) -> None:
    groups = _by_persona(round_contributions)
    lazy = next(c for c in groups["lazy"] if c.mode == "label")
    np.testing.assert_array_equal(lazy.player, lazy.proposed)
    rand = next(c for c in groups["random"] if c.mode == "label")
    assert np.abs(rand.player - rand.proposed).mean() > 0.3


def test_adversary_drives_off_and_experts_stay_on(round_contributions) -> None:
    groups = _by_persona(round_contributions)
    adversary = [c for c in groups["adversary"] if c.mode == "label"]
    assert all(c.meta["left_track"] for c in adversary)
    expert_label = [c for c in groups["expert"] if c.mode == "label"]
    assert not any(c.meta["left_track"] for c in expert_label)


def test_expert_takeover_steps_in_only_where_the_policy_strays() -> None:
    # an untrained policy barely steers: the expert must take over in corners, not on straights
    c = play(Policy(new_network(0)), make_persona("expert", np.random.default_rng(0)),
             mode="takeover", ticks=400, track_name="oval")
    share = c.intervention.mean()
    assert 0.05 < share < 0.9
    assert len(extract_labels(c)) == c.intervention.sum()


def test_unknown_persona_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown persona"):
        make_persona("speedrunner", np.random.default_rng(0))


def test_motor_noise_does_not_make_a_player_take_over() -> None:
    """Stepping in is decided on intent: a shaky hand (noise 0.3 on every tick) takes over no
    more than the exact expert (before, its tremor fired the gate on 97% of the ticks)."""
    policy = Policy(train_initial_model(0)[0])
    shares = {}
    for name in ("expert", "noisy-0.3", "human-150-0.2"):
        c = play(policy, make_persona(name, np.random.default_rng(1)), mode="takeover",
                 ticks=400, track_name="kidney")
        shares[name] = c.intervention.mean()
    assert shares["noisy-0.3"] <= shares["expert"] + 0.05, shares
    assert shares["human-150-0.2"] <= shares["expert"] + 0.05, shares
    # the noise still reaches the car whenever the noisy player drives
    c = play(policy, make_persona("noisy-0.3", np.random.default_rng(1)), mode="label", ticks=50)
    assert np.abs(c.player - c.proposed).mean() > 0.1
