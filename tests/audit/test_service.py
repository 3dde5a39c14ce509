"""The verdict service journals verdicts and settlements for the audit trail; a stuck
publisher never holds up a verdict or a payout, and a restart journals what was missed."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.publisher import AuditPublisher
from crowdlearning.audit.records import canonical_json, verdict_record
from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.judge_pool import InlineJudgePool, JudgeSpec
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.suite import EvalSuite
from crowdlearning.evaluation.verdict import Decision, Verdict, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.learning.train import TrainConfig
from crowdlearning.ledger import Ledger, make_engine
from crowdlearning.platform.service import VerdictService
from crowdlearning.sim.track_gen import named_track
from tests.audit.factories import payout_network, request_payouts, settler, succeeded_ids
from tests.audit.fakes import MemoryAuditNetwork
from tests.learning.factories import play
from tests.ledger.factories import new_ledger

TRACK = named_track("hairpin-valley")


class RewardPool(InlineJudgePool):
    """Every contribution judged *improved* for a fixed price, without computing it: what is
    under test is the audit trail, not the verdict."""

    def judge(self, spec: JudgeSpec, contributions: Sequence[Contribution]) -> list[Verdict]:
        return [dataclasses.replace(self.rejected(spec, c, ""), decision=Decision.IMPROVED,
                                    price_tinybar=500) for c in contributions]


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> DaggerTrainer:
    root = tmp_path_factory.mktemp("audited-service")
    t = DaggerTrainer(ModelRegistry(root / "m"), AggregatedDataset(root / "d"),
                      train=TrainConfig(updates=20))
    net, training = train_initial_model(0)
    t.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS), training)
    return t


@pytest.fixture(scope="module")
def runs(trainer: DaggerTrainer) -> list[Contribution]:
    return [play(trainer.policy(), make_persona("noisy-0.3", np.random.default_rng(n)),
                 ticks=60, track_name="hairpin-valley", session_id=f"audited-{n}")
            for n in range(2)]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return new_ledger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))


def _service(trainer: DaggerTrainer, ledger: Ledger, log: Path,
             audit: AuditJournal | None) -> VerdictService:
    network = payout_network(8)
    service = VerdictService(
        trainer, Screener({TRACK.digest: TRACK}.__getitem__),
        verdict_config=VerdictConfig(null_runs=4, null_ticks=300, suite_size=2,
                                     tracks_per_look=2),
        pool=RewardPool(), champion_suite=EvalSuite.hidden(2), ledger=ledger,
        settler=settler(ledger, network), transport=network, verdict_log=log, audit=audit,
        hedera_account_of=lambda player: "0.0.1007")
    service.judge_spec()  # measured once, before anything is timed
    return service


def test_a_stuck_publisher_holds_up_no_verdict_and_no_settlement(
        trainer: DaggerTrainer, runs: list[Contribution], ledger: Ledger,
        tmp_path: Path) -> None:
    # GIVEN a service whose audit publisher is stuck sending to a network that never answers
    journal = AuditJournal(ledger.engine, scan_limit=3)
    service = _service(trainer, ledger, tmp_path / "verdicts.jsonl", journal)
    network = MemoryAuditNetwork()
    network.gate = threading.Event()
    journal.append("verdict", "earlier", verdict_record("earlier", "00" * 32, 0, 0, None))
    publisher = AuditPublisher(journal, network, max_entries=1, poll_s=0.01).start()
    try:
        deadline = time.monotonic() + 10
        while journal.stats()["blocks"] == 0:  # the publisher is now inside the hung send
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # WHEN a verdict comes, and payouts are settled
        started = time.perf_counter()
        outcome = service.submit(runs[0], paid=False)
        judged_s = time.perf_counter() - started
        ledger_network = service.settler.transport
        request_payouts(ledger, ledger_network, 0, 5)
        started = time.perf_counter()
        service.settle()
        settled_s = time.perf_counter() - started
        # THEN both are done at once, each journaled, none published yet
        assert judged_s < 2.0 and settled_s < 2.0
        entry = journal.entry("verdict", runs[0].contribution_id)
        assert entry is not None and outcome.audit_transaction_id == entry.reference
        assert entry.record == canonical_json(verdict_record(
            runs[0].contribution_id, outcome.verdict.sha256, 0, 0, None))
        assert journal.missing("payouts", succeeded_ids(ledger)) == set()
        assert len(succeeded_ids(ledger)) == 5 and network.all_messages() == []
    finally:
        network.gate.set()
        publisher.stop()
    # AND once the network answers, every one of them is proven on the topic
    assert AuditPublisher(journal, network, max_entries=4, poll_s=0.01).drain(timeout_s=10)
    for subject in [runs[0].contribution_id, *succeeded_ids(ledger)]:
        proof = journal.proof_for(subject)
        assert proof is not None and proof.published and proof.proves()
    assert len(network.all_messages()) == journal.stats()["blocks"]


def test_a_restart_journals_verdicts_that_were_never_journaled(
        trainer: DaggerTrainer, runs: list[Contribution], ledger: Ledger,
        tmp_path: Path) -> None:
    # GIVEN a verdict booked by a service without an audit journal (as before this journal)
    log = tmp_path / "verdicts.jsonl"
    before = _service(trainer, ledger, log, None).submit(runs[1], paid=False)
    assert before.audit_transaction_id is None
    # WHEN the service starts again with its journal
    journal = AuditJournal(ledger.engine)
    restarted = _service(trainer, ledger, log, journal)
    # THEN the verdict is journaled from the verdict log, and a retry is answered as before
    entry = journal.entry("verdict", runs[1].contribution_id)
    assert entry is not None
    assert entry.record == canonical_json(verdict_record(
        runs[1].contribution_id, before.verdict.sha256, 0, 0, None))
    assert restarted.submit(runs[1], paid=False).verdict == before.verdict
    assert journal.stats()["entries"] == 1
