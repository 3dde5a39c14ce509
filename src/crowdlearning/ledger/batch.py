"""Booking many transfers in one database transaction with set-based SQL.

``book_many(conn, specs)`` is what ``Ledger.transfer_many`` / ``Ledger.move_many`` run inside one
retried transaction. Each transfer keeps its own idempotency key and gets its own outcome; the
statements are per batch, not per transfer:

1. lock every account the batch touches (``SELECT ... FOR UPDATE``, ascending id, like ``post``),
2. one existence check for all keys (headers and legs of the stored transfers, one query),
3. decide each transfer in order against running balances (Python, no SQL): a transfer whose key
   is stored returns that record, one that would overdraw a forbidding account, names an unknown
   account or reuses a key with other content is refused on its own; the others book,
4. insert all legs (one ``executemany``, in transfer order, so the balance trigger and the
   ``CHECK`` see exactly the running balances decided in 3), then all headers (sealing them).

The result is the same books as posting the transfers one by one with ``postings.post`` in the
given order, skipping the ones that raise (``tests/ledger/test_batch.py`` checks this).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from crowdlearning.ledger.errors import InvalidInputError
from crowdlearning.ledger.postings import AccountState
from crowdlearning.ledger.records import Leg, Transfer, TransferKind, TransferSpec
from crowdlearning.ledger.schema import accounts, legs, transfers
from crowdlearning.ledger.validation import INT64_MAX

__all__ = ["MAX_BATCH", "BatchItem", "Outcome", "book_many"]

MAX_BATCH = 10_000  # transfers per call: keeps one transaction (and its row locks) short [count]
_CHUNK = 1_000  # ids per IN (...) list: well inside SQLite's and PostgreSQL's parameter limits
_TEXT_ARRAY = postgresql.ARRAY(sa.String())


class Outcome(StrEnum):
    """What happened to one transfer of a batch."""

    BOOKED = "booked"  # posted now
    ALREADY_BOOKED = "already_booked"  # its key was stored with the same content: nothing moved
    INSUFFICIENT_FUNDS = "insufficient_funds"  # would take a forbidding account below zero
    UNKNOWN_ACCOUNT = "unknown_account"  # names an account that does not exist
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # key stored with other content


@dataclass(frozen=True)
class BatchItem:
    """The outcome of one transfer of a batch; ``transfer`` is set when it is (now) booked."""

    spec: TransferSpec
    outcome: Outcome
    transfer: Transfer | None = None
    detail: str = ""  # why it was refused
    account: str | None = None  # the account that lacks funds or is unknown

    @property
    def ok(self) -> bool:
        """Whether the transfer is on the books (booked now or before)."""
        return self.outcome in (Outcome.BOOKED, Outcome.ALREADY_BOOKED)


def book_many(
    conn: sa.Connection, specs: Sequence[TransferSpec], *, now_ns: int
) -> list[BatchItem]:
    """Book ``specs`` in order inside the open transaction; one ``BatchItem`` per spec."""
    _check_batch(specs)
    if not specs:
        return []
    locked = _lock_accounts(conn, {leg.account for spec in specs for leg in spec.legs})
    stored = _stored_transfers(conn, list({spec.id for spec in specs}))
    balances = {code: state.balance_tinybar for code, state in locked.items()}
    items: list[BatchItem] = []
    booked: list[TransferSpec] = []
    for spec in specs:
        item = _decide(spec, stored.get(spec.id), locked, balances, now_ns)
        if item.outcome is Outcome.BOOKED:
            booked.append(spec)
            stored[spec.id] = Transfer(spec=spec, created_at_ns=now_ns)  # a repeat: already booked
        items.append(item)
    _insert(conn, booked, locked, now_ns)
    return items


def _check_batch(specs: Sequence[TransferSpec]) -> None:
    if len(specs) > MAX_BATCH:
        raise InvalidInputError(f"a batch holds at most {MAX_BATCH} transfers, got {len(specs)}")
    for spec in specs:
        if not isinstance(spec, TransferSpec):
            raise InvalidInputError(f"a batch holds TransferSpec objects, got {spec!r}")
        if spec.kind in (TransferKind.POST, TransferKind.VOID):
            raise InvalidInputError(
                f"transfer {spec.id}: post/void transfers resolve a pending one and are not "
                "batched; use Ledger.run with postings.resolve_pending"
            )


def _decide(
    spec: TransferSpec,
    stored: Transfer | None,
    locked: dict[str, AccountState],
    balances: dict[str, int],
    now_ns: int,
) -> BatchItem:
    missing = sorted(leg.account for leg in spec.legs if leg.account not in locked)
    if missing:
        return BatchItem(
            spec,
            Outcome.UNKNOWN_ACCOUNT,
            detail=f"unknown account(s): {', '.join(missing)}",
            account=missing[0],
        )
    if stored is not None:
        if not stored.spec.same_content(spec):
            return BatchItem(
                spec,
                Outcome.IDEMPOTENCY_CONFLICT,
                detail=f"transfer id {spec.id!r} was already used for a different transfer "
                f"({stored.spec.legs}, {stored.spec.kind}); choose a new id",
            )
        return BatchItem(spec, Outcome.ALREADY_BOOKED, stored)
    for leg in spec.legs:
        refusal = _refusal(spec.id, leg, locked[leg.account], balances[leg.account])
        if refusal is not None:
            return BatchItem(spec, Outcome.INSUFFICIENT_FUNDS, detail=refusal, account=leg.account)
    for leg in spec.legs:
        balances[leg.account] += leg.amount_tinybar
    return BatchItem(spec, Outcome.BOOKED, Transfer(spec=spec, created_at_ns=now_ns))


def _refusal(transfer_id: str, leg: Leg, account: AccountState, balance: int) -> str | None:
    after = balance + leg.amount_tinybar
    if after < 0 and not account.allow_negative:
        return (
            f"transfer {transfer_id} needs {-leg.amount_tinybar} tinybar from {account.code}, "
            f"which holds {balance}"
        )
    if abs(after) > INT64_MAX:
        return f"balance of {account.code} would overflow int64"
    return None


def _chunks(values: list, size: int = _CHUNK) -> list[list]:  # type: ignore[type-arg]
    return [values[i : i + size] for i in range(0, len(values), size)]


def _lock_accounts(conn: sa.Connection, codes: set[str]) -> dict[str, AccountState]:
    """Read and row-lock the existing accounts among ``codes``, in ascending id order."""
    columns = (
        accounts.c.id,
        accounts.c.code,
        accounts.c.kind,
        accounts.c.allow_negative,
        accounts.c.balance_tinybar,
    )
    if len(codes) <= _CHUNK:  # the usual case: one statement
        query = (
            sa.select(*columns)
            .where(accounts.c.code.in_(sorted(codes)))
            .order_by(accounts.c.id)
            .with_for_update()
        )
        return {row.code: AccountState(*row) for row in conn.execute(query)}
    # Many accounts: find their (immutable) ids, then lock in ascending id chunks, so the
    # global lock order stays ascending and two batches never deadlock.
    ids: list[int] = []
    for chunk in _chunks(sorted(codes)):
        ids += conn.execute(sa.select(accounts.c.id).where(accounts.c.code.in_(chunk))).scalars()
    found: dict[str, AccountState] = {}
    for chunk in _chunks(sorted(ids)):
        query = (
            sa.select(*columns).where(accounts.c.id.in_(chunk)).order_by(accounts.c.id)
        ).with_for_update()
        found.update((row.code, AccountState(*row)) for row in conn.execute(query))
    return found


def _stored_transfers(conn: sa.Connection, keys: list[str]) -> dict[str, Transfer]:
    """The stored transfers among ``keys`` (headers and legs, one query)."""
    found: dict[str, tuple[object, list[Leg]]] = {}
    # One parameter for all keys, not an IN list of thousands (slow to render and bind):
    # an array on PostgreSQL, a JSON array on SQLite (json_each, built in since 3.38).
    if conn.dialect.name == "postgresql":
        match = transfers.c.id == sa.any_(sa.bindparam("keys", keys, type_=_TEXT_ARRAY))
    else:
        each = sa.func.json_each(sa.bindparam("keys", json.dumps(keys))).table_valued("value")
        match = transfers.c.id.in_(sa.select(each.c.value))
    query = (
        sa.select(
            transfers.c.id,
            transfers.c.kind,
            transfers.c.pending_id,
            transfers.c.memo,
            transfers.c.created_at_ns,
            accounts.c.code,
            legs.c.amount_tinybar,
        )
        .join(legs, legs.c.transfer_id == transfers.c.id)
        .join(accounts, accounts.c.id == legs.c.account_id)
        .where(match)
        .order_by(transfers.c.id, legs.c.leg_no)
    )
    for row in conn.execute(query):
        header, leg_list = found.setdefault(row.id, (row, []))
        leg_list.append(Leg(row.code, int(row.amount_tinybar)))
    result = {}
    for tid, (header, leg_list) in found.items():
        spec = TransferSpec(
            id=tid,
            legs=tuple(leg_list),
            kind=TransferKind(header.kind),  # type: ignore[attr-defined]
            pending_id=header.pending_id,  # type: ignore[attr-defined]
            memo=header.memo,  # type: ignore[attr-defined]
        )
        result[tid] = Transfer(spec=spec, created_at_ns=int(header.created_at_ns))  # type: ignore[attr-defined]
    return result


def _insert(
    conn: sa.Connection, booked: list[TransferSpec], locked: dict[str, AccountState], now_ns: int
) -> None:
    """Legs first (in transfer order: running balances as decided), then the sealing headers."""
    if not booked:
        return
    leg_rows = {
        "transfer_id": [spec.id for spec in booked for _ in spec.legs],
        "leg_no": [n for spec in booked for n in range(len(spec.legs))],
        "account_id": [locked[leg.account].id for spec in booked for leg in spec.legs],
        "amount_tinybar": [leg.amount_tinybar for spec in booked for leg in spec.legs],
    }
    header_rows = {
        "id": [spec.id for spec in booked],
        "kind": [spec.kind.value for spec in booked],
        "amount_tinybar": [spec.amount_tinybar for spec in booked],
        "pending_id": [spec.pending_id for spec in booked],
        "memo": [spec.memo for spec in booked],
        "created_at_ns": [now_ns] * len(booked),
    }
    if conn.dialect.name == "postgresql":
        _insert_unnest(conn, legs, leg_rows, _LEG_TYPES)
        _insert_unnest(conn, transfers, header_rows, _HEADER_TYPES)
        return
    _insert_executemany(conn, legs, leg_rows)
    _insert_executemany(conn, transfers, header_rows)


_LEG_TYPES = ("text", "smallint", "bigint", "bigint")
_HEADER_TYPES = ("text", "text", "bigint", "text", "text", "bigint")


def _insert_executemany(
    conn: sa.Connection,
    table: sa.Table,
    columns: dict[str, list],  # type: ignore[type-arg]
) -> None:
    """SQLite: the driver's executemany over row tuples (in process, no per-row SQLAlchemy work)."""
    names = list(columns)
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # identifiers: ours, not input
        f"VALUES ({', '.join('?' * len(names))})"
    )
    conn.exec_driver_sql(sql, list(zip(*columns.values(), strict=True)))


def _insert_unnest(
    conn: sa.Connection,
    table: sa.Table,
    columns: dict[str, list],  # type: ignore[type-arg]
    types: tuple[str, ...],
) -> None:
    """PostgreSQL: all rows in one statement and one round trip (arrays, unnested in order)."""
    names = list(columns)
    arrays = ", ".join(f"CAST(:{name} AS {typ}[])" for name, typ in zip(names, types, strict=True))
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # identifiers: ours, not input
        f"SELECT {', '.join(names)} FROM unnest({arrays}) "
        f"WITH ORDINALITY AS r({', '.join(names)}, ord) ORDER BY ord"
    )
    conn.execute(sa.text(sql), columns)
