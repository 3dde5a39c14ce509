"""The verdict service's round pool: kept across a restart, paid once, merged when it improved."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.judge_pool import InlineJudgePool, JudgeSpec
from crowdlearning.evaluation.pooled import PoolMember, PoolResult, pool_id_of, pool_shares
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.suite import EvalSuite
from crowdlearning.evaluation.verdict import Decision, Judge, Verdict, VerdictConfig
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.ledger import Ledger, make_engine, player_account
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.platform.round_state import RoundState
from crowdlearning.platform.service import VerdictService
from crowdlearning.sim.track_gen import named_track
from tests.ledger.factories import STAKE_MINIMUM, funded_player, new_ledger

TRACKS = {t.digest: t for t in (named_track("hairpin-valley"), named_track("oval"))}
POOL_PRICE = 3_000_000  # [tinybar]
MEANS = {"alice": 20.0, "bob": 10.0, "carol": -5.0}  # each run's own measured effect [m]


class NoEffectPool(InlineJudgePool):
    """Every run judged "no effect" with the mean effect ``MEANS`` gives its player, without
    computing it: under test is what the service does with such runs, not the verdict."""

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        return [dataclasses.replace(self.rejected(spec, c, ""), decision=Decision.NO_EFFECT,
                                    runs=8, mean_diff_m=MEANS[c.contributor_id])
                for c in contributions]


def improved_pool(judge: Judge, members: Sequence[PoolMember]) -> PoolResult:
    """A pool judged improved at ``POOL_PRICE``, shared as ``evaluation.pooled`` shares."""
    ids = [m.contribution.contribution_id for m in members]
    verdict = dataclasses.replace(
        judge.rejected(members[0].contribution, ""), contribution_id=pool_id_of(
            judge.champion_version, ids), contributor_id="pool", decision=Decision.IMPROVED,
        price_tinybar=POOL_PRICE)
    return PoolResult(verdict, tuple(ids), pool_shares(POOL_PRICE, members))


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = new_ledger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    ledger.deposit("operator-funding", "treasury", 10 * POOL_PRICE)
    ledger.fund_reward_budget("reward-budget", 10 * POOL_PRICE)
    for player in MEANS:
        funded_player(ledger, player, 0, stake=2 * STAKE_MINIMUM)
    return ledger


def _runs(trainer: DaggerTrainer) -> list[Contribution]:
    from tests.learning.factories import play

    rng = np.random.default_rng(1)
    out = []
    for player, track in zip(MEANS, ("hairpin-valley", "oval", "hairpin-valley"), strict=True):
        run = play(trainer.policy(), make_persona("noisy-0.1", rng), ticks=120,
                   track_name=track, session_id=player)
        out.append(dataclasses.replace(run, contribution_id=f"run-{player}",
                                       contributor_id=player))
    return out


def _service(trainer: DaggerTrainer, ledger: Ledger, root: Path, *, pooled: bool = True
             ) -> VerdictService:
    return VerdictService(
        trainer, Screener(TRACKS.__getitem__),
        verdict_config=VerdictConfig(null_runs=4, null_ticks=300, suite_size=2,
                                     tracks_per_look=2),
        pool=NoEffectPool(), champion_suite=EvalSuite.hidden(2), ledger=ledger,
        verdict_log=root / "verdicts.jsonl", state=RoundState(root / "round"),
        pooled_verdict=pooled, judge_pooled=improved_pool)


def _available(ledger: Ledger, player: str) -> int:
    return ledger.balance(player_account(player, AccountKind.AVAILABLE))


def test_a_pool_that_improved_the_model_is_paid_by_effect_and_merged(
        trainer: DaggerTrainer, ledger: Ledger, tmp_path: Path) -> None:
    service = _service(trainer, ledger, tmp_path)
    before = {p: _available(ledger, p) for p in MEANS}
    # GIVEN three paid runs judged "no effect", two of them pointing the right way
    outcomes = service.submit_many([(c, None) for c in _runs(trainer)])
    assert all(o.verdict.decision is Decision.NO_EFFECT and o.reward_tinybar == 0
               for o in outcomes)
    assert [c.contribution_id for c in service.state.pool_candidates()] == [  # type: ignore[union-attr]
        "run-alice", "run-bob"]
    # WHEN the round closes and their pool is judged improved
    result = service.close_round()
    # THEN the two are paid by their own effects (20 m and 10 m of 30) and merged; the run
    # that measured harm is neither
    assert result.pool is not None and result.pool["decision"] == "improved"
    assert result.pool["shares"] == {"run-alice": 2_000_000, "run-bob": 1_000_000}
    assert _available(ledger, "alice") - before["alice"] == 2_000_000
    assert _available(ledger, "bob") - before["bob"] == 1_000_000
    assert _available(ledger, "carol") == before["carol"]
    assert set(result.merged) == {"run-alice", "run-bob"}
    assert result.candidate_version is not None
    assert service.state.pool_candidates() == []  # type: ignore[union-attr]
    assert service.state.pending() == []  # type: ignore[union-attr]
    # AND the books balance, and the pool's record is kept beside the verdicts
    ledger.check_books()  # raises on any unbalanced transfer or account
    [line] = (tmp_path / "pools.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["members"] == ["run-alice", "run-bob"]
    assert record["paid_tinybar"] == result.pool["shares"]
    assert record["verdict"]["contribution_id"] == result.pool["pool_id"]


def test_a_runs_pool_share_is_booked_once_whatever_pool_a_retry_judges(
        trainer: DaggerTrainer, ledger: Ledger, tmp_path: Path) -> None:
    service = _service(trainer, ledger, tmp_path)
    before = _available(ledger, "alice")
    assert service._pay_pool({"run-alice": 2_000_000}, {"run-alice": "alice"}) == {
        "run-alice": 2_000_000}
    # the same share again books nothing more; another amount for the same run is refused
    assert service._pay_pool({"run-alice": 2_000_000}, {"run-alice": "alice"}) == {
        "run-alice": 2_000_000}
    assert service._pay_pool({"run-alice": 7}, {"run-alice": "alice"}) == {}
    assert _available(ledger, "alice") - before == 2_000_000
    ledger.check_books()


class CrashError(Exception):
    pass


def test_a_close_stopped_while_paying_its_pool_pays_and_merges_it_once_at_the_next_start(
        trainer: DaggerTrainer, ledger: Ledger, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = _service(trainer, ledger, tmp_path)
    before = {p: _available(ledger, p) for p in MEANS}
    service.submit_many([(c, None) for c in _runs(trainer)])
    # GIVEN a close that decided an improved pool and stopped before paying any of it
    def stop(shares: dict, players: dict) -> dict:
        raise CrashError
    monkeypatch.setattr(service, "_pay_pool", stop)
    with pytest.raises(CrashError):
        service.close_round()
    assert _available(ledger, "alice") == before["alice"]
    # WHEN the service starts again
    restarted = _service(trainer, ledger, tmp_path)
    # THEN the decided shares are paid (once) and the members wait for the merge as accepted
    # runs, not as pool candidates to be judged again
    assert _available(ledger, "alice") - before["alice"] == 2_000_000
    assert _available(ledger, "bob") - before["bob"] == 1_000_000
    assert restarted.state.pool_decision() is None  # type: ignore[union-attr]
    assert restarted._pool_candidates == []
    assert {c.contribution_id for c in restarted._accepted} == {"run-alice", "run-bob"}
    result = restarted.close_round()
    assert set(result.merged) == {"run-alice", "run-bob"} and result.pool is None
    # AND a third start finds nothing left to pay or merge
    again = _service(trainer, ledger, tmp_path)
    assert again._accepted == [] and again._pool_candidates == []
    assert _available(ledger, "alice") - before["alice"] == 2_000_000
    ledger.check_books()


def test_a_close_stopped_before_its_members_were_kept_merges_and_pays_them_once_at_the_next_start(
        trainer: DaggerTrainer, ledger: Ledger, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = _service(trainer, ledger, tmp_path)
    before = {p: _available(ledger, p) for p in MEANS}
    service.submit_many([(c, None) for c in _runs(trainer)])
    state = service.state
    assert state is not None
    # GIVEN a close that kept its pool's decision and stopped before keeping its members
    def stop(contribution: Contribution) -> None:
        raise CrashError
    monkeypatch.setattr(state, "add_pending", stop)
    with pytest.raises(CrashError):
        service.close_round()
    assert state.pool_decision() is not None and state.pending() == []
    # WHEN the service starts again
    restarted = _service(trainer, ledger, tmp_path)
    rstate = restarted.state
    assert rstate is not None
    # THEN each member is kept once for the merge, no candidate of that round is left (carol's
    # run did not join and its round is over), and the shares are paid once
    assert sorted(c.contribution_id for c in rstate.pending()) == ["run-alice", "run-bob"]
    assert len(list((tmp_path / "round" / "pending").glob("*.npz"))) == 2
    assert rstate.pool_candidates() == [] and restarted._pool_candidates == []
    assert _available(ledger, "alice") - before["alice"] == 2_000_000
    result = restarted.close_round()
    assert set(result.merged) == {"run-alice", "run-bob"}
    assert _available(ledger, "alice") - before["alice"] == 2_000_000
    ledger.check_books()


def test_a_close_whose_payment_failed_is_finished_by_the_next_close_in_the_same_process(
        trainer: DaggerTrainer, ledger: Ledger, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = _service(trainer, ledger, tmp_path)
    before = _available(ledger, "alice")
    service.submit_many([(c, None) for c in _runs(trainer)])
    # GIVEN a close whose payment failed with an error the service does not expect
    def fail(shares: dict, players: dict) -> dict:
        raise CrashError
    monkeypatch.setattr(service, "_pay_pool", fail)
    with pytest.raises(CrashError):
        service.close_round()
    # THEN the round's runs wait for the next close, which pays the decided shares first
    assert {c.contribution_id for c in service._accepted} == {"run-alice", "run-bob"}
    monkeypatch.undo()
    result = service.close_round()
    assert _available(ledger, "alice") - before == 2_000_000
    assert set(result.merged) == {"run-alice", "run-bob"}
    assert service.state.pool_decision() is None  # type: ignore[union-attr]
    ledger.check_books()


def test_a_run_is_a_pool_candidate_once_and_a_near_replay_does_not_join(
        trainer: DaggerTrainer, ledger: Ledger, tmp_path: Path) -> None:
    service = _service(trainer, ledger, tmp_path)
    runs = _runs(trainer)
    service.submit_many([(c, None) for c in runs])
    state = service.state
    assert state is not None
    state.add_pool_candidate(runs[0])  # kept again (a retry after a crash): still one file
    assert [c.contribution_id for c in RoundState(tmp_path / "round").pool_candidates()] == [
        "run-alice", "run-bob"]
    # a replay of alice's data under another id, judged like hers, does not join her pool
    replay = dataclasses.replace(service._pool_candidates[0], contribution_id="run-replay",
                                 contributor_id="dave")
    service._pool_candidates.append(replay)
    service._decided["run-replay"] = service._decided["run-alice"]
    judged: list[list[str]] = []

    def record(judge: Judge, members: Sequence[PoolMember]) -> PoolResult:
        judged.append([m.contribution.contribution_id for m in members])
        return improved_pool(judge, members)
    service.judge_pooled = record
    service.close_round()
    assert judged == [["run-alice", "run-bob"]]


def test_pool_candidates_survive_a_restart_and_pooling_off_keeps_none(
        trainer: DaggerTrainer, ledger: Ledger, tmp_path: Path) -> None:
    service = _service(trainer, ledger, tmp_path)
    service.submit_many([(c, None) for c in _runs(trainer)])
    restarted = _service(trainer, ledger, tmp_path)
    assert [c.contribution_id for c in restarted._pool_candidates] == ["run-alice", "run-bob"]
    result = restarted.close_round()
    assert result.pool is not None and set(result.merged) == {"run-alice", "run-bob"}
    # with pooling off nothing is kept and no pool is judged
    off = _service(trainer, ledger, tmp_path / "off", pooled=False)
    outcomes = off.submit_many([(dataclasses.replace(c, contribution_id=f"{c.contribution_id}-2"),
                                 None) for c in _runs(trainer)])
    assert [o.verdict.decision for o in outcomes] == [Decision.NO_EFFECT] * 3
    assert off.state.pool_candidates() == []  # type: ignore[union-attr]
    result = off.close_round()
    assert result.pool is None and result.merged == []


class ElsewherePool:
    """A judge pool that is not this process's (as a Ray pool): verdicts as ``NoEffectPool``."""

    def __init__(self) -> None:
        self.inner = NoEffectPool()

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        return self.inner.judge(spec, contributions)

    def rejected(self, spec: JudgeSpec, contribution: Contribution, reason: str) -> Verdict:
        return self.inner.rejected(spec, contribution, reason)

    def close(self) -> None:
        self.inner.close()


def test_with_a_pool_judging_elsewhere_the_pools_judge_is_built_here_once_per_champion(
        trainer: DaggerTrainer, ledger: Ledger, tmp_path: Path) -> None:
    service = _service(trainer, ledger, tmp_path)
    service.pool = ElsewherePool()
    first = service._pool_judge()
    assert service._pool_judge() is first  # kept: its pooled judges (nulls) with it
    assert first.champion_version == trainer.champion[1].version
