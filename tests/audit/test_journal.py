"""The audit journal on SQLite and PostgreSQL: idempotent entries, blocks, the settled cursor."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.merkle import leaf_hash, root
from crowdlearning.audit.records import GENESIS_ROOT, BlockMessage, canonical_json
from crowdlearning.audit.schema import audit_entries
from crowdlearning.ledger import Ledger
from crowdlearning.ledger.schema import settlement_transactions as stx
from tests.audit.factories import payout_network, request_payouts, settler, succeeded_ids


def _verdict(cid: str, reward: int = 0) -> dict:
    return {"kind": "verdict", "contribution": cid, "sha256": "ab" * 32,
            "reward_tinybar": reward, "penalty_tinybar": 0, "payout": None}


def test_appending_the_same_subject_again_changes_nothing(
        journal: AuditJournal, caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a journaled verdict
    first = journal.append("verdict", "run-1", _verdict("run-1", 5))
    # WHEN it is appended again (a retry), and once more with another record (a re-judging)
    again = journal.append("verdict", "run-1", _verdict("run-1", 5))
    with caplog.at_level(logging.WARNING):
        other = journal.append("verdict", "run-1", _verdict("run-1", 6))
    # THEN there is one entry, the first record is kept, and the conflict is logged
    assert first == again == other and first.reference == f"audit:{first.id}"
    assert first.record == canonical_json(_verdict("run-1", 5))
    assert "another record" in caplog.text
    assert journal.append_many([("verdict", "run-1", _verdict("run-1")),
                                ("verdict", "run-2", _verdict("run-2"))]) == 1
    assert journal.stats()["entries"] == 2
    assert journal.missing("verdict", ["run-1", "run-2", "run-3"]) == {"run-3"}


def test_blocks_seal_entries_in_order_under_chained_roots(journal: AuditJournal) -> None:
    # GIVEN ten journaled verdicts
    for n in range(10):
        journal.append("verdict", f"run-{n}", _verdict(f"run-{n}"))
    # WHEN blocks of at most four are sealed until none wait
    blocks = []
    while (block := journal.seal(4)) is not None:
        blocks.append(block)
    # THEN 4 + 4 + 2 entries, each block's root is the Merkle root of its entries' hashes, each
    # names the previous root, and its message says so
    assert [b.entry_count for b in blocks] == [4, 4, 2] and journal.pending() == (0, None)
    prev = GENESIS_ROOT
    for block in blocks:
        members = journal.entries_in(block.seq)
        assert root([leaf_hash(bytes.fromhex(e.sha256)) for e in members]).hex() == block.root
        assert block.prev_root == prev and block.state == "pending"
        assert BlockMessage.decode(block.message) == BlockMessage(
            block.seq, block.root, len(members), prev)
        prev = block.root
    # AND every entry has an inclusion proof to its block's root
    for n in range(10):
        proof = journal.proof_for(f"run-{n}")
        assert proof is not None and proof.proves() and not proof.published
        assert proof.proves(blocks[proof.block - 1].root)


def test_every_settled_transaction_is_journaled_past_the_scan_limit(
        ledger: Ledger, journal: AuditJournal) -> None:
    # GIVEN 30 settled transactions (the scan reads 7 per call), 4 more still awaiting their
    # receipts when first read
    network = payout_network(40)
    request_payouts(ledger, network, 0, 30)
    settle = settler(ledger, network)
    settle.run_once()
    request_payouts(ledger, network, 30, 4)
    network.hide_next_receipts = 1000  # "unknown" while their windows are open
    settle.run_once()
    network.hide_next_receipts = 0
    assert len(succeeded_ids(ledger)) == 30
    # WHEN the journal collects with no time to spare (one page of 7 per call), then in full
    added = [journal.collect_settled(budget_s=0) for _ in range(3)]
    added.append(journal.collect_settled())
    # THEN all 30 are journaled, a page per call until the rest at once, and nothing twice
    assert added == [7, 7, 7, 9] and journal.collect_settled() == 0
    # AND the 4 in flight are journaled once they succeed, by a journal opened afresh (restart)
    settle.run_once()
    restarted = AuditJournal(ledger.engine, scan_limit=7)
    assert restarted.collect_settled() == 4
    assert restarted.collect_settled() == 0 and restarted.sweep_settled() == 0
    ids = succeeded_ids(ledger)
    assert len(ids) == 34 and restarted.missing("payouts", ids) == set()
    # AND a record lists exactly what its transaction paid
    entry = restarted.entry("payouts", ids[0])
    assert entry is not None
    assert entry.record == canonical_json(restarted.settled_record(ids[0]))
    assert '"payouts":[["po' in entry.record


def test_the_sweep_finds_what_the_cursor_cannot_see(ledger: Ledger,
                                                    journal: AuditJournal) -> None:
    # GIVEN settled transactions journaled by the cursor, then one stored with an older time
    # (a clock that went backwards) behind the cursor
    network = payout_network(5)
    request_payouts(ledger, network, 0, 3)
    settler(ledger, network).run_once()
    assert journal.collect_settled() == 3
    request_payouts(ledger, network, 3, 1)
    settler(ledger, network).run_once()
    last = succeeded_ids(ledger)[-1]
    ledger.run(lambda c: c.execute(stx.update().where(stx.c.id == last).values(created_at_ns=1)))
    # WHEN the cursor goes on, and then the publisher's start-up sweep runs
    missed = journal.collect_settled()
    swept = journal.sweep_settled()
    # THEN the cursor missed it, the sweep journaled it
    assert (missed, swept) == (0, 1)
    assert journal.missing("payouts", succeeded_ids(ledger)) == set()


def test_two_sealers_never_put_an_entry_in_two_blocks(journal: AuditJournal) -> None:
    # GIVEN entries sealed by two journals on one database (two processes)
    other = AuditJournal(journal.engine)
    for n in range(9):
        journal.append("verdict", f"run-{n}", _verdict(f"run-{n}"))
    blocks = [journal.seal(2), other.seal(2), journal.seal(2), other.seal(5), journal.seal(5)]
    # THEN consecutive blocks, each entry in exactly one
    assert [b.seq for b in blocks if b] == [1, 2, 3, 4]
    with journal.engine.connect() as conn:
        rows = list(conn.execute(sa.select(audit_entries.c.block_seq)).scalars())
    assert sorted(rows) == [1, 1, 2, 2, 3, 3, 4, 4, 4]


def test_the_topic_is_stored_once(journal: AuditJournal) -> None:
    assert journal.topic() is None
    assert journal.claim_topic("0.0.7001") == "0.0.7001"
    assert AuditJournal(journal.engine).claim_topic("0.0.7002") == "0.0.7001"
    assert journal.topic() == "0.0.7001"
