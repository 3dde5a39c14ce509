"""Charge mandates: a player allows an API client to charge up to a limit.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_charge_mandates",
        sa.Column("client_id", sa.String(128), sa.ForeignKey("api_clients.id"), primary_key=True),
        sa.Column("player_id", sa.String(128), primary_key=True),
        sa.Column("limit_tinybar", sa.BigInteger(), nullable=False),
        sa.Column("used_tinybar", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "used_tinybar >= 0 AND used_tinybar <= limit_tinybar", name="ck_mandate_used"
        ),
    )


def downgrade() -> None:
    op.drop_table("api_charge_mandates")
