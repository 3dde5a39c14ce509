"""``AuditJournal``: the audit trail's persistent state, in the ledger database.

- **Entries** are appended where things happen (a verdict booked, a settlement transaction found
  settled): one short insert, idempotent by ``(kind, subject)``, so a retry or a restart never
  appends twice (the first record is kept).
- **Settled transactions** are found by a cursor over *all* of them, in the order they were
  stored: everything after the cursor is read a page at a time (``scan_limit``), the ones still
  in flight are kept on a watch list and looked at again until they are final. The cursor and the
  watch list are stored, so a restart goes on from where it was. ``sweep_settled`` (run by the
  publisher when it starts) catches anything the cursor could not see, e.g. a transaction stored
  under a clock that went backwards.
- **Blocks** seal the entries not yet in a block, oldest first, up to N at a time, under their
  Merkle root and the previous block's root. Sealing is one transaction, one sealer at a time
  (SQLite's write lock; a PostgreSQL advisory lock); a block number is unique and entries are
  claimed with ``block_seq IS NULL`` besides, so sealers racing anyway produce one block. A
  block is ``pending`` until its one HCS message is confirmed, then ``published``; its signed
  message transaction is stored before it is sent (see ``network.py``), so what was published
  is known after any crash.
- **The topic**: the deployment's one audit topic, stored once (``claim_topic``: the first
  process to store one wins, the others use it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from crowdlearning.audit import merkle
from crowdlearning.audit.proofs import InclusionProof
from crowdlearning.audit.records import (
    GENESIS_ROOT,
    BlockMessage,
    canonical_json,
    payouts_record,
    record_sha256,
)
from crowdlearning.audit.schema import audit_blocks as blocks
from crowdlearning.audit.schema import audit_entries as entries
from crowdlearning.audit.schema import audit_state as state
from crowdlearning.hedera.transport import PreparedTransaction
from crowdlearning.ledger.db import run_transaction
from crowdlearning.ledger.schema import payouts as ledger_payouts
from crowdlearning.ledger.schema import settlement_transactions as stx
from crowdlearning.ledger.schema import settlement_tx_payouts as stx_payouts

__all__ = ["AuditJournal", "Block", "Entry"]

log = logging.getLogger(__name__)
T = TypeVar("T")
KINDS = ("verdict", "payouts")
TOPIC, SETTLED_CURSOR = "topic", "settled_cursor"
_LIVE = ("prepared", "submitted")  # settlement transactions not final yet
_CHUNK = 500  # ids per IN (...) list
_SEAL_LOCK = 0x6175646974  # PostgreSQL advisory lock taken while a block is sealed ("audit")


@dataclass(frozen=True)
class Entry:
    """One audited fact: a verdict or a settled transaction."""

    id: int
    kind: str
    subject: str
    sha256: str
    record: str  # canonical JSON
    created_at_ns: int
    block_seq: int | None

    @property
    def reference(self) -> str:
        """How a verdict names its entry (``Outcome.audit_transaction_id``): ``audit:<id>``."""
        return f"audit:{self.id}"


@dataclass(frozen=True)
class Block:
    """A sealed block of entries and the state of its one HCS message."""

    seq: int
    root: str
    prev_root: str
    entry_count: int
    first_entry: int
    last_entry: int
    message: bytes  # exactly what is published
    state: str  # "pending" | "published"
    topic_id: str | None
    transaction_id: str | None
    prepared: PreparedTransaction | None  # the signed message, stored before it is sent
    submit_count: int
    last_error: str | None
    topic_sequence: int | None
    created_at_ns: int
    published_at_ns: int | None


class _SealRacedError(Exception):
    """Another sealer took some of the entries first: seal again."""


class AuditJournal:
    """See the module docstring. Every method is one short, retried database transaction."""

    def __init__(self, engine: sa.Engine, *, scan_limit: int = 1000,
                 clock: Callable[[], int] = time.time_ns, attempts: int = 8) -> None:
        if scan_limit < 1:
            raise ValueError(f"scan_limit={scan_limit}")
        self.engine = engine
        self.scan_limit = scan_limit
        self.clock = clock
        self.attempts = attempts

    def _run(self, work: Callable[[sa.Connection], T]) -> T:
        return run_transaction(self.engine, work, attempts=self.attempts)

    # ------------------------------------------------------------------ entries
    def append(self, kind: str, subject: str, record: Mapping[str, Any]) -> Entry:
        """Journal one fact; appending the same subject again returns the first entry."""
        if kind not in KINDS:
            raise ValueError(f"audit entry kind {kind!r}: one of {KINDS}")
        text = canonical_json(record)
        digest = record_sha256(text)

        def work(conn: sa.Connection) -> Entry:
            row = conn.execute(_insert_ignore(conn, entries).values(
                kind=kind, subject=subject, sha256=digest, record=text,
                created_at_ns=self.clock()).returning(*entries.c)).first()
            if row is None:  # appended before: the first record stays
                row = conn.execute(sa.select(entries).where(
                    entries.c.kind == kind, entries.c.subject == subject)).one()
            return _entry(row)

        entry = self._run(work)
        if entry.sha256 != digest:
            log.warning("audit entry %s %s was journaled with another record (%s); kept it",
                        kind, subject, entry.sha256)
        return entry

    def append_many(self, items: Iterable[tuple[str, str, Mapping[str, Any]]]) -> int:
        """Journal many facts (idempotent); returns how many were new."""
        rows = [{"kind": kind, "subject": subject, "sha256": record_sha256(text),
                 "record": text}
                for kind, subject, record in items for text in [canonical_json(record)]]
        added = 0
        for i in range(0, len(rows), _CHUNK):
            added += self._run(lambda c, chunk=rows[i:i + _CHUNK]: self._insert_new(c, chunk))
        return added

    def _insert_new(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Insert the rows whose subject is not journaled yet; returns how many."""
        by_kind: dict[str, set[str]] = {}
        for r in rows:
            by_kind.setdefault(r["kind"], set()).add(r["subject"])
        known = {(kind, s) for kind, subjects in by_kind.items()
                 for s in _existing(conn, kind, subjects)}
        new = [{**r, "created_at_ns": self.clock()} for r in rows
               if (r["kind"], r["subject"]) not in known]
        if new:
            conn.execute(_insert_ignore(conn, entries), new)
        return len(new)

    def missing(self, kind: str, subjects: Iterable[str]) -> set[str]:
        """Which of ``subjects`` have no entry of ``kind``."""
        wanted = set(subjects)
        found: set[str] = set()
        ordered = sorted(wanted)
        for chunk in (ordered[i:i + _CHUNK] for i in range(0, len(ordered), _CHUNK)):
            found |= self._run(lambda c, ids=chunk: _existing(c, kind, ids))
        return wanted - found

    def entry(self, kind: str, subject: str) -> Entry | None:
        """The entry of one fact, or ``None``."""
        row = self._run(lambda c: c.execute(sa.select(entries).where(
            entries.c.kind == kind, entries.c.subject == subject)).first())
        return None if row is None else _entry(row)

    def entries_by_subject(self, subject: str) -> list[Entry]:
        """The entries (of any kind) about ``subject``."""
        rows = self._run(lambda c: c.execute(sa.select(entries).where(
            entries.c.subject == subject).order_by(entries.c.id)).all())
        return [_entry(r) for r in rows]

    def entries_in(self, seq: int) -> list[Entry]:
        """The entries of block ``seq``, in leaf order."""
        rows = self._run(lambda c: c.execute(sa.select(entries).where(
            entries.c.block_seq == seq).order_by(entries.c.id)).all())
        return [_entry(r) for r in rows]

    # ------------------------------------------------------------------ settled transactions
    def collect_settled(self, budget_s: float = 0.5) -> int:
        """Journal the settlement transactions that succeeded since the last call: the watch
        list (those seen in flight), then pages after the cursor until a short page, or until
        ``budget_s`` is spent (a backlog, e.g. the first start after an upgrade, goes on at the
        next call and in the publisher's sweep). Returns how many were new."""
        deadline = time.monotonic() + budget_s
        added, first = 0, True
        while True:
            new, full = self._run(lambda c, f=first: self._settled_page(c, recheck=f))
            added, first = added + new, False
            if not full or time.monotonic() >= deadline:
                return added

    def _settled_page(self, conn: sa.Connection, *, recheck: bool) -> tuple[int, bool]:
        after, watch = _cursor(conn)
        added, still = 0, list(watch)
        if watch and recheck:
            found = dict(conn.execute(sa.select(stx.c.id, stx.c.state).where(
                stx.c.id.in_(watch))).all())
            added += self._journal_settled(conn, [i for i in watch
                                                  if found.get(i) == "succeeded"])
            still = [i for i in watch if found.get(i) in _LIVE]
        rows = conn.execute(_after(after).limit(self.scan_limit)).all()
        added += self._journal_settled(conn, [r.id for r in rows if r.state == "succeeded"])
        still += [r.id for r in rows if r.state in _LIVE]
        if rows:
            after = (int(rows[-1].created_at_ns), rows[-1].id)
        _set_state(conn, SETTLED_CURSOR, json.dumps({"after": list(after), "watch": still}),
                   self.clock())
        return added, len(rows) == self.scan_limit

    def sweep_settled(self) -> int:
        """Journal every succeeded settlement transaction that has no entry (a full scan, in
        pages; for the publisher's start). Returns how many were new."""
        after: tuple[int, str] = (-1, "")
        added = 0
        while True:
            def work(conn: sa.Connection, after: tuple[int, str] = after
                     ) -> tuple[int, tuple[int, str] | None]:
                journaled = sa.exists().where(entries.c.kind == "payouts",
                                              entries.c.subject == stx.c.id)
                rows = conn.execute(_after(after).where(stx.c.state == "succeeded", ~journaled)
                                    .limit(self.scan_limit)).all()
                new = self._journal_settled(conn, [r.id for r in rows])
                last = (int(rows[-1].created_at_ns), rows[-1].id) if rows else None
                return new, (last if len(rows) == self.scan_limit else None)

            new, next_after = self._run(work)
            added += new
            if next_after is None:
                return added
            after = next_after

    def _journal_settled(self, conn: sa.Connection, tx_ids: Sequence[str]) -> int:
        if not tx_ids:
            return 0
        new = set(tx_ids) - _existing(conn, "payouts", tx_ids)
        if not new:
            return 0
        paid = _payouts_of(conn, sorted(new))
        rows = [{"kind": "payouts", "subject": tx_id, "sha256": record_sha256(text),
                 "record": text}
                for tx_id in sorted(new)
                for text in [canonical_json(payouts_record(tx_id, paid.get(tx_id, [])))]]
        return self._insert_new(conn, rows)

    def settled_record(self, transaction_id: str) -> dict[str, Any]:
        """The record a settled transaction has according to the books now (for checks)."""
        paid = self._run(lambda c: _payouts_of(c, [transaction_id]))
        return payouts_record(transaction_id, paid.get(transaction_id, []))

    # ------------------------------------------------------------------ blocks
    def pending(self) -> tuple[int, int | None]:
        """How many entries wait for a block, and when the oldest of them was appended."""
        row = self._run(lambda c: c.execute(
            sa.select(sa.func.count(), sa.func.min(entries.c.created_at_ns))
            .where(entries.c.block_seq.is_(None))).one())
        return int(row[0]), None if row[1] is None else int(row[1])

    def seal(self, max_entries: int, min_entries: int = 1) -> Block | None:
        """Seal up to ``max_entries`` waiting entries (oldest first) into the next block;
        ``None`` when fewer than ``min_entries`` wait (checked under the sealing lock)."""
        def work(conn: sa.Connection) -> Block | None:
            if conn.dialect.name == "postgresql":  # sealers queue here (SQLite: BEGIN IMMEDIATE)
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SEAL_LOCK)))
            rows = conn.execute(
                sa.select(entries.c.id, entries.c.sha256)
                .where(entries.c.block_seq.is_(None))
                .order_by(entries.c.id).limit(max_entries).with_for_update()).all()
            if not rows or len(rows) < min_entries:
                return None
            last = conn.execute(sa.select(blocks.c.seq, blocks.c.root)
                                .order_by(blocks.c.seq.desc()).limit(1)).first()
            seq = 1 if last is None else int(last.seq) + 1
            prev = GENESIS_ROOT if last is None else last.root
            root = merkle.root([merkle.leaf_hash(bytes.fromhex(r.sha256)) for r in rows]).hex()
            message = BlockMessage(seq, root, len(rows), prev).encode()
            ids = [int(r.id) for r in rows]
            conn.execute(blocks.insert().values(
                seq=seq, root=root, prev_root=prev, entry_count=len(rows), first_entry=ids[0],
                last_entry=ids[-1], message=message.decode(), state="pending",
                created_at_ns=self.clock()))
            claimed = conn.execute(entries.update().where(
                entries.c.id.in_(ids), entries.c.block_seq.is_(None)).values(block_seq=seq))
            if claimed.rowcount != len(ids):
                raise _SealRacedError(seq)
            return _block(conn.execute(sa.select(blocks).where(blocks.c.seq == seq)).one())

        for _ in range(self.attempts):
            try:
                return self._run(work)
            except _SealRacedError:
                continue
        raise RuntimeError(f"sealing an audit block raced {self.attempts} times")

    def block(self, seq: int) -> Block | None:
        """Block ``seq``, or ``None``."""
        row = self._run(lambda c: c.execute(sa.select(blocks).where(blocks.c.seq == seq))
                        .first())
        return None if row is None else _block(row)

    def unpublished(self, limit: int = 100) -> list[Block]:
        """Sealed blocks whose message is not confirmed yet, oldest first."""
        rows = self._run(lambda c: c.execute(sa.select(blocks).where(
            blocks.c.state == "pending").order_by(blocks.c.seq).limit(limit)).all())
        return [_block(r) for r in rows]

    def store_prepared(self, seq: int, topic_id: str, prepared: PreparedTransaction) -> Block:
        """Store a block's signed message before it is sent, unless one is stored already
        (then that one is returned, and must be sent instead)."""
        def work(conn: sa.Connection) -> Block:
            conn.execute(blocks.update().where(
                blocks.c.seq == seq, blocks.c.state == "pending",
                blocks.c.transaction_id.is_(None)).values(
                topic_id=topic_id, transaction_id=prepared.transaction_id,
                tx_body=prepared.body, tx_valid_start_ns=prepared.valid_start_ns,
                tx_valid_duration_s=prepared.valid_duration_s))
            return _block(conn.execute(sa.select(blocks).where(blocks.c.seq == seq)).one())

        return self._run(work)

    def record_submit(self, seq: int, status: str, *, accepted: bool) -> None:
        """Remember a submission's answer."""
        self._run(lambda c: c.execute(blocks.update().where(blocks.c.seq == seq).values(
            submit_count=blocks.c.submit_count + 1,
            last_error=None if accepted else status[:256])))

    def drop_transaction(self, seq: int, transaction_id: str, reason: str) -> None:
        """The stored message transaction can never publish (failed, or its window passed
        without a receipt): forget it, so the same message is signed anew."""
        self._run(lambda c: c.execute(blocks.update().where(
            blocks.c.seq == seq, blocks.c.transaction_id == transaction_id,
            blocks.c.state == "pending").values(
            transaction_id=None, tx_body=None, tx_valid_start_ns=None, tx_valid_duration_s=None,
            last_error=reason[:256])))

    def mark_published(self, seq: int, transaction_id: str, topic_sequence: int | None) -> None:
        """The network confirmed block ``seq``'s message."""
        self._run(lambda c: c.execute(blocks.update().where(
            blocks.c.seq == seq, blocks.c.state == "pending",
            blocks.c.transaction_id == transaction_id).values(
            state="published", topic_sequence=topic_sequence, last_error=None,
            published_at_ns=self.clock())))

    def proof_for(self, subject: str, kind: str | None = None) -> InclusionProof | None:
        """The inclusion proof of the entry about ``subject`` (a contribution id or a
        settlement transaction id); ``None`` if it has no entry or is not in a block yet."""
        found = ([e for e in [self.entry(kind, subject)] if e is not None] if kind
                 else self.entries_by_subject(subject))
        if len(found) > 1:
            raise ValueError(f"{subject!r} names entries of several kinds: pass kind")
        if not found or found[0].block_seq is None:
            return None
        entry = found[0]
        block = self.block(entry.block_seq)
        assert block is not None
        members = self.entries_in(block.seq)
        index = next(i for i, e in enumerate(members) if e.id == entry.id)
        leaves = [merkle.leaf_hash(bytes.fromhex(e.sha256)) for e in members]
        path = tuple(p.hex() for p in merkle.inclusion_path(index, leaves))
        return InclusionProof(
            kind=entry.kind, subject=entry.subject, entry_id=entry.id, record=entry.record,
            record_sha256=entry.sha256, block=block.seq, leaf_index=index,
            tree_size=len(members), path=path, root=block.root, prev_root=block.prev_root,
            published=block.state == "published", topic_id=block.topic_id,
            topic_sequence=block.topic_sequence, transaction_id=block.transaction_id)

    # ------------------------------------------------------------------ topic, figures
    def topic(self) -> str | None:
        """The deployment's audit topic, if one is stored."""
        return self._run(lambda c: _get_state(c, TOPIC))

    def claim_topic(self, topic_id: str) -> str:
        """Store ``topic_id`` as the deployment's topic unless one is stored; return the one
        stored (the first process to store one wins)."""
        def work(conn: sa.Connection) -> str:
            conn.execute(_insert_ignore(conn, state).values(
                name=TOPIC, value=topic_id, updated_at_ns=self.clock()))
            stored = _get_state(conn, TOPIC)
            assert stored is not None
            return stored

        return self._run(work)

    def stats(self) -> dict[str, int]:
        """Counts: entries, entries in blocks, blocks, published blocks, submissions."""
        def work(conn: sa.Connection) -> dict[str, int]:
            e = conn.execute(sa.select(sa.func.count(), sa.func.count(entries.c.block_seq))
                             ).one()
            published = sa.func.sum(sa.case((blocks.c.state == "published", 1), else_=0))
            b = conn.execute(sa.select(sa.func.count(), published,
                                       sa.func.sum(blocks.c.submit_count))).one()
            return {"entries": int(e[0]), "sealed_entries": int(e[1]), "blocks": int(b[0]),
                    "published_blocks": int(b[1] or 0), "submissions": int(b[2] or 0)}

        return self._run(work)


