"""Alembic revisions, oldest first: tables, then the database-side invariants (triggers)."""
