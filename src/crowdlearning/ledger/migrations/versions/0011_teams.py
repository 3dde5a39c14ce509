"""Race league teams: a player creates a team, others join and leave it; each team's fork.

- ``race_teams``: one row per team: its name as written and lower-cased (``name_key``, unique:
  names are unique case-insensitively), when it was created, and its latest team fork (a model
  version trained only on its members' accepted data, ``races/forks.py``): the version, when it
  was built, and when a game server last claimed building one (at most one build per team per
  ``races_fork_interval_s``, whichever server claims it). Ids are never reused (SQLite
  ``AUTOINCREMENT``), so a dissolved team's forks never name a new team.
- ``race_team_members``: one row per member (the game server's user id, the primary key: a
  player is in at most one team), deleted with its team.

Kept in the ledger's database, which every game server of a deployment shares, as the race
chat's mutes (0010).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_PK_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "race_teams",
        sa.Column("id", _PK_INT, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("name_key", sa.String(32), nullable=False, unique=True),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("fork_version", sa.Integer()),
        sa.Column("fork_built_at_ns", sa.BigInteger()),
        sa.Column("fork_claimed_at_ns", sa.BigInteger()),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "race_team_members",
        sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("team_id", _PK_INT, sa.ForeignKey("race_teams.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("joined_at_ns", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_race_team_members_team_id", "race_team_members", ["team_id"])


def downgrade() -> None:
    op.drop_index("ix_race_team_members_team_id", table_name="race_team_members")
    op.drop_table("race_team_members")
    op.drop_table("race_teams")
