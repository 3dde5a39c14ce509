"""Alembic environment: migrates the connection handed over by ``crowdlearning.ledger.migrate``.

Run through ``ledger.migrate.upgrade_to_head(engine)``. Given ``alembic_config(url)`` instead of a
connection (e.g. ``command.downgrade(alembic_config(url), "base")``), it connects by itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from crowdlearning.ledger.schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the given connection, or connect to ``sqlalchemy.url``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported; migrate a live database")
run_migrations_online()
