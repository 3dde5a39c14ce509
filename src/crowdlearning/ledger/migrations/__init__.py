"""Alembic migrations of the ledger database (``env.py``, ``versions/``); see ``ledger.migrate``."""
