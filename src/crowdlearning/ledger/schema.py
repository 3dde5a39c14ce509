"""The ledger's tables (SQLAlchemy Core); the migrations in ``ledger/migrations`` create them.

    ledger_accounts           one row per account; ``balance_tinybar`` is kept by a trigger on legs
    ledger_transfers          immutable headers; ``pending_id`` links a post/void to its pending
    ledger_legs               immutable signed legs; the legs of a transfer sum to zero
    ledger_holds              stake held behind a contribution until its verdict
    ledger_payouts            two-phase payouts to a Hedera account: pending -> posted | voided
    settlement_transactions   signed Hedera transactions, stored before they are submitted
    settlement_tx_payouts     which payouts a settlement transaction pays
    api_clients / api_keys    third-party clients of the payments API; keys stored as SHA-256 hashes
    api_charge_mandates       how much a player allows a client to charge (and how much it did)
    api_client_return_urls    where a client's consent page may return the player (0007)
    webhook_*                 a client's webhook endpoint, its event outbox and delivery log (0006)
    race_chat_mutes           race chat users a moderator muted, until when (0010)
    race_teams, race_team_members   race league teams and who is in each (0011)
    audit_*                   the audit journal (``crowdlearning.audit.schema``, migration 0005)

Timestamps are integer epoch nanoseconds (``*_ns``) taken from the caller's clock.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "accounts",
    "api_clients",
    "api_keys",
    "charge_mandates",
    "client_payout_volume",
    "client_return_urls",
    "holds",
    "legs",
    "metadata",
    "payments_cursors",
    "payouts",
    "race_chat_mutes",
    "race_team_members",
    "race_teams",
    "settlement_transactions",
    "settlement_tx_payouts",
    "transfers",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_events",
]

metadata = sa.MetaData()
_ID = sa.String(128)
_PK_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

accounts = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("id", _PK_INT, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(160), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("allow_negative", sa.Boolean(), nullable=False),
    sa.Column("balance_tinybar", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("allow_negative OR balance_tinybar >= 0", name="ck_account_not_negative"),
)

transfers = sa.Table(
    "ledger_transfers",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
    sa.Column("pending_id", _ID, sa.ForeignKey("ledger_transfers.id"), unique=True),
    sa.Column("memo", sa.String(256), nullable=False, server_default=""),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("amount_tinybar > 0", name="ck_transfer_amount_positive"),
    sa.CheckConstraint("kind IN ('single', 'pending', 'post', 'void')", name="ck_transfer_kind"),
    # 0009: deposits by the time they were credited (webhook watermark); only deposit rows
    sa.Index("ix_ledger_transfers_deposit_created", "created_at_ns",
             postgresql_where=sa.text("id LIKE 'deposit:%'"),
             sqlite_where=sa.text("id LIKE 'deposit:%'")),
    sa.CheckConstraint(
        "(kind IN ('post', 'void')) = (pending_id IS NOT NULL)", name="ck_transfer_pending_link"
    ),
)

legs = sa.Table(
    "ledger_legs",
    metadata,
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
    sa.Index("ix_ledger_legs_account", "account_id"),
)

holds = sa.Table(
    "ledger_holds",
    metadata,
    sa.Column("contribution_id", _ID, primary_key=True),
    sa.Column("player_id", _ID, nullable=False),
    sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("penalty_tinybar", sa.BigInteger()),
    sa.Column("reward_tinybar", sa.BigInteger()),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("settled_at_ns", sa.BigInteger()),
    sa.CheckConstraint("amount_tinybar > 0", name="ck_hold_amount_positive"),
    sa.CheckConstraint("state IN ('open', 'settled', 'voided')", name="ck_hold_state"),
    sa.Index("ix_ledger_holds_player_state", "player_id", "state"),
)

settlement_transactions = sa.Table(
    "settlement_transactions",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("valid_start_ns", sa.BigInteger(), nullable=False),
    sa.Column("valid_duration_s", sa.Integer(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("last_status", sa.String(64)),
    sa.Column("receipt_status", sa.String(64)),
    sa.Column("consensus_ns", sa.BigInteger()),
    sa.Column("submit_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
    sa.CheckConstraint(
        "state IN ('prepared', 'submitted', 'succeeded', 'failed', 'expired')",
        name="ck_settlement_state",
    ),
    sa.Index("ix_settlement_transactions_state", "state"),
)

payouts = sa.Table(
    "ledger_payouts",
    metadata,
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
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("resolved_at_ns", sa.BigInteger()),
    sa.CheckConstraint("amount_tinybar > 0", name="ck_payout_amount_positive"),
    sa.CheckConstraint("state IN ('pending', 'posted', 'voided')", name="ck_payout_state"),
    sa.Index("ix_ledger_payouts_state", "state"),
    sa.Index("ix_ledger_payouts_resolved", "resolved_at_ns"),  # 0009: webhook watermark
)

settlement_tx_payouts = sa.Table(
    "settlement_tx_payouts",
    metadata,
    sa.Column("tx_id", _ID, sa.ForeignKey("settlement_transactions.id"), primary_key=True),
    sa.Column("payout_id", _ID, sa.ForeignKey("ledger_payouts.id"), primary_key=True),
)

api_clients = sa.Table(
    "api_clients",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("account_id", _PK_INT, sa.ForeignKey("ledger_accounts.id"), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("client_id", _ID, sa.ForeignKey("api_clients.id"), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("revoked_at_ns", sa.BigInteger()),
)

charge_mandates = sa.Table(
    "api_charge_mandates",
    metadata,
    sa.Column("client_id", _ID, sa.ForeignKey("api_clients.id"), primary_key=True),
    sa.Column("player_id", _ID, primary_key=True),
    sa.Column("limit_tinybar", sa.BigInteger(), nullable=False),
    sa.Column("used_tinybar", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("granted_at_ns", sa.BigInteger()),  # 0007: the player's last grant or change
    sa.Column("revoked_at_ns", sa.BigInteger()),  # 0007: set while revoked
    sa.Column("grant_ref", sa.String(160)),  # 0007: the last grant's idempotency reference
    sa.CheckConstraint(
        "used_tinybar >= 0 AND used_tinybar <= limit_tinybar", name="ck_mandate_used"
    ),
)

client_return_urls = sa.Table(  # 0007: where a client's consent page may send the player back
    "api_client_return_urls",
    metadata,
    sa.Column("client_id", _ID, sa.ForeignKey("api_clients.id"), primary_key=True),
    sa.Column("url_prefix", sa.String(512), primary_key=True),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("client_id", _ID, sa.ForeignKey("api_clients.id"), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),  # the HMAC key: needed in clear to sign
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("client_id", _ID, sa.ForeignKey("api_clients.id"), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("source_id", _ID, nullable=False),  # the ledger fact: a payout id, a transfer id
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_ns", sa.BigInteger(), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("delivered_at_ns", sa.BigInteger()),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="ck_webhook_state"),
    sa.UniqueConstraint("type", "source_id", name="uq_webhook_events_fact"),
    sa.Index("ix_webhook_events_due", "state", "next_attempt_ns"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", _PK_INT, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), sa.ForeignKey("webhook_events.id"), nullable=False),
    sa.Column("client_id", _ID, nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("status_code", sa.Integer()),
    sa.Column("error", sa.String(256)),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("attempted_at_ns", sa.BigInteger(), nullable=False),
    sa.Index("ix_webhook_deliveries_client", "client_id", "id"),
)

payments_cursors = sa.Table(  # 0009: where the payments service's readers stopped
    "payments_cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
    sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
)

client_payout_volume = sa.Table(  # 0009: a client's booked payouts per minute (daily quota)
    "client_payout_volume",
    metadata,
    sa.Column("account_id", _PK_INT, sa.ForeignKey("ledger_accounts.id"), primary_key=True),
    sa.Column("minute", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("amount_tinybar >= 0", name="ck_client_payout_volume_not_negative"),
)

race_chat_mutes = sa.Table(  # 0010: race chat users muted by a moderator, until when
    "race_chat_mutes",
    metadata,
    sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("until_ns", sa.BigInteger(), nullable=False),
    sa.Column("moderator_id", sa.BigInteger(), nullable=False),
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
)

race_teams = sa.Table(  # 0011: race league teams (races/teams.py); their latest team fork
    "race_teams",
    metadata,
    sa.Column("id", _PK_INT, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(32), nullable=False),
    sa.Column("name_key", sa.String(32), nullable=False, unique=True),  # lower-cased name
    sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    sa.Column("fork_version", sa.Integer()),  # the team's latest fork in the model registry
    sa.Column("fork_built_at_ns", sa.BigInteger()),
    sa.Column("fork_claimed_at_ns", sa.BigInteger()),  # a server started building one then
    sqlite_autoincrement=True,  # a dissolved team's id is never reused (its forks name it)
)

race_team_members = sa.Table(  # 0011: one team at most per user (the game server's user id)
    "race_team_members",
    metadata,
    sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("team_id", _PK_INT, sa.ForeignKey("race_teams.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("joined_at_ns", sa.BigInteger(), nullable=False),
)

# The audit journal's tables (audit_state, audit_entries, audit_blocks) live in this database and
# this metadata too; they are defined next to the code that uses them.
from crowdlearning.audit import schema as _audit_schema  # noqa: E402, F401
