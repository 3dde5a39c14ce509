"""A restart forgets nothing: the round's improved contributions and the screen's memory."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.judge_pool import InlineJudgePool, JudgeSpec
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.suite import EvalSuite
from crowdlearning.evaluation.verdict import Decision, Verdict, VerdictConfig
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.finetune import FinetuneConfig
from crowdlearning.ledger import make_engine
from crowdlearning.platform.round_state import RoundState
from crowdlearning.platform.service import VerdictService
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play
from tests.ledger.factories import STAKE_MINIMUM, funded_player, new_ledger

TRACK = named_track("hairpin-valley")
CONFIG = VerdictConfig(null_runs=4, null_ticks=300,
                       suite_size=2, tracks_per_look=2, starts_per_track=1, window_ticks=100,
                       finetune=FinetuneConfig(updates=20))


class ImprovingPool(InlineJudgePool):
    """Real verdicts, every one declared *improved*: the persistence under test does not
    depend on what the judge decides."""

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        return [dataclasses.replace(v, decision=Decision.IMPROVED)
                for v in super().judge(spec, contributions)]


def service(trainer: DaggerTrainer, root: Path) -> VerdictService:
    """A (re)started platform on the same disk."""
    return VerdictService(trainer, Screener({TRACK.digest: TRACK}.__getitem__),
                          verdict_config=CONFIG, pool=ImprovingPool(),
                          champion_suite=EvalSuite.hidden(2), state=RoundState(root / "round"))


def paid_service(trainer: DaggerTrainer, root: Path) -> VerdictService:
    """The platform with a ledger, "player-1" staked: paid contributions (the screen learns
    only those) hold stake at submission."""
    ledger = new_ledger(make_engine(f"sqlite:///{root / 'ledger.db'}"))
    if ledger.get_transfer("dep-player-1") is None:
        funded_player(ledger, "player-1", 0, stake=10 * STAKE_MINIMUM)
    return dataclasses.replace(service(trainer, root), ledger=ledger)


def runs(trainer: DaggerTrainer, names: Sequence[str]) -> list[Contribution]:
    rng = np.random.default_rng(0)
    return [play(trainer.policy(), make_persona("noisy-0.3", rng), ticks=120,
                 track_name="hairpin-valley", session_id=n) for n in names]


def test_a_restart_keeps_the_round_and_the_screens_memory(trainer: DaggerTrainer,
                                                          tmp_path: Path) -> None:
    # GIVEN two improved paid contributions judged, then a restart before the round closes
    first, second = runs(trainer, ["a", "b"])
    before = paid_service(trainer, tmp_path)
    assert all(o.verdict.decision is Decision.IMPROVED and o.paid_mode
               for o in before.submit_many([(first, None), (second, None)]))
    after = paid_service(trainer, tmp_path)
    # WHEN the same data comes again, under another name, and the round closes
    again = after.submit(dataclasses.replace(first, contribution_id="again"))
    result = after.close_round()
    # THEN the copy is refused, and the round merges exactly the two judged before the restart
    assert again.verdict.decision is Decision.REJECTED and "duplicate" in again.verdict.reason
    assert result.merged == [first.contribution_id, second.contribution_id]
    assert set(trainer.registry.meta(result.candidate_version).contributions) == {
        first.contribution_id, second.contribution_id}
    # AND once merged, nothing is pending for the next start
    assert RoundState(tmp_path / "round").pending() == []
    assert service(trainer, tmp_path).close_round().merged == []


def test_a_crash_between_merge_and_cleanup_does_not_merge_twice(trainer: DaggerTrainer,
                                                              tmp_path: Path) -> None:
    # GIVEN an improved contribution pending, merged and registered, then a crash before the
    # pending record is removed
    [c] = runs(trainer, ["c"])
    service(trainer, tmp_path).submit(c, paid=False)
    trainer.merge([c], promote=False)
    # WHEN the platform restarts and closes a round
    restarted = service(trainer, tmp_path)
    # THEN the contribution is not merged again (the dataset would refuse it) nor pending
    assert restarted.close_round().merged == []
    assert RoundState(tmp_path / "round").pending() == []


def test_a_torn_screen_record_is_skipped(tmp_path: Path) -> None:
    state = RoundState(tmp_path)
    state.add_screened("d1", {1, 2, 2**64 - 1})
    with (tmp_path / "screened.jsonl").open("a") as fh:
        fh.write('{"digest": "d2", "fingerpr')  # the crash cut the line
    assert list(RoundState(tmp_path).screened()) == [("d1", {1, 2, 2**64 - 1})]


class FailingOncePool(ImprovingPool):
    """Fails its first batch (a worker died), then judges."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a judge worker died")
        return super().judge(spec, contributions)


def test_a_failed_judging_leaves_nothing_behind_and_the_retry_is_judged(
        trainer: DaggerTrainer, tmp_path: Path) -> None:
    [c] = runs(trainer, ["flaky"])
    platform = service(trainer, tmp_path)
    platform.pool = FailingOncePool()
    with pytest.raises(RuntimeError, match="died"):
        platform.submit(c, paid=False)
    outcome = platform.submit(c, paid=False)
    assert outcome.verdict.decision is Decision.IMPROVED  # judged, not "duplicate"
    assert service(trainer, tmp_path).close_round().merged == [c.contribution_id]


def test_a_retry_gets_the_recorded_outcome_also_after_a_restart(trainer: DaggerTrainer,
                                                                tmp_path: Path) -> None:
    [c] = runs(trainer, ["twice"])
    log = tmp_path / "verdicts.jsonl"
    first = dataclasses.replace(service(trainer, tmp_path), verdict_log=log)
    outcome = first.submit(c, paid=False)
    again = first.submit(c, paid=False)
    restarted = dataclasses.replace(service(trainer, tmp_path), verdict_log=log)
    after_restart = restarted.submit(c, paid=False)
    assert again is outcome
    assert after_restart.verdict == outcome.verdict and after_restart.paid_mode is False
    assert len(log.read_text().splitlines()) == 1  # decided (and logged) once