# ---------------------------------------------------------------------- helpers
def _insert_ignore(conn: sa.Connection, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"the audit journal supports SQLite and PostgreSQL, not {dialect}")


def _existing(conn: sa.Connection, kind: str, subjects: Iterable[str]) -> set[str]:
    wanted = list(subjects)
    if not wanted:
        return set()
    return set(conn.execute(sa.select(entries.c.subject).where(
        entries.c.kind == kind, entries.c.subject.in_(wanted))).scalars())


def _payouts_of(conn: sa.Connection, tx_ids: Sequence[str]
                ) -> dict[str, list[tuple[str, str, int]]]:
    """Each transaction's payouts ``(id, destination, tinybar)``, sorted by payout id."""
    rows = conn.execute(
        sa.select(stx_payouts.c.tx_id, ledger_payouts.c.id, ledger_payouts.c.destination,
                  ledger_payouts.c.amount_tinybar)
        .join(ledger_payouts, ledger_payouts.c.id == stx_payouts.c.payout_id)
        .where(stx_payouts.c.tx_id.in_(list(tx_ids)))
        .order_by(stx_payouts.c.tx_id, ledger_payouts.c.id))
    found: dict[str, list[tuple[str, str, int]]] = {}
    for tx_id, pid, destination, amount in rows:
        found.setdefault(tx_id, []).append((pid, destination, int(amount)))
    return found


