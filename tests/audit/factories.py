"""Settled Hedera transactions for the audit tests, through the real settlement job."""

from __future__ import annotations

import sqlalchemy as sa

from crowdlearning.ledger import Ledger
from crowdlearning.ledger.schema import settlement_transactions as stx
from crowdlearning.payments.memory_transport import MemoryTransport
from crowdlearning.payments.settlement import Settler
from tests.ledger.factories import funded_player

TREASURY = "0.0.2"


def payout_network(players: int) -> MemoryTransport:
    """An in-memory Hedera whose transfers carry one recipient each (so one payout = one
    settlement transaction)."""
    accounts = {f"0.0.{1000 + n}": 0 for n in range(players)}
    return MemoryTransport(treasury_account_id=TREASURY, balances=accounts, max_transfers=2)


def request_payouts(ledger: Ledger, network: MemoryTransport, first: int, count: int,
                    amount: int = 100) -> None:
    """Players ``first..first+count-1`` each get one pending payout of ``amount``."""
    for n in range(first, first + count):
        funded_player(ledger, f"p{n}", amount)
        ledger.request_payout(f"po{n}", f"player:p{n}:available", f"0.0.{1000 + n}", amount)
    network.balances[TREASURY] = ledger.check_books().internal_tinybar


def succeeded_ids(ledger: Ledger) -> list[str]:
    """The settlement transactions that succeeded, in stored order."""
    return ledger.run(lambda c: list(c.execute(
        sa.select(stx.c.id).where(stx.c.state == "succeeded")
        .order_by(stx.c.created_at_ns, stx.c.id)).scalars()))


def settler(ledger: Ledger, network: MemoryTransport) -> Settler:
    return Settler(ledger, network, clock=network.clock)
