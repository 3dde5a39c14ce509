"""Player consent for charges: when a mandate was granted or revoked, and where a client's
consent page may send the player back to.

``api_charge_mandates`` gains ``granted_at_ns`` (the player's last grant or change: charges
update ``updated_at_ns`` only), ``revoked_at_ns`` (set while revoked; the spent history stays)
and ``grant_ref`` (the last grant's idempotency reference: a retried grant acts once).
``api_client_return_urls`` holds the URL prefixes the operator registered for a client
(``crowdlearning payments return-url``): the consent page returns only to a URL under one of them.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_charge_mandates", sa.Column("granted_at_ns", sa.BigInteger()))
    op.add_column("api_charge_mandates", sa.Column("revoked_at_ns", sa.BigInteger()))
    op.add_column("api_charge_mandates", sa.Column("grant_ref", sa.String(160)))
    op.execute("UPDATE api_charge_mandates SET granted_at_ns = updated_at_ns")
    op.create_table(
        "api_client_return_urls",
        sa.Column("client_id", sa.String(128), sa.ForeignKey("api_clients.id"),
                  primary_key=True),
        sa.Column("url_prefix", sa.String(512), primary_key=True),
        sa.Column("created_at_ns", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_client_return_urls")
    op.drop_column("api_charge_mandates", "grant_ref")
    op.drop_column("api_charge_mandates", "revoked_at_ns")
    op.drop_column("api_charge_mandates", "granted_at_ns")
