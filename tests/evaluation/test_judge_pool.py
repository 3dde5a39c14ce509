"""Judge pools: verdicts computed on Ray are the verdicts computed here; batches keep order."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.judge_pool import (
    InlineJudgePool,
    JudgeSpec,
    RayJudgePool,
    make_judge_pool,
)
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.verdict import Decision, PriceSchedule, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.finetune import FinetuneConfig
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.ledger import make_engine
from crowdlearning.platform.service import VerdictService
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play
from tests.ledger.factories import STAKE_MINIMUM, funded_player, new_ledger

pytestmark = pytest.mark.timeout(300)
CONFIG = VerdictConfig(null_runs=4, null_ticks=300,
                       suite_size=8, tracks_per_look=4, starts_per_track=2, window_ticks=300,
                       finetune=FinetuneConfig(updates=150))


@pytest.fixture(scope="module")
def spec() -> JudgeSpec:
    net, _ = train_initial_model(0)
    return JudgeSpec.of(net, 0, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS),
                        config=CONFIG, prices=PriceSchedule(), labels=LabelConfig())


@pytest.fixture(scope="module")
def plays(spec: JudgeSpec) -> list:
    policy = Policy(spec.build().champion)
    rng = np.random.default_rng(5)
    return [play(policy, make_persona(name, rng), ticks=300, track_name="hairpin-valley",
                 session_id=name) for name in ("expert", "adversary", "lazy", "noisy-0.1")]


@pytest.fixture(scope="module")
def ray_pool() -> Iterator[RayJudgePool]:
    pool = RayJudgePool(workers=2)
    yield pool
    pool.close()


def test_ray_verdicts_equal_inline_verdicts_in_order(spec: JudgeSpec, plays: list,
                                                     ray_pool: RayJudgePool) -> None:
    # WHEN the same batch is judged here and on two Ray workers
    here = InlineJudgePool().judge(spec, plays)
    there = ray_pool.judge(spec, plays)
    # THEN every verdict is the same, in the batch's order (Judge is deterministic)
    assert [v.contribution_id for v in there] == [c.contribution_id for c in plays]
    assert there == here
    assert {v.decision for v in here} >= {Decision.WORSE, Decision.NO_EFFECT}


def test_a_new_champion_is_loaded_by_every_worker(spec: JudgeSpec, plays: list,
                                                  ray_pool: RayJudgePool) -> None:
    # GIVEN the next champion version (other weights)
    net = spec.build().champion
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.5)
    nxt = JudgeSpec.of(net, 1, spec.champion_data, config=CONFIG, prices=spec.prices,
                       labels=spec.labels)
    # WHEN judged on Ray and here
    there = ray_pool.judge(nxt, plays[:2])
    # THEN the workers judged against the new champion, as a local judge would
    assert all(v.champion_version == 1 for v in there)
    assert there == InlineJudgePool().judge(nxt, plays[:2])
    rejected = ray_pool.rejected(nxt, plays[0], "duplicate")
    assert rejected.decision is Decision.REJECTED and rejected.champion_version == 1


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 'inline' or 'ray'"):
        make_judge_pool("threads", 2)


def test_submit_many_screens_in_order_like_single_submissions(tmp_path: Path) -> None:
    # GIVEN a platform with a ledger and a batch: a paid play, a practice one, then a paid copy
    # of the first under another name (the screen remembers paid contributions only)
    trainer = DaggerTrainer(ModelRegistry(tmp_path / "m"), AggregatedDataset(tmp_path / "d"))
    net, training = train_initial_model(0)
    trainer.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    track = named_track("hairpin-valley")
    ledger = new_ledger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    for player in ("player-1", "sybil"):
        funded_player(ledger, player, 0, stake=STAKE_MINIMUM)
    service = VerdictService(trainer, Screener({track.digest: track}.__getitem__),
                             verdict_config=CONFIG, ledger=ledger)
    rng = np.random.default_rng(1)
    first, second = (play(trainer.policy(), make_persona(n, rng), ticks=300,
                          track_name="hairpin-valley", session_id=n) for n in ("expert", "random"))
    copy = dataclasses.replace(first, contribution_id="copy", contributor_id="sybil")
    # WHEN the batch is submitted
    outcomes = service.submit_many([(first, None), (second, False), (copy, None)])
    # THEN results come back in order, and the copy is refused as a duplicate of the first
    assert [o.verdict.contribution_id for o in outcomes] == [first.contribution_id,
                                                             second.contribution_id, "copy"]
    assert outcomes[0].verdict.decision is not Decision.REJECTED
    assert outcomes[2].verdict.decision is Decision.REJECTED
    assert "duplicate" in outcomes[2].verdict.reason
    # AND each equals what one-at-a-time submission decides
    single = VerdictService(trainer, Screener({track.digest: track}.__getitem__),
                            verdict_config=CONFIG).submit(second, paid=False)
    assert single.verdict == outcomes[1].verdict


def test_a_lost_actor_is_replaced_and_its_work_done(spec: JudgeSpec, plays: list,
                                                    ray_pool: RayJudgePool) -> None:
    import ray

    # GIVEN a worker of the pool killed (its process lost), after the champion was loaded
    ray_pool.judge(spec, plays[:1])
    ray.kill(ray_pool._actors[0], no_restart=False)
    # WHEN the next batch is judged
    there = ray_pool.judge(spec, plays[:2])
    # THEN Ray started the actor again, it rebuilt its judge, and the verdicts are the same
    assert there == InlineJudgePool().judge(spec, plays[:2])


def test_the_inline_judge_is_rebuilt_when_the_suite_changes_under_the_same_champion(
        spec: JudgeSpec) -> None:
    """A family unlocked without a new champion (``Curriculum.stalled``) changes the verdict
    suite: the pool must not keep judging on the old one."""
    pool = InlineJudgePool()
    first = pool.judge_for(spec)
    assert pool.judge_for(spec) is first  # same champion, same configuration: kept
    wider = dataclasses.replace(spec, config=dataclasses.replace(
        spec.config, families=("easy", "tight")))
    rebuilt = pool.judge_for(wider)
    assert rebuilt is not first and rebuilt.config.families == ("easy", "tight")
