"""Database-side invariants: legs sum to zero, balances follow legs, transfers are immutable.

A transfer is written legs first, header last (the legs' foreign key to the header is deferred to
commit). Inserting the header *seals* the transfer: a trigger checks its legs (at least two, summing
to zero, positive legs summing to the header's amount), and afterwards no leg can be added. Each
inserted leg moves its account's ``balance_tinybar`` (a trigger), so the ``ck_account_not_negative``
check guards every balance. Updates and deletes of transfers and legs are refused.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE = [
    """CREATE TRIGGER ledger_legs_sealed BEFORE INSERT ON ledger_legs
    WHEN EXISTS (SELECT 1 FROM ledger_transfers WHERE id = NEW.transfer_id)
    BEGIN SELECT RAISE(ABORT, 'ledger: transfer is sealed, legs cannot be added'); END""",
    """CREATE TRIGGER ledger_legs_no_overflow BEFORE INSERT ON ledger_legs
    WHEN (SELECT balance_tinybar FROM ledger_accounts WHERE id = NEW.account_id)
         + NEW.amount_tinybar NOT BETWEEN -9223372036854775807 AND 9223372036854775807
    BEGIN SELECT RAISE(ABORT, 'ledger: balance would overflow int64'); END""",
    """CREATE TRIGGER ledger_legs_apply AFTER INSERT ON ledger_legs
    BEGIN UPDATE ledger_accounts SET balance_tinybar = balance_tinybar + NEW.amount_tinybar
          WHERE id = NEW.account_id; END""",
    """CREATE TRIGGER ledger_transfers_balanced BEFORE INSERT ON ledger_transfers
    WHEN (SELECT COUNT(*) FROM ledger_legs WHERE transfer_id = NEW.id) < 2
      OR (SELECT SUM(amount_tinybar) FROM ledger_legs WHERE transfer_id = NEW.id) <> 0
      OR (SELECT SUM(CASE WHEN amount_tinybar > 0 THEN amount_tinybar ELSE 0 END)
          FROM ledger_legs WHERE transfer_id = NEW.id) <> NEW.amount_tinybar
    BEGIN SELECT RAISE(ABORT, 'ledger: legs of a transfer must sum to zero'); END""",
    *(
        f"""CREATE TRIGGER {table}_immutable_{event.lower()} BEFORE {event} ON {table}
        BEGIN SELECT RAISE(ABORT, 'ledger: transfers and legs are immutable'); END"""
        for table in ("ledger_transfers", "ledger_legs")
        for event in ("UPDATE", "DELETE")
    ),
]

_POSTGRESQL = [
    """CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'ledger: rows of % are immutable', TG_TABLE_NAME USING ERRCODE = '23000';
    END $$""",
    """CREATE FUNCTION ledger_leg_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM ledger_transfers WHERE id = NEW.transfer_id) THEN
        RAISE EXCEPTION 'ledger: transfer % is sealed, legs cannot be added', NEW.transfer_id
          USING ERRCODE = '23505';  -- unique_violation: a concurrent writer posted this id
      END IF;
      RETURN NEW;
    END $$""",
    """CREATE FUNCTION ledger_leg_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE ledger_accounts SET balance_tinybar = balance_tinybar + NEW.amount_tinybar
       WHERE id = NEW.account_id;
      RETURN NEW;
    END $$""",
    """CREATE FUNCTION ledger_transfer_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE n integer; total numeric; credit numeric;
    BEGIN
      SELECT count(*), coalesce(sum(amount_tinybar), 0),
             coalesce(sum(amount_tinybar) FILTER (WHERE amount_tinybar > 0), 0)
        INTO n, total, credit FROM ledger_legs WHERE transfer_id = NEW.id;
      IF n < 2 OR total <> 0 OR credit <> NEW.amount_tinybar THEN
        RAISE EXCEPTION 'ledger: legs of transfer % must sum to zero (legs=%, sum=%)',
          NEW.id, n, total USING ERRCODE = '23514';
      END IF;
      RETURN NEW;
    END $$""",
    """CREATE TRIGGER ledger_legs_sealed BEFORE INSERT ON ledger_legs
    FOR EACH ROW EXECUTE FUNCTION ledger_leg_sealed()""",
    """CREATE TRIGGER ledger_legs_apply AFTER INSERT ON ledger_legs
    FOR EACH ROW EXECUTE FUNCTION ledger_leg_apply()""",
    """CREATE TRIGGER ledger_transfers_balanced BEFORE INSERT ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfer_balanced()""",
    """CREATE TRIGGER ledger_transfers_immutable BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable()""",
    """CREATE TRIGGER ledger_legs_immutable BEFORE UPDATE OR DELETE ON ledger_legs
    FOR EACH ROW EXECUTE FUNCTION ledger_immutable()""",
]

_SQLITE_DROP = [
    "ledger_legs_sealed",
    "ledger_legs_no_overflow",
    "ledger_legs_apply",
    "ledger_transfers_balanced",
    *(
        f"{t}_immutable_{e}"
        for t in ("ledger_transfers", "ledger_legs")
        for e in ("update", "delete")
    ),
]

_POSTGRESQL_DROP = [
    "DROP TRIGGER ledger_legs_immutable ON ledger_legs",
    "DROP TRIGGER ledger_transfers_immutable ON ledger_transfers",
    "DROP TRIGGER ledger_transfers_balanced ON ledger_transfers",
    "DROP TRIGGER ledger_legs_apply ON ledger_legs",
    "DROP TRIGGER ledger_legs_sealed ON ledger_legs",
    "DROP FUNCTION ledger_transfer_balanced()",
    "DROP FUNCTION ledger_leg_apply()",
    "DROP FUNCTION ledger_leg_sealed()",
    "DROP FUNCTION ledger_immutable()",
]


def _statements(sqlite: list[str], postgresql: list[str]) -> list[str]:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite
    if dialect == "postgresql":
        return postgresql
    raise NotImplementedError(f"the ledger supports SQLite and PostgreSQL, not {dialect}")


def upgrade() -> None:
    for statement in _statements(_SQLITE, _POSTGRESQL):
        op.execute(statement)


def downgrade() -> None:
    sqlite_drop = [f"DROP TRIGGER {name}" for name in _SQLITE_DROP]
    for statement in _statements(sqlite_drop, _POSTGRESQL_DROP):
        op.execute(statement)
