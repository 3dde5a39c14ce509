"""Posting transfers inside an open transaction: idempotency, locks, balance checks, inserts.

Every function takes an open ``sa.Connection``; ``ledger.book.Ledger`` wraps them in transactions.
Legs are inserted before the header, which seals the transfer (see migration 0002).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.ledger.errors import (
    IdempotencyConflictError,
    InsufficientFundsError,
    TransferStateError,
    UnknownAccountError,
    UnknownTransferError,
)
from crowdlearning.ledger.records import Leg, Transfer, TransferKind, TransferSpec
from crowdlearning.ledger.schema import accounts, legs, transfers
from crowdlearning.ledger.validation import INT64_MAX

__all__ = [
    "AccountState",
    "balance",
    "get_transfer",
    "history",
    "lock_accounts",
    "open_account",
    "post",
    "resolve_pending",
]


@dataclass(frozen=True)
class AccountState:
    """An account row as read (and, on PostgreSQL, locked) inside a transaction."""

    id: int
    code: str
    kind: str
    allow_negative: bool
    balance_tinybar: int


def open_account(
    conn: sa.Connection, code: str, kind: AccountKind, *, now_ns: int, allow_negative: bool = False
) -> None:
    """Create the account ``code`` unless it exists (idempotent)."""
    if conn.execute(sa.select(accounts.c.id).where(accounts.c.code == code)).first() is None:
        conn.execute(
            accounts.insert().values(
                code=code,
                kind=kind.value,
                allow_negative=allow_negative,
                balance_tinybar=0,
                created_at_ns=now_ns,
            )
        )


def lock_accounts(conn: sa.Connection, codes: list[str]) -> dict[str, AccountState]:
    """Read and row-lock the accounts ``codes`` in id order; unknown codes raise."""
    query = (
        sa.select(
            accounts.c.id,
            accounts.c.code,
            accounts.c.kind,
            accounts.c.allow_negative,
            accounts.c.balance_tinybar,
        )
        .where(accounts.c.code.in_(codes))
        .order_by(accounts.c.id)
        .with_for_update()
    )
    found = {row.code: AccountState(*row) for row in conn.execute(query)}
    missing = sorted(set(codes) - set(found))
    if missing:
        raise UnknownAccountError(f"unknown account(s): {', '.join(missing)}")
    return found


def balance(conn: sa.Connection, code: str) -> int:
    """The balance of ``code`` in tinybars."""
    value = conn.execute(
        sa.select(accounts.c.balance_tinybar).where(accounts.c.code == code)
    ).scalar_one_or_none()
    if value is None:
        raise UnknownAccountError(f"unknown account: {code}")
    return int(value)


def get_transfer(conn: sa.Connection, transfer_id: str) -> Transfer | None:
    """The stored transfer with this id, or ``None``."""
    header = conn.execute(sa.select(transfers).where(transfers.c.id == transfer_id)).first()
    if header is None:
        return None
    rows = conn.execute(
        sa.select(accounts.c.code, legs.c.amount_tinybar)
        .join(accounts, accounts.c.id == legs.c.account_id)
        .where(legs.c.transfer_id == transfer_id)
        .order_by(legs.c.leg_no)
    )
    spec = TransferSpec(
        id=header.id,
        legs=tuple(Leg(code, int(amount)) for code, amount in rows),
        kind=TransferKind(header.kind),
        pending_id=header.pending_id,
        memo=header.memo,
    )
    return Transfer(spec=spec, created_at_ns=int(header.created_at_ns))


def history(conn: sa.Connection, account: str, *, limit: int, offset: int) -> list[Transfer]:
    """Transfers touching ``account``, newest first; raises for an unknown account."""
    balance(conn, account)
    query = (
        sa.select(transfers.c.id)
        .join(legs, legs.c.transfer_id == transfers.c.id)
        .join(accounts, accounts.c.id == legs.c.account_id)
        .where(accounts.c.code == account)
        .order_by(transfers.c.created_at_ns.desc(), transfers.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    found = (get_transfer(conn, tid) for tid in conn.execute(query).scalars().all())
    return [t for t in found if t is not None]


def post(conn: sa.Connection, spec: TransferSpec, *, now_ns: int) -> Transfer:
    """Post ``spec``, or return the stored transfer if this id was already posted with it."""
    locked = lock_accounts(conn, [leg.account for leg in spec.legs])
    existing = _existing(conn, spec)  # after the locks: sees a writer we waited for
    if existing is not None:
        return existing
    for leg in spec.legs:
        _check_balance(locked[leg.account], leg.amount_tinybar, spec.id)
    conn.execute(
        legs.insert(),
        [
            {
                "transfer_id": spec.id,
                "leg_no": n,
                "account_id": locked[leg.account].id,
                "amount_tinybar": leg.amount_tinybar,
            }
            for n, leg in enumerate(spec.legs)
        ],
    )
    conn.execute(
        transfers.insert().values(
            id=spec.id,
            kind=spec.kind.value,
            amount_tinybar=spec.amount_tinybar,
            pending_id=spec.pending_id,
            memo=spec.memo,
            created_at_ns=now_ns,
        )
    )
    return Transfer(spec=spec, created_at_ns=now_ns)


def _existing(conn: sa.Connection, spec: TransferSpec) -> Transfer | None:
    stored = get_transfer(conn, spec.id)
    if stored is not None and not stored.spec.same_content(spec):
        raise IdempotencyConflictError(
            f"transfer id {spec.id!r} was already used for a different transfer "
            f"({stored.spec.legs}, {stored.spec.kind}); choose a new id"
        )
    return stored


def _check_balance(account: AccountState, delta: int, transfer_id: str) -> None:
    after = account.balance_tinybar + delta
    if after < 0 and not account.allow_negative:
        raise InsufficientFundsError(
            f"transfer {transfer_id} needs {-delta} tinybar from {account.code}, "
            f"which holds {account.balance_tinybar}",
            account.code,
        )
    if abs(after) > INT64_MAX:
        raise InsufficientFundsError(
            f"balance of {account.code} would overflow int64", account.code
        )


def resolve_pending(
    conn: sa.Connection,
    transfer_id: str,
    pending_id: str,
    kind: TransferKind,
    to_account: str,
    *,
    now_ns: int,
    memo: str = "",
) -> Transfer:
    """Post (``kind=POST``) or void (``kind=VOID``) the pending transfer ``pending_id``.

    The resolving transfer moves the whole pending amount out of the account the pending transfer
    credited, into ``to_account`` (for a void: back into the account it debited).
    """
    pending = get_transfer(conn, pending_id)
    if pending is None or pending.spec.kind is not TransferKind.PENDING:
        raise UnknownTransferError(f"no pending transfer {pending_id!r}")
    holding = next(leg.account for leg in pending.spec.legs if leg.amount_tinybar > 0)
    spec = TransferSpec.move(
        transfer_id,
        holding,
        to_account,
        pending.amount_tinybar,
        kind=kind,
        pending_id=pending_id,
        memo=memo,
    )
    resolved_by = conn.execute(
        sa.select(transfers.c.id).where(transfers.c.pending_id == pending_id)
    ).scalar_one_or_none()
    if resolved_by is not None and resolved_by != transfer_id:
        raise TransferStateError(
            f"pending transfer {pending_id!r} was already resolved by {resolved_by!r}"
        )
    return post(conn, spec, now_ns=now_ns)
