"""verify-verdict: a published verdict is re-judged bit for bit; a changed record is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crowdlearning.cli import main
from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.pooled import pooled_verdict
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.verdict import Judge, PriceSchedule, VerdictConfig
from crowdlearning.evaluation.verify import Verifier
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
from crowdlearning.platform.service import VerdictService
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play

TRACK = "chicane-park"
CONFIG = VerdictConfig(suite_size=4, tracks_per_look=2, starts_per_track=2, window_ticks=200,
                       finetune=FinetuneConfig(updates=60), null_runs=4, null_ticks=200)


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("judge")
    trainer = DaggerTrainer(ModelRegistry(root / "models"), AggregatedDataset(root / "dataset"))
    net, training = train_initial_model(0)
    trainer.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    track = named_track(TRACK)
    service = VerdictService(trainer, Screener({track.digest: track}.__getitem__),
                             verdict_config=CONFIG, verdict_log=root / "verdicts.jsonl",
                             # rewards scaled by the labels' precision: re-derived too
                             prices=PriceSchedule(label_noise_ref=0.1))
    for k, persona in enumerate(("late-4", "random")):
        c = play(trainer.policy(), make_persona(persona, np.random.default_rng(k)), ticks=300,
                 track_name=TRACK, session_id=f"s{k}")
        service.submit(c, paid=False)
    return root


def _records(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "verdicts.jsonl").read_text().splitlines()]


def test_every_logged_verdict_is_reproduced_bit_for_bit(judged: Path, capsys) -> None:
    assert main(["verify-verdict", "--data-dir", str(judged)]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 verdicts reproduced" in out
    # the delay estimated at acceptance is part of what was judged and recorded
    first = _records(judged)[0]["verdict"]
    assert "reaction_delay_ticks" in first["label_params"]
    # so is the labels' precision of every judged verdict (``learning.label_noise``)
    judged_records = [r["verdict"] for r in _records(judged) if r["verdict"]["runs"] > 0]
    assert judged_records and all(0 < r["label_precision"] < 1 and r["label_noise"] > 0
                                  for r in judged_records)


def test_a_changed_record_or_hash_is_named(judged: Path) -> None:
    entry = _records(judged)[1]
    verifier = Verifier(judged)
    assert verifier.check(entry["verdict"], entry["sha256"]).reproduced
    forged = {**entry["verdict"], "price_tinybar": entry["verdict"]["price_tinybar"] - 1}
    check = verifier.check(forged, entry["sha256"])
    assert not check.reproduced
    assert any("sha256" in d for d in check.differences)
    assert any(d.startswith("price_tinybar") for d in check.differences)


def test_usage_errors_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["verify-verdict", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert main(["verify-verdict", "--data-dir", str(tmp_path)]) == 2
    assert "no verdict log" in capsys.readouterr().err


def test_a_pools_verdict_is_judged_again_from_its_members(judged: Path, tmp_path: Path,
                                                          capsys) -> None:
    # GIVEN the round's two judged runs pooled by the judge that judged them alone
    root = tmp_path / "data"
    shutil.copytree(judged, root)
    verifier = Verifier(root)
    first = _records(root)[0]["verdict"]
    net, _ = verifier.registry.load(0)
    judge = Judge.from_config_record(first["judge_config"], net, 0,
                                     verifier.dataset.load(verifier.registry.contributions_in(0)),
                                     first["seed"])
    members = [verifier._archived(r["verdict"]["contribution_id"]) for r in _records(root)]
    pool = pooled_verdict(judge, members)
    assert pool.label_params["members"] == [m.contribution_id for m in members]
    with (root / "pools.jsonl").open("w") as fh:
        fh.write(json.dumps({"verdict": json.loads(pool.to_json()), "sha256": pool.sha256}) + "\n")
    # WHEN verify-verdict checks it THEN it is judged again from the kept members, bit for bit
    assert main(["verify-verdict", "--data-dir", str(root), "--contribution",
                 pool.contribution_id]) == 0
    assert "1 of 1 verdicts reproduced" in capsys.readouterr().out
    # AND a pool claimed with its members in another order (other minibatches) is named
    swapped = json.loads(pool.to_json())
    swapped["label_params"]["members"] = swapped["label_params"]["members"][::-1]
    check = Verifier(root).check(swapped)
    assert not check.reproduced
    assert any(d.startswith("scores_with_m") for d in check.differences), check.differences
