"""The standalone payments service: its treasury reader's cursor, webhook watermarks, a cheap
daily quota.

- ``payments_cursors``: named positions of the payments service's background readers, kept in the
  ledger's own database so they move with the books: the treasury reader's consensus-timestamp
  cursor (``payments/deposits.py``, run by ``payments/worker.py``) and the webhook outbox's
  watermarks (``payments/webhooks.py`` ``record_events``: a pass reads only facts newer than
  them, not every settled payout ever).
- ``ix_ledger_payouts_resolved`` (``ledger_payouts.resolved_at_ns``) and the partial index
  ``ix_ledger_transfers_deposit_created`` (``ledger_transfers.created_at_ns`` of ``deposit:``
  transfers only, so booking any other transfer does not maintain it): what those watermarked
  reads range over.
- ``client_payout_volume``: a running counter of each client's booked payouts and withdrawals per
  minute (``ledger/clients.py``): added to in the booking's transaction, taken back in the void's,
  so the rolling 24 h quota sums at most 1,441 rows instead of re-reading a day of payouts.
  Filled here from the payouts of the last 25 hours.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_PK_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MINUTE_NS = 60 * 10**9


def upgrade() -> None:
    op.create_table(
        "payments_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("updated_at_ns", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_ledger_payouts_resolved", "ledger_payouts", ["resolved_at_ns"])
    op.create_index("ix_ledger_transfers_deposit_created", "ledger_transfers", ["created_at_ns"],
                    postgresql_where=sa.text("id LIKE 'deposit:%'"),
                    sqlite_where=sa.text("id LIKE 'deposit:%'"))
    op.create_table(
        "client_payout_volume",
        sa.Column("account_id", _PK_INT, sa.ForeignKey("ledger_accounts.id"), primary_key=True),
        sa.Column("minute", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("amount_tinybar", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_tinybar >= 0", name="ck_client_payout_volume_not_negative"),
    )
    since = time.time_ns() - 25 * 3600 * 10**9
    op.execute(sa.text(
        "INSERT INTO client_payout_volume (account_id, minute, amount_tinybar) "
        "SELECT p.from_account_id, p.created_at_ns / :minute, sum(p.amount_tinybar) "
        "FROM ledger_payouts AS p JOIN api_clients AS c ON c.account_id = p.from_account_id "
        "WHERE p.created_at_ns > :since AND p.state <> 'voided' "
        "GROUP BY p.from_account_id, p.created_at_ns / :minute"
    ).bindparams(minute=_MINUTE_NS, since=since))


def downgrade() -> None:
    op.drop_table("client_payout_volume")
    op.drop_index("ix_ledger_transfers_deposit_created", table_name="ledger_transfers")
    op.drop_index("ix_ledger_payouts_resolved", table_name="ledger_payouts")
    op.drop_table("payments_cursors")
