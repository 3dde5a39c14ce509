"""What is new this round: replays and copies of accepted data are covered, new data is not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.coverage import (
    COVERED_META_KEY,
    Coverage,
    covered_rows,
    ranges_of,
)
from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.labels import extract_labels
from crowdlearning.policy.network import Policy
from tests.learning.factories import play

TRACK = "chicane-park"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(train_initial_model(0)[0])


def _run(policy: Policy, persona: str, seed: int, start_s_m: float = 20.0) -> Contribution:
    return play(policy, make_persona(persona, np.random.default_rng(seed)), ticks=300,
                track_name=TRACK, start_s_m=start_s_m, beta=1.0, session_id=f"{persona}{seed}")


def test_a_replay_with_small_noise_is_a_near_duplicate(policy: Policy) -> None:
    original = _run(policy, "human-150-0.2", 1)
    coverage = Coverage()
    # the original's recorded steering sent again with tiny noise, from the same start
    noisy = original.player + np.random.default_rng(9).normal(0, 0.005, original.player.shape)
    replay = dataclasses.replace(original, player=np.clip(noisy, -1, 1), contribution_id="x")
    marked, reason = coverage.mark(replay, [original])
    assert "near duplicate" in reason
    assert len(covered_rows(marked)) > 0.9 * replay.num_ticks


def test_another_players_run_is_new_and_covered_ticks_are_not_labels(policy: Policy) -> None:
    original = _run(policy, "human-150-0.2", 1)
    other = _run(policy, "human-150-0.2", 2)  # another person: other noise, other states
    marked, reason = Coverage().mark(other, [original])
    assert reason == ""
    assert len(covered_rows(marked)) < 0.2 * other.num_ticks
    # a partial copy: the covered part is dropped from what is judged and merged
    half = np.arange(other.num_ticks // 2)
    partly = dataclasses.replace(marked, meta={**marked.meta, COVERED_META_KEY: ranges_of(half)})
    assert len(extract_labels(partly)) == len(extract_labels(other)) - len(half)


def test_nothing_accepted_covers_nothing(policy: Policy) -> None:
    c = _run(policy, "expert", 0)
    marked, reason = Coverage().mark(c, [])
    assert reason == "" and COVERED_META_KEY not in marked.meta


def test_ranges_round_trip() -> None:
    rows = np.array([0, 1, 2, 7, 9, 10])
    assert ranges_of(rows) == [[0, 3], [7, 8], [9, 11]]
    c = dataclasses.make_dataclass("C", [("meta", dict)])({COVERED_META_KEY: ranges_of(rows)})
    assert np.array_equal(covered_rows(c), rows)  # type: ignore[arg-type]
