"""PostgreSQL: the ledger's leg and header triggers run once per statement (batch booking).

Migration 0002 checks and applies every row on its own: per inserted leg a plpgsql "sealed"
check and an ``UPDATE ledger_accounts``, per inserted header a "balanced" check. A batch of 500
transfers (``ledger.batch``) inserts 1,000 legs and 500 headers in two statements; row by row
that was ~1,500 plpgsql calls and ~60 updates of each of 16 hot account rows inside one
transaction (a new row version each, each later update walking the chain of earlier ones).
This replaces those three row triggers with statement triggers reading transition tables:

    legs     AFTER INSERT, per statement: refuse legs whose header exists ("sealed", 23505);
             then one grouped ``UPDATE ... SET balance_tinybar = balance_tinybar + s.total``
             per account (sum of the statement's legs)
    headers  AFTER INSERT, per statement: refuse any header whose legs are fewer than two, do
             not sum to zero, or whose positive legs do not sum to its amount (23514)

The invariants and error codes are unchanged: an error in an AFTER trigger aborts the statement,
``ck_account_not_negative`` checks every balance the statement leaves, an int64 overflow still
errors (the numeric sum is cast back to ``bigint``). What changes: a balance is checked after
each statement instead of after each leg (a statement is atomic, nothing can observe the rows in
between). Single postings write one leg per statement and behave exactly as before. SQLite has no
statement triggers and keeps its row triggers (in-process, cheap): nothing changes there.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_UPGRADE = [
    "DROP TRIGGER ledger_legs_apply ON ledger_legs",
    "DROP TRIGGER ledger_legs_sealed ON ledger_legs",
    "DROP TRIGGER ledger_transfers_balanced ON ledger_transfers",
    """CREATE FUNCTION ledger_legs_statement() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE sealed text;
    BEGIN
      SELECT n.transfer_id INTO sealed FROM new_legs AS n
        JOIN ledger_transfers AS t ON t.id = n.transfer_id LIMIT 1;
      IF sealed IS NOT NULL THEN
        RAISE EXCEPTION 'ledger: transfer % is sealed, legs cannot be added', sealed
          USING ERRCODE = '23505';  -- unique_violation: a concurrent writer posted this id
      END IF;
      UPDATE ledger_accounts AS a
         SET balance_tinybar = (a.balance_tinybar + s.total)::bigint
        FROM (SELECT account_id, sum(amount_tinybar) AS total
                FROM new_legs GROUP BY account_id) AS s
       WHERE a.id = s.account_id;
      RETURN NULL;
    END $$""",
    """CREATE FUNCTION ledger_transfers_statement() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE bad record;
    BEGIN
      SELECT h.id, coalesce(l.n, 0) AS n, coalesce(l.total, 0) AS total INTO bad
        FROM new_transfers AS h
        LEFT JOIN LATERAL (
          SELECT count(*) AS n, sum(amount_tinybar) AS total,
                 coalesce(sum(amount_tinybar) FILTER (WHERE amount_tinybar > 0), 0) AS credit
            FROM ledger_legs WHERE transfer_id = h.id) AS l ON true
       WHERE coalesce(l.n, 0) < 2 OR l.total <> 0 OR l.credit <> h.amount_tinybar
       LIMIT 1;
      IF FOUND THEN
        RAISE EXCEPTION 'ledger: legs of transfer % must sum to zero (legs=%, sum=%)',
          bad.id, bad.n, bad.total USING ERRCODE = '23514';
      END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER ledger_legs_apply AFTER INSERT ON ledger_legs
    REFERENCING NEW TABLE AS new_legs
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_legs_statement()""",
    """CREATE TRIGGER ledger_transfers_balanced AFTER INSERT ON ledger_transfers
    REFERENCING NEW TABLE AS new_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfers_statement()""",
]

_DOWNGRADE = [  # back to 0002's row triggers (their functions were kept)
    "DROP TRIGGER ledger_transfers_balanced ON ledger_transfers",
    "DROP TRIGGER ledger_legs_apply ON ledger_legs",
    "DROP FUNCTION ledger_transfers_statement()",
    "DROP FUNCTION ledger_legs_statement()",
    """CREATE TRIGGER ledger_legs_sealed BEFORE INSERT ON ledger_legs
    FOR EACH ROW EXECUTE FUNCTION ledger_leg_sealed()""",
    """CREATE TRIGGER ledger_legs_apply AFTER INSERT ON ledger_legs
    FOR EACH ROW EXECUTE FUNCTION ledger_leg_apply()""",
    """CREATE TRIGGER ledger_transfers_balanced BEFORE INSERT ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfer_balanced()""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWNGRADE:
            op.execute(statement)