def _after(after: tuple[int, str]) -> sa.Select:
    """Settlement transactions stored after the position ``after``, in stored order."""
    created, tx_id = after
    return (sa.select(stx.c.id, stx.c.state, stx.c.created_at_ns)
            .where(sa.or_(stx.c.created_at_ns > created,
                          sa.and_(stx.c.created_at_ns == created, stx.c.id > tx_id)))
            .order_by(stx.c.created_at_ns, stx.c.id))


def _cursor(conn: sa.Connection) -> tuple[tuple[int, str], list[str]]:
    stored = _get_state(conn, SETTLED_CURSOR)
    if stored is None:
        return (-1, ""), []
    value = json.loads(stored)
    created, tx_id = value["after"]
    return (int(created), str(tx_id)), list(value["watch"])


def _get_state(conn: sa.Connection, name: str) -> str | None:
    return conn.execute(sa.select(state.c.value).where(state.c.name == name)).scalar()


def _set_state(conn: sa.Connection, name: str, value: str, now_ns: int) -> None:
    updated = conn.execute(state.update().where(state.c.name == name).values(
        value=value, updated_at_ns=now_ns)).rowcount
    if not updated:
        conn.execute(state.insert().values(name=name, value=value, updated_at_ns=now_ns))


def _entry(row: sa.Row) -> Entry:
    return Entry(int(row.id), row.kind, row.subject, row.sha256, row.record,
                 int(row.created_at_ns), None if row.block_seq is None else int(row.block_seq))


def _block(row: sa.Row) -> Block:
    prepared = None
    if row.transaction_id is not None and row.tx_body is not None:
        prepared = PreparedTransaction(row.transaction_id, int(row.tx_valid_start_ns),
                                       int(row.tx_valid_duration_s), bytes(row.tx_body))
    return Block(int(row.seq), row.root, row.prev_root, int(row.entry_count),
                 int(row.first_entry), int(row.last_entry), row.message.encode(), row.state,
                 row.topic_id, row.transaction_id, prepared, int(row.submit_count),
                 row.last_error,
                 None if row.topic_sequence is None else int(row.topic_sequence),
                 int(row.created_at_ns),
                 None if row.published_at_ns is None else int(row.published_at_ns))
