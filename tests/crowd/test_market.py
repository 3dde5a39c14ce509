"""The whole loop on embedded defaults: play, verdicts, ledger, payouts on the local network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crowdlearning.crowd.market import MarketConfig, run_market
from crowdlearning.evaluation.verdict import VerdictConfig
from crowdlearning.learning.finetune import FinetuneConfig


@pytest.mark.slow
def test_one_round_pays_penalizes_and_settles_exactly(tmp_path: Path) -> None:
    # GIVEN a small crowd and a small verdict suite
    cfg = MarketConfig(rounds=1, crowd={"expert": 2, "lazy": 1, "adversary": 1},
                       session_ticks=300, eval_tracks=4, train_updates=400,
                       verdict=VerdictConfig(null_runs=4, null_ticks=300,
                                             suite_size=8, starts_per_track=3, window_ticks=300,
                                             tracks_per_look=4,
                                             finetune=FinetuneConfig(updates=200)))
    # WHEN the loop runs
    report = run_market(cfg, tmp_path)
    books = report["personas"]
    # THEN verdicts moved money as priced, and the chain received exactly the rewards
    assert books["adversary"]["penalized"] == 1 and books["adversary"]["net_tinybar"] < 0
    assert books["lazy"]["paid"] == 0 and books["lazy"]["net_tinybar"] == 0
    assert books["expert"]["penalized"] == 0
    earned = sum(b["earned_tinybar"] for b in books.values())
    settlement = report["settlement"]
    assert settlement["paid_on_chain_tinybar"] == earned
    assert settlement["live_after"] == 0
    assert "mismatches=()" in settlement["reconciliation"]
    records = [json.loads(line) for line in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert all(r["audit"] for r in records)  # every verdict is journaled for the audit topic
    assert report["audit"]["all_published"]  # and published in a block on it
    assert len(report["learning_curve"]) == 2
