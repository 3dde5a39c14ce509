"""The round's pool: which runs join, how its verdict is measured, priced and shared."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.pooled import (
    PoolMember,
    judge_pool,
    may_join,
    pool_id_of,
    pool_price,
    pool_shares,
)
from crowdlearning.evaluation.verdict import (
    POOL_CONTRIBUTOR,
    POOL_ROTATION,
    POOL_SEED,
    Decision,
    Judge,
    PriceSchedule,
    Verdict,
    VerdictConfig,
)
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.finetune import FinetuneConfig
from crowdlearning.policy.network import Policy
from tests.learning.factories import play

CONFIG = VerdictConfig(suite_size=8, tracks_per_look=4, starts_per_track=2, window_ticks=300,
                       finetune=FinetuneConfig(updates=150), null_runs=5, null_ticks=300)


def _verdict(cid: str, decision: Decision = Decision.NO_EFFECT, mean: float = 5.0,
             reason: str = "", runs: int = 16, precision: float = 1.0) -> Verdict:
    return Verdict(contribution_id=cid, contributor_id=f"p-{cid}", contribution_digest=cid,
                   decision=decision, reason=reason, champion_version=3, seed=1,
                   suite_seeds=[1], runs=runs, looks=1, scores_with_m=[], scores_without_m=[],
                   mean_diff_m=mean, ci_low_m=mean - 4, ci_high_m=mean + 4, effect_bp=0,
                   confidence=0.95, labels=100, price_tinybar=0, label_precision=precision)


def _member(cid: str, mean: float, *, paid: bool = True, precision: float = 1.0,
            contribution: Contribution | None = None) -> PoolMember:
    verdict = _verdict(cid, mean=mean, precision=precision)
    return PoolMember(contribution or _FakeRun(cid), verdict, paid)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class _FakeRun:
    contribution_id: str


def test_only_honest_looking_no_effect_runs_judged_on_their_merits_may_join() -> None:
    assert may_join(_verdict("a", mean=3.0))
    assert not may_join(_verdict("b", mean=-0.1))  # measured harm, however small
    assert not may_join(_verdict("c", mean=0.0))
    assert not may_join(_verdict("d", Decision.IMPROVED))  # paid already
    assert not may_join(_verdict("e", Decision.WORSE, mean=-50))
    assert not may_join(_verdict("f", reason="labels copy the policy's own actions", runs=0))
    assert not may_join(_verdict("g", Decision.REJECTED, reason="duplicate"))


def test_a_pool_id_names_its_champion_and_members_in_any_order() -> None:
    assert pool_id_of(3, ["b", "a"]) == pool_id_of(3, ["a", "b"])
    assert pool_id_of(3, ["a", "b"]) != pool_id_of(4, ["a", "b"])
    assert pool_id_of(3, ["a", "b"]) != pool_id_of(3, ["a", "c"])
    assert pool_id_of(3, ["a"]).startswith("pool:v3:")


def test_a_pool_is_priced_on_its_effect_with_a_cap_per_member() -> None:
    prices = PriceSchedule()
    improved = dataclasses.replace(_verdict("pool"), decision=Decision.IMPROVED, effect_bp=300)
    assert pool_price(prices, improved, 4) == 300 * prices.reward_tinybar_per_bp
    huge = dataclasses.replace(improved, effect_bp=10_000)
    assert pool_price(prices, huge, 4) == 4 * prices.reward_cap_tinybar
    assert pool_price(prices, huge, 1) == prices.reward_cap_tinybar
    assert pool_price(prices, dataclasses.replace(improved, decision=Decision.NO_EFFECT), 4) == 0


def test_shares_follow_each_members_own_effect_and_precision() -> None:
    members = [_member("strong", 30.0), _member("weak", 10.0),
               _member("shaky", 10.0, precision=0.5), _member("practice", 10.0, paid=False)]
    shares = pool_shares(6_000_000, members)
    # the members' effects total 60 m: 30/60, 10/60, 10/60 x 0.5; practice is paid nothing
    assert shares == {"strong": 3_000_000, "weak": 1_000_000, "shaky": 500_000}
    assert sum(shares.values()) <= 6_000_000
    assert pool_shares(0, members) == {}


@pytest.fixture(scope="module")
def judge() -> Judge:
    net, _ = train_initial_model(0)
    return Judge(net, 0, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS),
                 config=CONFIG)


@pytest.fixture(scope="module")
def runs(judge: Judge) -> list[Contribution]:
    policy = Policy(judge.champion)
    rng = np.random.default_rng(5)
    return [play(policy, make_persona("expert", rng), ticks=300, track_name=name,
                 session_id=f"expert-{name}")
            for name in ("hairpin-valley", "oval")]


def test_a_pool_is_measured_as_its_members_among_many_against_pooled_placebos(
        judge: Judge, runs: list[Contribution]) -> None:
    members = [PoolMember(c, judge.judge(c), True) for c in runs]
    suite, seed, config = judge.suite, judge.seed, judge.config
    result = judge_pool(judge, members)
    v = result.verdict
    # the members' judge is left as it was: it judges a run as before
    assert (judge.suite, judge.seed, judge.config) == (suite, seed, config)
    assert judge.judge(runs[0]) == members[0].verdict
    assert v.contributor_id == POOL_CONTRIBUTOR and v.contribution_id == pool_id_of(
        0, [c.contribution_id for c in runs])
    assert v.labels == sum(m.verdict.labels for m in members)
    # judged as one contribution of the pool's size (two runs' share of every minibatch), on
    # hidden tracks and fine-tune seeds the members were not chosen on
    assert v.judge_config["verdict"]["finetune"]["extra_batch"] == 2 * CONFIG.finetune.extra_batch
    assert v.judge_config["verdict"]["rotation"] == CONFIG.rotation + POOL_ROTATION
    assert v.seed == judge.seed + POOL_SEED
    assert not set(v.suite_seeds) & set(judge.suite.track_seeds)
    assert v.label_params == {"pool_members": 2, "member_extra_batch": CONFIG.finetune.extra_batch,
                              "member_rotation": CONFIG.rotation, "member_seed": judge.seed,
                              "members": [c.contribution_id for c in runs]}
    # against a null of placebos pooled two at a time, on the pool's own suite
    pooled = judge._pooled_judge(2)
    assert pooled.null_diffs_m.shape == (CONFIG.null_runs, pooled.suite.num_runs)
    assert (v.null_low_m, v.null_high_m) == pytest.approx(pooled.null_interval(v.runs))
    assert v.price_tinybar == pool_price(judge.prices, v, 2)
    assert sum(result.shares.values()) <= v.price_tinybar
    # a judge rebuilt from scratch (a restarted service, verify-verdict) judges it the same
    fresh = Judge(judge.champion, 0, judge.base, config=CONFIG)
    assert judge_pool(fresh, members).verdict == v


def test_a_run_joins_a_pool_once(judge: Judge, runs: list[Contribution]) -> None:
    member = PoolMember(runs[0], judge.judge(runs[0]), True)
    with pytest.raises(ValueError, match="once"):
        judge_pool(judge, [member, member])
    with pytest.raises(ValueError, match="members"):
        judge_pool(judge, [])
