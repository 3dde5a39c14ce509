"""Holds can be voided: a paid run that never reaches the judge gives its hold back.

A hold is now opened when a paid run starts (not when it is submitted); a run that ends with
nothing to judge (no tick recorded, its recording lost in a restart) releases its hold through
``void:<contribution>`` and the hold row ends ``voided`` instead of ``settled``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _state_check(states: str) -> None:
    with op.batch_alter_table("ledger_holds") as batch:
        batch.drop_constraint("ck_hold_state", type_="check")
        batch.create_check_constraint("ck_hold_state", f"state IN ({states})")


def upgrade() -> None:
    _state_check("'open', 'settled', 'voided'")


def downgrade() -> None:
    # a voided hold moved nothing but its own release: it reads as settled without a verdict
    op.execute("UPDATE ledger_holds SET state = 'settled', penalty_tinybar = 0, "
               "reward_tinybar = 0 WHERE state = 'voided'")
    _state_check("'open', 'settled'")
