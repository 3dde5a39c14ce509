"""``crowdlearning audit verify`` against the local Hedera network and its mirror view: real
payouts and a verdict, proven on the one audit topic; tampering is named, exit code 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hiero_sdk_python import PrivateKey

from crowdlearning.audit.cli import audit_main
from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.mirror import MirrorTopicReader
from crowdlearning.audit.publisher import AuditPublisher
from crowdlearning.audit.records import BlockMessage, record_sha256, verdict_record
from crowdlearning.audit.schema import audit_entries
from crowdlearning.cli import main
from crowdlearning.config import Settings
from crowdlearning.judging.stack import audit_journal
from crowdlearning.ledger import Ledger, make_engine
from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler
from tests.audit.factories import succeeded_ids
from tests.ledger.factories import funded_player, new_ledger

pytestmark = pytest.mark.timeout(120)
VERDICT_SHA = "5e" * 32


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


@pytest.fixture(scope="module")
def transport(network: LocalNetworkInfo) -> Iterator[SdkHederaTransport]:
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    yield transport
    transport.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, network: LocalNetworkInfo,
               transport: SdkHederaTransport) -> Iterator[tuple[Path, Ledger]]:
    """A data directory whose ledger settled 12 payouts on the local network and judged one
    verdict, all journaled and published in blocks of 5."""
    root = tmp_path_factory.mktemp("audited")
    engine = make_engine(f"sqlite:///{root / 'crowdlearning.db'}")
    ledger = new_ledger(engine)
    accounts = [transport.create_account(PrivateKey.generate_ed25519().public_key())
                for _ in range(12)]
    for n, account in enumerate(accounts):
        funded_player(ledger, f"p{n}", 1_000)
        ledger.request_payout(f"po{n}", f"player:p{n}:available", account, 100 + n)
    settler = Settler(ledger, transport)
    settler.run_until_settled(max_runs=10, pause_s=0.05)
    journal = AuditJournal(engine, scan_limit=5)
    record = verdict_record("run-7", VERDICT_SHA, 250, 0, "reward:run-7")
    journal.append("verdict", "run-7", record)
    (root / "verdicts.jsonl").write_text(json.dumps({
        "verdict": {"contribution_id": "run-7"}, "sha256": VERDICT_SHA, "reward_tinybar": 250,
        "penalty_tinybar": 0, "payout_id": "reward:run-7"}) + "\n")
    publisher = AuditPublisher(journal, transport, max_entries=5, poll_s=0.01)
    assert publisher.drain(timeout_s=30)  # its start-up sweep journals the settled ones
    yield root, ledger
    engine.dispose()


def _verify(root: Path, network: LocalNetworkInfo, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str]:
    code = main(["audit", "verify", *args, "--data-dir", str(root),
                 "--mirror-url", network.mirror_rest_url or ""])
    return code, capsys.readouterr().out


def test_every_settled_payout_and_the_verdict_are_proven_on_the_topic(
        deployment: tuple[Path, Ledger], network: LocalNetworkInfo,
        capsys: pytest.CaptureFixture[str]) -> None:
    root, ledger = deployment
    txs = succeeded_ids(ledger)
    assert len(txs) >= 2  # 12 payouts, at most 9 recipients per transaction
    for tx in txs:
        code, out = _verify(root, network, capsys, "--payout-transaction", tx)
        assert code == 0, out
        assert "VERIFIED" in out and "the record matches the ledger" in out
    code, out = _verify(root, network, capsys, "--contribution", "run-7")
    assert code == 0, out
    assert "the record matches the verdict log" in out
    assert "  ok        chain" in out
    # one message per block on the topic, in order, chained
    journal = AuditJournal(ledger.engine)
    topic = journal.topic()
    assert topic is not None
    reader = MirrorTopicReader(network.mirror_rest_url or "")
    messages = [BlockMessage.decode(m.message) for m in reader.messages(topic)]
    assert [m.block for m in messages] == list(range(1, journal.stats()["blocks"] + 1))
    assert journal.stats()["entries"] == len(txs) + 1


def test_a_tampered_record_is_named_and_fails(
        deployment: tuple[Path, Ledger], network: LocalNetworkInfo,
        capsys: pytest.CaptureFixture[str]) -> None:
    root, ledger = deployment
    entry = AuditJournal(ledger.engine).entry("verdict", "run-7")
    assert entry is not None
    forged = entry.record.replace('"reward_tinybar":250', '"reward_tinybar":99999')
    where = (audit_entries.c.kind == "verdict") & (audit_entries.c.subject == "run-7")
    try:
        # the record changed: its hash no longer matches
        ledger.run(lambda c: c.execute(audit_entries.update().where(where).values(record=forged)))
        code, out = _verify(root, network, capsys, "--contribution", "run-7")
        assert code == 1 and "MISMATCH  record" in out and "MISMATCH  books" in out
        assert "reward_tinybar: record 99999, the verdict log 250" in out
        # the record changed and its hash recomputed: the proof no longer reaches the root
        # sealed in the block, nor the root on the topic
        ledger.run(lambda c: c.execute(audit_entries.update().where(where).values(
            sha256=record_sha256(forged))))
        code, out = _verify(root, network, capsys, "--contribution", "run-7", "--json")
        report = json.loads(out)
        assert code == report["exit_code"] == 1
        failed = {c["name"] for c in report["checks"] if c["status"] == "MISMATCH"}
        assert failed == {"books", "block", "topic message"}
        topic = next(c for c in report["checks"] if c["name"] == "topic message")
        assert "root" in topic["detail"]
    finally:
        ledger.run(lambda c: c.execute(audit_entries.update().where(where).values(
            record=entry.record, sha256=entry.sha256)))
    assert _verify(root, network, capsys, "--contribution", "run-7")[0] == 0


def test_unknown_or_unpublished_entries_are_not_verified_yet(
        deployment: tuple[Path, Ledger], network: LocalNetworkInfo,
        capsys: pytest.CaptureFixture[str]) -> None:
    root, ledger = deployment
    code, out = _verify(root, network, capsys, "--contribution", "never-judged")
    assert code == 2 and "no audit entry" in out
    AuditJournal(ledger.engine).append("verdict", "run-8", verdict_record(
        "run-8", VERDICT_SHA, 0, 0, None))
    code, out = _verify(root, network, capsys, "--contribution", "run-8")
    assert code == 2 and "not sealed into a block yet" in out
    with ledger.engine.begin() as conn:
        conn.execute(sa.delete(audit_entries).where(audit_entries.c.subject == "run-8"))
    assert audit_main(["verify", "--contribution", "x", "--database-url",
                       f"sqlite:///{root / 'absent.db'}"]) == 2


def test_the_server_and_the_judge_use_one_topic(
        tmp_path: Path, network: LocalNetworkInfo) -> None:
    # GIVEN two processes' transports (a game server's and its judge's) on one ledger database
    # with no topic configured
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger = new_ledger(engine)
    settings = Settings(environment="test", data_dir=tmp_path)
    server, judge = (SdkHederaTransport.for_local_network(network, request_timeout_s=10)
                     for _ in range(2))
    try:
        journals = [audit_journal(settings, ledger, t) for t in (server, judge)]
        # WHEN the server publishes a faucet message and the judge a block
        server.publish_audit(b'{"kind":"dev-deposit"}')
        journals[1].append("verdict", "run-1", verdict_record("run-1", VERDICT_SHA, 0, 0, None))
        assert AuditPublisher(journals[1], judge, poll_s=0.01).drain(timeout_s=20)
        judge.publish_audit(b'{"kind":"dev-deposit"}')
        # THEN both went to the one topic stored in the database
        topic = journals[0].topic()
        assert topic is not None and server.audit_topic_id == judge.audit_topic_id == topic
        reader = MirrorTopicReader(network.mirror_rest_url or "")
        assert len(list(reader.messages(topic))) == 3
    finally:
        server.close()
        judge.close()
        engine.dispose()


def test_resending_a_stored_block_message_posts_it_once(
        transport: SdkHederaTransport, network: LocalNetworkInfo) -> None:
    topic = transport.create_audit_topic()
    prepared = transport.prepare_audit_message(topic, b'{"block":1}')
    first, again = transport.submit(prepared), transport.submit(prepared)
    assert first.accepted and again.accepted and again.status == "DUPLICATE_TRANSACTION"
    receipt = transport.audit_message_receipt(prepared.transaction_id)
    assert receipt is not None and (receipt.status, receipt.sequence_number) == ("SUCCESS", 1)
    reader = MirrorTopicReader(network.mirror_rest_url or "")
    assert [m.message for m in reader.messages(topic)] == [b'{"block":1}']
