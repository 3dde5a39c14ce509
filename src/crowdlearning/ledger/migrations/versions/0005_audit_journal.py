"""The audit journal: entries, blocks and the deployment's audit topic (``crowdlearning.audit``).

Every verdict and settled Hedera transaction becomes an entry; entries are sealed into blocks
under a Merkle root, one HCS message per block; which blocks are published, and the one topic of
the deployment, are kept here instead of in a process's memory (docs/audit.md).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_PK_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_state",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "audit_blocks",
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
    )
    op.create_index("ix_audit_blocks_state", "audit_blocks", ["state"])
    op.create_table(
        "audit_entries",
        sa.Column("id", _PK_INT, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("block_seq", sa.BigInteger(), sa.ForeignKey("audit_blocks.seq")),
        sa.CheckConstraint("kind IN ('verdict', 'payouts')", name="ck_audit_entry_kind"),
        sa.UniqueConstraint("kind", "subject", name="uq_audit_entries_subject"),
    )
    op.create_index("ix_audit_entries_block", "audit_entries", ["block_seq"])
    op.create_index("ix_settlement_transactions_created", "settlement_transactions",
                    ["created_at_ns", "id"])


def downgrade() -> None:
    op.drop_index("ix_settlement_transactions_created", table_name="settlement_transactions")
    op.drop_index("ix_audit_entries_block", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_index("ix_audit_blocks_state", table_name="audit_blocks")
    op.drop_table("audit_blocks")
    op.drop_table("audit_state")
