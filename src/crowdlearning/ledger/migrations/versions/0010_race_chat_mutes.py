"""Race chat: who a moderator muted, and until when.

- ``race_chat_mutes``: one row per muted user (the game server's user id), the end of the mute
  (``until_ns``, epoch nanoseconds), the moderator who set it and when. Kept in the ledger's
  database, which every game server of a deployment shares, so a mute holds on every server and
  across restarts (``races/chat_mutes.py`` ``MuteStore``). A new mute of the same user replaces the
  row; an expired row is simply ignored (and overwritten by the next mute).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "race_chat_mutes",
        sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("until_ns", sa.BigInteger(), nullable=False),
        sa.Column("moderator_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("race_chat_mutes")
