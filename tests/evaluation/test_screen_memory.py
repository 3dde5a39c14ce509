"""The screen's memory: what a failed verdict takes back, and what it must leave."""

from __future__ import annotations

import dataclasses

import numpy as np

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.screening import Screener
from crowdlearning.learning.train import new_network
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play

TRACK = named_track("kidney")


def test_forgetting_one_contribution_keeps_what_another_holds() -> None:
    # GIVEN two accepted contributions sharing most labelled states (B replays A's first half)
    a = play(Policy(new_network(0)), make_persona("expert", np.random.default_rng(0)), ticks=80)
    half = a.num_ticks // 2
    b = dataclasses.replace(a, contribution_id="b", contributor_id="other",
                            **{k: getattr(a, k)[:half] for k in (
                                "ticks", "states", "observations", "proposed", "executed",
                                "player", "input_tick", "intervention")})
    screen = Screener({TRACK.digest: TRACK}.__getitem__)
    prints_a, added_a = screen.accept(a)
    prints_b, added_b = screen.accept(b)
    assert prints_b <= prints_a and added_b == set()  # B added nothing new
    # WHEN A's verdict is never booked and its acceptance is taken back, keeping B's
    screen.forget(a.digest, added_a, keep=prints_b)
    # THEN A may be judged again, and a copy of B is still refused
    assert screen.check(dataclasses.replace(a, contribution_id="a-again")) == ""
    copy_b = dataclasses.replace(b, contribution_id="b-copy", contributor_id="third")
    assert "near duplicate" in screen.check(copy_b) or "duplicate" in screen.check(copy_b)
