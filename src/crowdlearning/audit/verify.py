"""Checking one verdict or settled transaction against the audit topic.

``verify_entry`` goes from the fact to the public log and names each step's outcome:

1. **entry**: the journal has one for it;
2. **record**: the record's SHA-256 is the entry's hash;
3. **books**: the record says what the books say now (a settled transaction: its payouts in
   the ledger; a verdict: its line in the verdict log, when one is at hand);
4. **block**: the entry is sealed into a block, and the entries of that block lead to the root
   the journal sealed (the inclusion proof, recomputed from the record);
5. **topic message**: the block's message, read from the topic on a mirror node, carries that
   block number, that root, that entry count and the previous block's root;
6. **chain**: the previous block's message on the topic carries the previous root.

A check is ``ok``, ``MISMATCH`` (something differs: named), ``pending`` (cannot be told yet: not
sealed or published yet, not on the mirror yet) or ``skipped`` (nothing to compare with).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crowdlearning.audit.journal import AuditJournal, Entry
from crowdlearning.audit.mirror import TopicReader
from crowdlearning.audit.proofs import InclusionProof
from crowdlearning.audit.records import (
    GENESIS_ROOT,
    BlockMessage,
    canonical_json,
    record_sha256,
    verdict_record,
)

__all__ = ["Check", "VerifyReport", "verdict_record_from_log", "verify_entry"]

OK, MISMATCH, PENDING, SKIPPED = "ok", "MISMATCH", "pending", "skipped"


@dataclass(frozen=True)
class Check:
    """One step of a verification."""

    name: str
    status: str  # ok | MISMATCH | pending | skipped
    detail: str


@dataclass
class VerifyReport:
    """All the checks made for one fact."""

    kind: str
    subject: str
    checks: list[Check] = field(default_factory=list)
    proof: InclusionProof | None = None

    def add(self, name: str, status: str, detail: str) -> str:
        self.checks.append(Check(name, status, detail))
        return status

    @property
    def verified(self) -> bool:
        """Every check passed or had nothing to compare with, and the topic was reached."""
        return self.exit_code == 0

    @property
    def exit_code(self) -> int:
        """0 verified, 1 something differs, 2 cannot be told yet (unknown, not published)."""
        statuses = {c.status for c in self.checks}
        if MISMATCH in statuses:
            return 1
        if PENDING in statuses or not any(c.name == "topic message" and c.status == OK
                                          for c in self.checks):
            return 2
        return 0

    def lines(self) -> list[str]:
        """What was checked, one line per check, and the conclusion."""
        what = "verdict of contribution" if self.kind == "verdict" else "settled transaction"
        out = [f"audit verify: {what} {self.subject}"]
        out += [f"  {c.status:<9} {c.name:<14} {c.detail}" for c in self.checks]
        verdicts = {0: "VERIFIED: it is in the audit trail published on the topic",
                    1: "MISMATCH: " + "; ".join(c.name for c in self.checks
                                                if c.status == MISMATCH) + " differ(s)",
                    2: "NOT VERIFIED YET: " + "; ".join(
                        f"{c.name}: {c.detail}" for c in self.checks if c.status == PENDING)}
        out.append(verdicts[self.exit_code])
        return out


def verify_entry(journal: AuditJournal, reader: TopicReader, kind: str, subject: str, *,
                 expected_record: Mapping[str, Any] | None = None,
                 books: str = "the books") -> VerifyReport:
    """Check the entry of ``subject`` (see the module docstring). ``expected_record``: the
    record as the books give it (``books`` names where it came from)."""
    report = VerifyReport(kind, subject)
    entry = journal.entry(kind, subject)
    if entry is None:
        report.add("entry", PENDING, f"no audit entry for {kind} {subject!r} (unknown, or "
                   "not judged/settled yet)")
        return report
    when = datetime.fromtimestamp(entry.created_at_ns / 1e9, UTC).isoformat(timespec="seconds")
    report.add("entry", OK, f"#{entry.id}, journaled {when}")
    _check_record(report, entry, expected_record, books)
    if entry.block_seq is None:
        report.add("block", PENDING, "not sealed into a block yet (the publisher seals within "
                   "CROWDLEARNING_AUDIT_BLOCK_INTERVAL_S)")
        return report
    proof = journal.proof_for(subject, kind)
    block = journal.block(entry.block_seq)
    assert proof is not None and block is not None
    report.proof = proof
    computed = proof.computed_root()
    where = (f"block {block.seq}: leaf {proof.leaf_index} of {proof.tree_size}, "
             f"{len(proof.path)} hashes to root {_short(computed)}")
    if computed != block.root:
        report.add("block", MISMATCH, f"{where}, but the block was sealed with root "
                   f"{_short(block.root)}: the block's entries changed after sealing")
    else:
        report.add("block", OK, where)
    topic = block.topic_id or journal.topic()
    if block.state != "published" or block.topic_sequence is None or topic is None:
        report.add("topic message", PENDING, f"block {block.seq} is not published yet "
                   f"({block.last_error or 'waiting for the publisher'})")
        return report
    message = reader.message(topic, block.topic_sequence)
    if message is None:
        report.add("topic message", PENDING, f"message {block.topic_sequence} of topic {topic} "
                   "is not on the mirror node (yet)")
        return report
    try:
        published = BlockMessage.decode(message.message)
    except ValueError as exc:
        report.add("topic message", MISMATCH, f"message {block.topic_sequence} of topic {topic} "
                   f"is not this block's: {exc}")
        return report
    expected = {"block": block.seq, "root": computed, "entries": proof.tree_size,
                "prev": block.prev_root}
    differs = [f"{name} {getattr(published, name)!r} (expected {value!r})"
               for name, value in expected.items() if getattr(published, name) != value]
    seen = (f"message {message.sequence_number} of topic {topic} (consensus "
            f"{message.consensus_timestamp}, tx {block.transaction_id})")
    if differs:
        report.add("topic message", MISMATCH, f"{seen}: " + ", ".join(differs))
    else:
        report.add("topic message", OK, f"{seen}: block {published.block}, root "
                   f"{_short(published.root)}, {published.entries} entries")
    _check_chain(report, journal, reader, topic, published)
    return report


def _check_record(report: VerifyReport, entry: Entry, expected: Mapping[str, Any] | None,
                  books: str) -> None:
    digest = record_sha256(entry.record)
    if digest != entry.sha256:
        report.add("record", MISMATCH, f"sha256(record) = {_short(digest)} but the entry says "
                   f"{_short(entry.sha256)}")
    else:
        report.add("record", OK, f"sha256(record) = {_short(digest)}")
    if expected is None:
        report.add("books", SKIPPED, f"no {books} to compare the record with")
        return
    want = canonical_json(expected)
    if want == entry.record:
        report.add("books", OK, f"the record matches {books}")
        return
    have, should = json.loads(entry.record), json.loads(want)
    fields = sorted(k for k in set(have) | set(should) if have.get(k) != should.get(k))
    report.add("books", MISMATCH, "; ".join(
        f"{k}: record {have.get(k)!r}, {books} {should.get(k)!r}" for k in fields))


def _check_chain(report: VerifyReport, journal: AuditJournal, reader: TopicReader, topic: str,
                 published: BlockMessage) -> None:
    if published.block == 1:
        status = OK if published.prev == GENESIS_ROOT else MISMATCH
        report.add("chain", status, f"block 1 names the genesis root: {_short(published.prev)}")
        return
    previous = journal.block(published.block - 1)
    if previous is None or previous.topic_sequence is None:
        report.add("chain", PENDING, f"block {published.block - 1} is not published yet")
        return
    message = reader.message(previous.topic_id or topic, previous.topic_sequence)
    if message is None:
        report.add("chain", PENDING, f"block {previous.seq}'s message is not on the mirror")
        return
    try:
        before = BlockMessage.decode(message.message)
    except ValueError as exc:
        report.add("chain", MISMATCH, f"block {previous.seq}'s message: {exc}")
        return
    if before.block == previous.seq and before.root == published.prev:
        report.add("chain", OK, f"block {previous.seq}'s message (#{message.sequence_number}) "
                   f"has root {_short(before.root)}, the one block {published.block} names")
    else:
        report.add("chain", MISMATCH, f"block {published.block} names previous root "
                   f"{_short(published.prev)}; message #{message.sequence_number} is block "
                   f"{before.block} with root {_short(before.root)}")


def verdict_record_from_log(verdict_log: Path, contribution_id: str) -> dict[str, Any] | None:
    """The audit record of a verdict as the verdict log (``verdicts.jsonl``) has it."""
    if not verdict_log.is_file():
        return None
    found, needle = None, json.dumps(contribution_id)  # as the log writes it
    with verdict_log.open() as fh:
        for line in fh:
            if needle not in line:
                continue
            try:
                record = json.loads(line)
                if record["verdict"]["contribution_id"] == contribution_id:
                    found = verdict_record(contribution_id, record["sha256"],
                                           record["reward_tinybar"], record["penalty_tinybar"],
                                           record.get("payout_id"))
            except (ValueError, KeyError, TypeError):
                continue
    return found


def _short(digest: str | None) -> str:
    return "none" if digest is None else f"{digest[:16]}..."
