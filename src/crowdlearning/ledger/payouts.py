"""Two-phase payouts to a Hedera account (inside an open transaction).

``request_payout`` reserves the amount with a pending transfer ``payout:<id>`` from the payer's
account into ``pending_payouts``. When the network confirms the money left the treasury,
``post_payout`` moves it on to ``world`` (``payout:<id>:post``); if it never can leave,
``void_payout`` returns it to the payer (``payout:<id>:void``). A payout is resolved at most once
(the database's unique ``pending_id`` makes a second resolution impossible).

The pending transfer's memo is ``payout to <destination>`` unless the caller gives one (the
payments API passes its client's memo); a replay must carry the same memo. ``settlement_of``
tells the Hedera transaction that settled a posted payout and its consensus time, if stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from crowdlearning.ledger import payout_volume
from crowdlearning.ledger.errors import (
    IdempotencyConflictError,
    InvalidInputError,
    TransferStateError,
    UnknownTransferError,
)
from crowdlearning.ledger.postings import get_transfer, lock_accounts, post, resolve_pending
from crowdlearning.ledger.records import TransferKind, TransferSpec
from crowdlearning.ledger.schema import accounts, payouts, settlement_transactions
from crowdlearning.ledger.validation import (
    DERIVED_ID_MAX,
    check_amount,
    check_hedera_account_id,
    check_identifier,
)

__all__ = [
    "Payout",
    "PayoutState",
    "find_payout",
    "get_payout",
    "post_payout",
    "request_payout",
    "settlement_of",
    "void_payout",
]


class PayoutState(StrEnum):
    """Where a payout is in its two-phase life."""

    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"


@dataclass(frozen=True)
class Payout:
    """A payout of ``amount_tinybar`` from a ledger account to Hedera account ``destination``."""

    id: str
    from_account: str
    destination: str
    amount_tinybar: int
    state: PayoutState
    settlement_tx_id: str | None
    attempts: int
    failure: str | None


def request_payout(
    conn: sa.Connection,
    payout_id: str,
    from_account: str,
    destination: str,
    amount_tinybar: int,
    *,
    now_ns: int,
    memo: str | None = None,
) -> Payout:
    """Reserve a payout (idempotent on ``payout_id``); the settlement job sends it later.

    ``memo`` (default ``payout to <destination>``) is the pending transfer's memo; a replay with
    another memo, payer, destination or amount is an ``IdempotencyConflictError``."""
    check_identifier(payout_id, what="payout_id", max_length=DERIVED_ID_MAX)
    check_hedera_account_id(destination)
    check_amount(amount_tinybar)
    memo = f"payout to {destination}" if memo is None else memo
    stored = find_payout(conn, payout_id)
    if stored is not None:
        pending = get_transfer(conn, f"payout:{payout_id}")
        stored_memo = pending.spec.memo if pending is not None else None
        if (stored.from_account, stored.destination, stored.amount_tinybar, stored_memo) != (
            from_account,
            destination,
            amount_tinybar,
            memo,
        ):
            raise IdempotencyConflictError(
                f"payout id {payout_id!r} was already used for "
                f"{stored.amount_tinybar} to {stored.destination}"
            )
        return stored
    spec = TransferSpec.move(
        f"payout:{payout_id}",
        from_account,
        "pending_payouts",
        amount_tinybar,
        kind=TransferKind.PENDING,
        memo=memo,
    )
    post(conn, spec, now_ns=now_ns)
    payer = lock_accounts(conn, [from_account])[from_account]
    account_id = payer.id
    conn.execute(
        payouts.insert().values(
            id=payout_id,
            from_account_id=account_id,
            destination=destination,
            amount_tinybar=amount_tinybar,
            state=PayoutState.PENDING.value,
            pending_transfer_id=spec.id,
            created_at_ns=now_ns,
        )
    )
    if payer.kind == "client":  # counted against the client's daily quota
        payout_volume.add_payout(conn, account_id, amount_tinybar, created_at_ns=now_ns)
    return get_payout(conn, payout_id)


def get_payout(conn: sa.Connection, payout_id: str) -> Payout:
    """The payout with this id; raises ``UnknownTransferError`` if there is none."""
    payout = find_payout(conn, payout_id)
    if payout is None:
        raise UnknownTransferError(f"no payout {payout_id!r}")
    return payout


def find_payout(conn: sa.Connection, payout_id: str) -> Payout | None:
    """The payout with this id, or ``None``."""
    try:  # every stored id passed this check (``request_payout``); PostgreSQL refuses a NUL
        check_identifier(payout_id, what="payout_id", max_length=DERIVED_ID_MAX)
    except InvalidInputError:
        return None
    row = conn.execute(
        sa.select(payouts, accounts.c.code)
        .join(accounts, accounts.c.id == payouts.c.from_account_id)
        .where(payouts.c.id == payout_id)
    ).first()
    if row is None:
        return None
    return Payout(
        row.id,
        row.code,
        row.destination,
        int(row.amount_tinybar),
        PayoutState(row.state),
        row.settlement_tx_id,
        row.attempts,
        row.failure,
    )


def settlement_of(conn: sa.Connection, payout: Payout) -> tuple[str | None, int | None]:
    """``(Hedera transaction id, consensus time ns)`` of a posted payout's transaction.

    Either is ``None`` when unknown: not posted, or posted without a stored transaction
    (``Settler.resolve_stuck``), or a receipt that carried no consensus time."""
    if payout.state is not PayoutState.POSTED or payout.settlement_tx_id is None:
        return None, None
    consensus_ns = conn.execute(
        sa.select(settlement_transactions.c.consensus_ns).where(
            settlement_transactions.c.id == payout.settlement_tx_id
        )
    ).scalar_one_or_none()
    return payout.settlement_tx_id, None if consensus_ns is None else int(consensus_ns)


def post_payout(conn: sa.Connection, payout_id: str, *, now_ns: int) -> Payout:
    """The money left the treasury: post the pending transfer to ``world``."""
    return _resolve(conn, payout_id, PayoutState.POSTED, None, now_ns)


def void_payout(conn: sa.Connection, payout_id: str, reason: str, *, now_ns: int) -> Payout:
    """The payout will never be sent: return the reserved amount to the payer."""
    return _resolve(conn, payout_id, PayoutState.VOIDED, reason[:256], now_ns)


def _resolve(
    conn: sa.Connection, payout_id: str, state: PayoutState, failure: str | None, now_ns: int
) -> Payout:
    payout = get_payout(conn, payout_id)
    if payout.state is state:
        return payout
    if payout.state is not PayoutState.PENDING:
        raise TransferStateError(f"payout {payout_id!r} is already {payout.state}")
    posting = state is PayoutState.POSTED
    kind, to_account = (
        (TransferKind.POST, "world") if posting else (TransferKind.VOID, payout.from_account)
    )
    suffix = "post" if posting else "void"
    resolved = resolve_pending(
        conn,
        f"payout:{payout_id}:{suffix}",
        f"payout:{payout_id}",
        kind,
        to_account,
        now_ns=now_ns,
        memo=f"payout {suffix}",
    )
    conn.execute(
        payouts.update()
        .where(payouts.c.id == payout_id)
        .values(
            state=state.value,
            resolve_transfer_id=resolved.id,
            failure=failure,
            resolved_at_ns=now_ns,
        )
    )
    if not posting:  # a failed payout does not count against its client's daily quota
        row = conn.execute(sa.select(payouts.c.from_account_id, payouts.c.created_at_ns)
                           .where(payouts.c.id == payout_id)).one()
        payout_volume.remove_payout(conn, row.from_account_id, payout.amount_tinybar,
                                    created_at_ns=row.created_at_ns)
    return get_payout(conn, payout_id)
