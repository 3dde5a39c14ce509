"""The audit journal's tables, in the ledger database (created by ledger migration ``0005``).

    audit_state     name -> value: ``topic`` (the deployment's audit topic: the first process to
                    insert it wins, every process uses it) and ``settled_cursor`` (how far the
                    settled settlement transactions have been read)
    audit_entries   one per verdict / settled transaction (``kind``, ``subject`` unique): the
                    canonical record JSON and its SHA-256; ``block_seq`` once sealed into a block
    audit_blocks    consecutive blocks: Merkle root over their entries, the previous block's root,
                    the one HCS message that publishes them and where it is (``pending`` until
                    the network confirmed it, then ``published``)

The tables share ``ledger.schema.metadata`` so that Alembic compares the whole database; the
index on ``settlement_transactions (created_at_ns, id)`` serves the journal's cursor.
"""

from __future__ import annotations

import sqlalchemy as sa

from crowdlearning.ledger.schema import metadata, settlement_transactions

__all__ = ["audit_blocks", "audit_entries", "audit_state"]

_PK_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER

audit_state = sa.Table(
    "audit_state",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
)

audit_blocks = sa.Table(
    "audit_blocks",
    metadata,
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("prev_root", sa.String(64), nullable=False),
    sa.Column("entry_count", sa.Integer(), nullable=False),
    sa.Column("first_entry", sa.BigInteger(), nullable=False),
    sa.Column("last_entry", sa.BigInteger(), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("topic_id", sa.String(32)),
    sa.Column("transaction_id", sa.String(80)),
    sa.Column("tx_body", sa.LargeBinary()),
    sa.Column("tx_valid_start_ns", sa.BigInteger()),
    sa.Column("tx_valid_duration_s", sa.Integer()),
    sa.Column("submit_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.String(256)),
    sa.Column("topic_sequence", sa.BigInteger()),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("published_at_ns", sa.BigInteger()),
    sa.CheckConstraint("state IN ('pending', 'published')", name="ck_audit_block_state"),
    sa.CheckConstraint("entry_count > 0", name="ck_audit_block_not_empty"),
    sa.Index("ix_audit_blocks_state", "state"),
)

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("id", _PK_INT, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(128), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("record", sa.Text(), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("block_seq", sa.BigInteger(), sa.ForeignKey("audit_blocks.seq")),
    sa.CheckConstraint("kind IN ('verdict', 'payouts')", name="ck_audit_entry_kind"),
    sa.UniqueConstraint("kind", "subject", name="uq_audit_entries_subject"),
    sa.Index("ix_audit_entries_block", "block_seq"),
)

# the journal reads settled transactions in the order they were stored, from a cursor
sa.Index("ix_settlement_transactions_created", settlement_transactions.c.created_at_ns,
         settlement_transactions.c.id)
