"""Webhooks of payments API clients: one endpoint per client, an event outbox, a delivery log.

``webhook_events`` holds one row per ledger fact a client is told about (a payout settled or
failed, a deposit received), unique by ``(type, source_id)`` so re-detecting a fact never makes a
second event; ``crowdlearning.payments.webhooks`` fills and delivers it (docs/payments.md).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.String(128)
_PK_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("client_id", _ID, sa.ForeignKey("api_clients.id"), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", _ID, sa.ForeignKey("api_clients.id"), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("source_id", _ID, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_ns", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at_ns", sa.BigInteger()),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')",
                           name="ck_webhook_state"),
        sa.UniqueConstraint("type", "source_id", name="uq_webhook_events_fact"),
    )
    op.create_index("ix_webhook_events_due", "webhook_events", ["state", "next_attempt_ns"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _PK_INT, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), sa.ForeignKey("webhook_events.id"),
                  nullable=False),
        sa.Column("client_id", _ID, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("error", sa.String(256)),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("attempted_at_ns", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_webhook_deliveries_client", "webhook_deliveries", ["client_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_client", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_webhook_events_due", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
