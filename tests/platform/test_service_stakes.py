"""The verdict service with money: the hold a paid run opened at its start, and practice runs
that never make a paid run a duplicate."""

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
from crowdlearning.ledger import Ledger, make_engine
from crowdlearning.platform.service import VerdictService
from crowdlearning.sim.track_gen import named_track
from tests.learning.factories import play
from tests.ledger.factories import HOLD, STAKE_MINIMUM, funded_player, new_ledger
from tests.platform.conftest import started_trainer

TRACK = named_track("hairpin-valley")
PLAYER = "player-1"  # who ``tests.learning.factories.play`` plays as


class WorsePool(InlineJudgePool):
    """Every contribution judged *worse* at a price far beyond any hold, without computing it:
    what is under test is where the penalty comes from, not the verdict."""

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        return [dataclasses.replace(self.rejected(spec, c, ""), decision=Decision.WORSE,
                                    price_tinybar=-100 * HOLD) for c in contributions]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> DaggerTrainer:
    return started_trainer(tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="module")
def run(trainer: DaggerTrainer) -> Contribution:
    return play(trainer.policy(), make_persona("noisy-0.3", np.random.default_rng(0)),
                ticks=120, track_name="hairpin-valley", session_id="honest")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = new_ledger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    funded_player(ledger, PLAYER, 0, stake=2 * STAKE_MINIMUM)
    return ledger


@pytest.fixture
def service(trainer: DaggerTrainer, ledger: Ledger) -> VerdictService:
    return VerdictService(trainer, Screener({TRACK.digest: TRACK}.__getitem__),
                          verdict_config=VerdictConfig(null_runs=4, null_ticks=300,
                                                       suite_size=2, tracks_per_look=2),
                          pool=WorsePool(), champion_suite=EvalSuite.hidden(2), ledger=ledger)


def test_practice_first_does_not_make_the_same_paid_run_a_duplicate(
        service: VerdictService, run: Contribution) -> None:
    # GIVEN a practice bot that submitted exactly the data of an honest paid run first
    bot = dataclasses.replace(run, contribution_id="bot-practice", contributor_id="bot")
    # WHEN both come in one batch (practice first), and then practice copies come again
    practice, paid = service.submit_many([(bot, False), (run, None)])
    again = service.submit(dataclasses.replace(run, contribution_id="bot-again",
                                               contributor_id="bot"), paid=False)
    copy = service.submit(dataclasses.replace(run, contribution_id="paid-copy"))
    # THEN the paid run is judged (not a duplicate) and paid from its hold
    assert practice.verdict.decision is Decision.WORSE and not practice.paid_mode
    assert paid.verdict.decision is Decision.WORSE and paid.paid_mode
    assert paid.penalty_tinybar == HOLD
    # AND the screen still checks practice: a copy of paid data is refused, as is a paid copy
    assert again.verdict.decision is Decision.REJECTED and "duplicate" in again.verdict.reason
    assert copy.verdict.decision is Decision.REJECTED and "duplicate" in copy.verdict.reason
    assert copy.penalty_tinybar == 0  # a refused paid contribution costs nothing


class ImprovedPool(InlineJudgePool):
    """Every contribution judged *improved* (a small reward), without computing it."""

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        return [dataclasses.replace(self.rejected(spec, c, ""), decision=Decision.IMPROVED,
                                    price_tinybar=1_000) for c in contributions]


def test_an_improving_practice_run_never_makes_a_paid_run_a_near_duplicate(
        trainer: DaggerTrainer, ledger: Ledger, run: Contribution) -> None:
    service = VerdictService(trainer, Screener({TRACK.digest: TRACK}.__getitem__),
                             verdict_config=VerdictConfig(null_runs=4, null_ticks=300,
                                                          suite_size=2, tracks_per_look=2),
                             pool=ImprovedPool(), champion_suite=EvalSuite.hidden(2),
                             ledger=ledger)
    # GIVEN a practice run accepted as improving this round (it will be merged, unpaid)
    practice = service.submit(dataclasses.replace(run, contribution_id="practice-first",
                                                  contributor_id="bot"), paid=False)
    assert practice.verdict.decision is Decision.IMPROVED and not practice.paid_mode
    # WHEN a paid run carrying the same states and labels comes next
    paid = service.submit(run)
    # THEN it is judged, in paid mode: coverage counts paid runs only (nothing was paid yet)
    assert paid.verdict.decision is Decision.IMPROVED and paid.paid_mode
    # AND once paid, the same information from anyone else is a near duplicate
    again = service.submit(dataclasses.replace(run, contribution_id="late-copy",
                                               contributor_id="bot"), paid=False)
    assert again.verdict.decision is Decision.REJECTED


def test_a_run_held_at_its_start_stays_paid_when_the_free_stake_is_gone(
        service: VerdictService, ledger: Ledger, run: Contribution) -> None:
    # GIVEN a paid run whose hold the game server opened at its start, and then every
    # unheld tinybar of stake unlocked during the run
    ledger.hold_for_contribution(PLAYER, run.contribution_id)
    ledger.unlock_stake("unstake-all", PLAYER, 2 * STAKE_MINIMUM - HOLD)
    assert not ledger.is_paid_mode(PLAYER)
    # WHEN the run is submitted and judged worse
    outcome = service.submit(run)
    # THEN it is a paid run all the same, and the penalty is taken from its hold
    assert outcome.paid_mode and outcome.penalty_tinybar == HOLD
    balances = ledger.player_balances(PLAYER)
    assert (balances.stake_tinybar, balances.held_tinybar) == (0, 0)
    assert ledger.balance("treasury") == HOLD
    ledger.check_books()


def test_a_run_whose_hold_was_voided_is_judged_as_practice(
        service: VerdictService, ledger: Ledger, run: Contribution) -> None:
    ledger.hold_for_contribution(PLAYER, run.contribution_id)
    ledger.void_hold(run.contribution_id)  # e.g. given up on before its verdict came
    outcome = service.submit(run)
    assert not outcome.paid_mode and outcome.penalty_tinybar == 0
    assert ledger.player_balances(PLAYER).stake_tinybar == 2 * STAKE_MINIMUM
    ledger.check_books()
