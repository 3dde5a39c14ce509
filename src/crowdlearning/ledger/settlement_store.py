"""Persistence of settlement transactions, inside an open transaction (see ``payments.settlement``).

A settlement transaction's life:

    prepared  --submit accepted-->  submitted  --SUCCESS receipt-->  succeeded (payouts posted)
        |                              |------failure receipt---->  failed    (payouts re-queued
        +------ window passed, no receipt ----------------------->  expired    or voided)

A payout is *claimed* by at most one live transaction: the claim is a guarded update
(``settlement_tx_id IS NULL``), committed together with the signed bytes before any submission.

Whether the signed bytes may have left this process is kept too, so that a transaction that
never did can be given up once its valid window is over without asking the network (which
forgets receipts, and is unreachable in an outage): ``mark_sending`` is committed before every
submission (``last_status = 'SENDING'``); ``unmark_sending`` undoes it only when the transport
proved nothing was sent. A crash in between leaves the mark: "maybe sent", the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from crowdlearning.hedera.transport import PreparedTransaction
from crowdlearning.ledger.errors import TransferStateError
from crowdlearning.ledger.payouts import Payout, get_payout, post_payout, void_payout
from crowdlearning.ledger.schema import payouts, settlement_transactions, settlement_tx_payouts

__all__ = [
    "StoredTransaction",
    "claim_batch",
    "finish_succeeded",
    "finish_unsent",
    "get_transaction",
    "list_transactions",
    "mark_sending",
    "payouts_of",
    "record_submit",
    "unassigned_payouts",
    "unmark_sending",
]

tx = settlement_transactions
LIVE_STATES = ("prepared", "submitted")
SENDING = "SENDING"  # last_status while a submission may be under way (see the module doc)


@dataclass(frozen=True)
class StoredTransaction:
    """A settlement transaction as persisted: the signed bytes and where it is in its life."""

    prepared: PreparedTransaction
    state: str
    submit_count: int
    receipt_status: str | None
    last_status: str | None = None  # the node's last answer, or SENDING (see the module doc)

    @property
    def id(self) -> str:
        """The Hedera transaction id."""
        return self.prepared.transaction_id

    @property
    def never_sent(self) -> bool:
        """No submission of these bytes was ever started (or each one provably sent nothing):
        the network cannot know the transaction."""
        return self.submit_count == 0 and self.last_status is None

    @property
    def window_end_ns(self) -> int:
        """The latest moment the network could execute it (valid start + valid duration)."""
        return self.prepared.valid_start_ns + self.prepared.valid_duration_s * 10**9

    def expired(self, now_ns: int, margin_s: int) -> bool:
        """Whether the valid window (plus a clock-skew margin) has passed at ``now_ns``."""
        end_s = self.prepared.valid_duration_s + margin_s
        return now_ns > self.prepared.valid_start_ns + end_s * 10**9


def unassigned_payouts(conn: sa.Connection, limit: int) -> list[Payout]:
    """Pending payouts that no live transaction carries, oldest first."""
    ids = conn.execute(
        sa.select(payouts.c.id)
        .where(payouts.c.state == "pending", payouts.c.settlement_tx_id.is_(None))
        .order_by(payouts.c.created_at_ns, payouts.c.id)
        .limit(limit)
    ).scalars()
    return [get_payout(conn, pid) for pid in ids]


def claim_batch(
    conn: sa.Connection, prepared: PreparedTransaction, payout_ids: list[str], *, now_ns: int
) -> None:
    """Store the signed transaction and claim its payouts; raise if another run claimed one."""
    conn.execute(
        tx.insert().values(
            id=prepared.transaction_id,
            body=prepared.body,
            valid_start_ns=prepared.valid_start_ns,
            valid_duration_s=prepared.valid_duration_s,
            state="prepared",
            created_at_ns=now_ns,
            updated_at_ns=now_ns,
        )
    )
    conn.execute(
        settlement_tx_payouts.insert(),
        [{"tx_id": prepared.transaction_id, "payout_id": p} for p in payout_ids],
    )
    claimed = conn.execute(
        payouts.update()
        .where(
            payouts.c.id.in_(payout_ids),
            payouts.c.state == "pending",
            payouts.c.settlement_tx_id.is_(None),
        )
        .values(settlement_tx_id=prepared.transaction_id, attempts=payouts.c.attempts + 1)
    ).rowcount
    if claimed != len(payout_ids):
        raise TransferStateError(f"another settlement run claimed some of {payout_ids}")


def list_transactions(
    conn: sa.Connection, states: tuple[str, ...], limit: int
) -> list[StoredTransaction]:
    """Settlement transactions in ``states``, oldest first."""
    rows = conn.execute(
        sa.select(tx)
        .where(tx.c.state.in_(states))
        .order_by(tx.c.created_at_ns, tx.c.id)
        .limit(limit)
    )
    return [_stored(r) for r in rows]


def get_transaction(conn: sa.Connection, tx_id: str) -> StoredTransaction | None:
    """The stored settlement transaction with this id, or ``None``."""
    row = conn.execute(sa.select(tx).where(tx.c.id == tx_id)).first()
    return None if row is None else _stored(row)


def _stored(r: sa.Row) -> StoredTransaction:
    prepared = PreparedTransaction(r.id, int(r.valid_start_ns), r.valid_duration_s, bytes(r.body))
    return StoredTransaction(prepared, r.state, r.submit_count, r.receipt_status, r.last_status)


def payouts_of(conn: sa.Connection, tx_id: str) -> list[Payout]:
    """The payouts a settlement transaction carries."""
    ids = conn.execute(
        sa.select(settlement_tx_payouts.c.payout_id)
        .where(settlement_tx_payouts.c.tx_id == tx_id)
        .order_by(settlement_tx_payouts.c.payout_id)
    ).scalars()
    return [get_payout(conn, pid) for pid in ids]


def record_submit(
    conn: sa.Connection, tx_id: str, *, status: str, accepted: bool, now_ns: int
) -> None:
    """Remember a submission's answer; an accepted one moves ``prepared`` to ``submitted``."""
    values: dict[str, object] = {
        "last_status": status,
        "updated_at_ns": now_ns,
        "submit_count": tx.c.submit_count + 1,
    }
    if accepted:
        values["state"] = sa.case((tx.c.state == "prepared", "submitted"), else_=tx.c.state)
    conn.execute(tx.update().where(tx.c.id == tx_id).values(**values))


