"""Ledger tables and the system accounts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.String(128)
_PK_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NS = sa.BigInteger()

# code -> (kind, allow_negative); a copy frozen at this revision (see ledger.accounts).
_SYSTEM_ACCOUNTS = {
    "world": ("world", True),
    "network_fees": ("network_fees", False),
    "treasury": ("treasury", False),
    "reward_budget": ("reward_budget", False),
    "pending_payouts": ("pending_payouts", False),
}


def _ledger_core() -> None:
    accounts = op.create_table(
        "ledger_accounts",
        sa.Column("id", _PK_INT, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(160), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("allow_negative", sa.Boolean(), nullable=False),
        sa.Column("balance_tinybar", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at_ns", _NS, nullable=False),
        sa.CheckConstraint(
            "allow_negative OR balance_tinybar >= 0", name="ck_account_not_negative"
        ),
    )
    op.create_table(
        "ledger_transfers",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
        sa.Column("pending_id", _ID, sa.ForeignKey("ledger_transfers.id"), unique=True),
        sa.Column("memo", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at_ns", _NS, nullable=False),
        sa.CheckConstraint("amount_tinybar > 0", name="ck_transfer_amount_positive"),
        sa.CheckConstraint(
            "kind IN ('single', 'pending', 'post', 'void')", name="ck_transfer_kind"
        ),
        sa.CheckConstraint(
            "(kind IN ('post', 'void')) = (pending_id IS NOT NULL)", name="ck_transfer_pending_link"
        ),
    )
    op.create_table(
        "ledger_legs",
        sa.Column(
            "transfer_id",
            _ID,
            sa.ForeignKey("ledger_transfers.id", deferrable=True, initially="DEFERRED"),
            primary_key=True,
        ),
        sa.Column("leg_no", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("account_id", _PK_INT, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_tinybar <> 0", name="ck_leg_amount_nonzero"),
    )
    op.create_index("ix_ledger_legs_account", "ledger_legs", ["account_id"])
    now_ns = time.time_ns()
    op.bulk_insert(
        accounts,
        [
            {
                "code": c,
                "kind": k,
                "allow_negative": neg,
                "balance_tinybar": 0,
                "created_at_ns": now_ns,
            }
            for c, (k, neg) in _SYSTEM_ACCOUNTS.items()
        ],
    )


def _holds_and_payouts() -> None:
    op.create_table(
        "ledger_holds",
        sa.Column("contribution_id", _ID, primary_key=True),
        sa.Column("player_id", _ID, nullable=False),
        sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("penalty_tinybar", sa.BigInteger()),
        sa.Column("reward_tinybar", sa.BigInteger()),
        sa.Column("created_at_ns", _NS, nullable=False),
        sa.Column("settled_at_ns", _NS),
        sa.CheckConstraint("amount_tinybar > 0", name="ck_hold_amount_positive"),
        sa.CheckConstraint("state IN ('open', 'settled')", name="ck_hold_state"),
    )
    op.create_index("ix_ledger_holds_player_state", "ledger_holds", ["player_id", "state"])
    op.create_table(
        "settlement_transactions",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("valid_start_ns", _NS, nullable=False),
        sa.Column("valid_duration_s", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_status", sa.String(64)),
        sa.Column("receipt_status", sa.String(64)),
        sa.Column("consensus_ns", _NS),
        sa.Column("submit_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at_ns", _NS, nullable=False),
        sa.Column("updated_at_ns", _NS, nullable=False),
        sa.CheckConstraint(
            "state IN ('prepared', 'submitted', 'succeeded', 'failed', 'expired')",
            name="ck_settlement_state",
        ),
    )
    op.create_index("ix_settlement_transactions_state", "settlement_transactions", ["state"])
    op.create_table(
        "ledger_payouts",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("from_account_id", _PK_INT, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pending_transfer_id", _ID, sa.ForeignKey("ledger_transfers.id"), nullable=False),
        sa.Column("resolve_transfer_id", _ID, sa.ForeignKey("ledger_transfers.id")),
        sa.Column("settlement_tx_id", _ID, sa.ForeignKey("settlement_transactions.id")),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failure", sa.String(256)),
        sa.Column("created_at_ns", _NS, nullable=False),
        sa.Column("resolved_at_ns", _NS),
        sa.CheckConstraint("amount_tinybar > 0", name="ck_payout_amount_positive"),
        sa.CheckConstraint("state IN ('pending', 'posted', 'voided')", name="ck_payout_state"),
    )
    op.create_index("ix_ledger_payouts_state", "ledger_payouts", ["state"])
    op.create_table(
        "settlement_tx_payouts",
        sa.Column("tx_id", _ID, sa.ForeignKey("settlement_transactions.id"), primary_key=True),
        sa.Column("payout_id", _ID, sa.ForeignKey("ledger_payouts.id"), primary_key=True),
    )


def _api() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("account_id", _PK_INT, sa.ForeignKey("ledger_accounts.id"), nullable=False),
        sa.Column("created_at_ns", _NS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", _ID, sa.ForeignKey("api_clients.id"), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at_ns", _NS, nullable=False),
        sa.Column("revoked_at_ns", _NS),
    )


def upgrade() -> None:
    _ledger_core()
    _holds_and_payouts()
    _api()


def downgrade() -> None:
    for table in (
        "api_keys",
        "api_clients",
        "settlement_tx_payouts",
        "ledger_payouts",
        "settlement_transactions",
        "ledger_holds",
        "ledger_legs",
        "ledger_transfers",
        "ledger_accounts",
    ):
        op.drop_table(table)
