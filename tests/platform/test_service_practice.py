"""The verdict service without money (practice mode): screening, verdicts, rounds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from crowdlearning.crowd.simulation import make_crowd, play_round
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.suite import EvalSuite
from crowdlearning.evaluation.verdict import Decision, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.finetune import FinetuneConfig
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import TrainConfig
from crowdlearning.platform.service import VerdictService


@pytest.mark.slow
def test_a_round_judges_rejects_and_merges(tmp_path: Path) -> None:
    # GIVEN a fresh platform and a round of play by experts, a random player and a lazy one
    trainer = DaggerTrainer(ModelRegistry(tmp_path / "m"), AggregatedDataset(tmp_path / "d"),
                            train=TrainConfig(updates=800))
    net, training = train_initial_model(0)
    trainer.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    catalog: dict = {}
    service = VerdictService(
        trainer, Screener(catalog.__getitem__),
        # 10 placebos: with fewer, the 99% bound a penalty needs is too wide to reach
        verdict_config=VerdictConfig(null_runs=10, null_ticks=300,
                                     suite_size=12, starts_per_track=3, window_ticks=300,
                                     tracks_per_look=6, finetune=FinetuneConfig(updates=200)),
        champion_suite=EvalSuite.hidden(8), verdict_log=tmp_path / "verdicts.jsonl")
    rng = np.random.default_rng(0)
    crowd = make_crowd({"expert": 4, "random": 1, "lazy": 1}, rng, modes=("label",))
    contributions = play_round(trainer.policy(), 0, crowd, rng, round_id="r0", max_ticks=400,
                               catalog=catalog)
    # WHEN every contribution is submitted, then one replayed under another name
    outcomes = {c.contributor_id: service.submit(c, paid=False) for c in contributions}
    copy = dataclasses.replace(contributions[0], contribution_id="copy", contributor_id="sybil")
    replayed = service.submit(copy, paid=False)
    # THEN verdicts follow the data, the copy is judged as the original was (practice is
    # checked by the screen but never remembered: it can make no later run a duplicate), and
    # nothing moved money
    assert outcomes["random-0"].verdict.decision is Decision.WORSE
    assert outcomes["lazy-0"].verdict.decision is Decision.NO_EFFECT
    assert all(outcomes[f"expert-{k}"].verdict.decision is not Decision.WORSE for k in range(4))
    assert replayed.verdict.decision is outcomes[contributions[0].contributor_id].verdict.decision
    assert all(o.reward_tinybar == 0 == o.penalty_tinybar for o in outcomes.values())
    assert len((tmp_path / "verdicts.jsonl").read_text().splitlines()) == 7
    # AND closing the round merges exactly the improving contributions
    outcomes["sybil"] = replayed
    improved = {c.contribution_id for c in [*contributions, copy]
                if outcomes[c.contributor_id].verdict.decision is Decision.IMPROVED}
    result = service.close_round()
    assert set(result.merged) == improved
    if improved:
        meta = trainer.registry.meta(result.candidate_version)
        assert set(meta.contributions) == improved
        assert result.promoted == (trainer.registry.champion == result.candidate_version)