def mark_sending(conn: sa.Connection, tx_id: str, *, now_ns: int) -> None:
    """Before a submission: the bytes may leave this process from now on."""
    conn.execute(
        tx.update()
        .where(tx.c.id == tx_id, tx.c.last_status.is_(None))
        .values(last_status=SENDING, updated_at_ns=now_ns)
    )


def unmark_sending(conn: sa.Connection, tx_id: str, *, now_ns: int) -> None:
    """The transport proved that a submission sent nothing: back to "never sent" (only if no
    earlier submission was ever started)."""
    conn.execute(
        tx.update()
        .where(tx.c.id == tx_id, tx.c.last_status == SENDING, tx.c.submit_count == 0)
        .values(last_status=None, updated_at_ns=now_ns)
    )


def finish_succeeded(
    conn: sa.Connection, tx_id: str, *, consensus_ns: int | None, now_ns: int
) -> list[Payout]:
    """The network executed the transaction: post its payouts (idempotent)."""
    _set_final(conn, tx_id, "succeeded", "SUCCESS", consensus_ns, now_ns)
    return [post_payout(conn, p.id, now_ns=now_ns) for p in payouts_of(conn, tx_id)]


def finish_unsent(
    conn: sa.Connection,
    tx_id: str,
    *,
    state: str,
    status: str,
    max_attempts: int,
    now_ns: int,
    was_sent: bool = True,
) -> list[Payout]:
    """The transaction failed or expired and moved no money: re-queue or void its payouts.

    ``was_sent=False`` (the bytes never left this process, e.g. during an outage): the attempt
    does not count towards ``max_attempts`` and the payouts are re-queued as they were."""
    _set_final(conn, tx_id, state, status, None, now_ns)
    changed = []
    for payout in payouts_of(conn, tx_id):
        if payout.state != "pending" or payout.settlement_tx_id != tx_id:
            continue
        if not was_sent:
            conn.execute(
                payouts.update()
                .where(payouts.c.id == payout.id)
                .values(settlement_tx_id=None, attempts=max(payout.attempts - 1, 0))
            )
        elif payout.attempts >= max_attempts:
            reason = f"gave up after {payout.attempts} transactions; last: {status}"
            changed.append(void_payout(conn, payout.id, reason, now_ns=now_ns))
        else:
            conn.execute(
                payouts.update()
                .where(payouts.c.id == payout.id)
                .values(settlement_tx_id=None, failure=status)
            )
    return changed


def _set_final(
    conn: sa.Connection,
    tx_id: str,
    state: str,
    status: str,
    consensus_ns: int | None,
    now_ns: int,
) -> None:
    query = sa.select(tx.c.state).where(tx.c.id == tx_id).with_for_update()
    current = conn.execute(query).scalar_one()  # locked: concurrent settlers finish it in turn
    if current not in LIVE_STATES and current != state:
        raise TransferStateError(f"settlement transaction {tx_id} is already {current}")
    conn.execute(
        tx.update()
        .where(tx.c.id == tx_id)
        .values(
            state=state,
            receipt_status=status,
            consensus_ns=consensus_ns,
            updated_at_ns=now_ns,
        )
    )
