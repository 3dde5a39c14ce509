"""Settlement on the in-memory Hedera twin: batching, retries, expiry, failures, reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdlearning.config import Settings
from crowdlearning.hedera.transport import HederaTransport
from crowdlearning.ledger import Ledger, PayoutState, make_engine
from crowdlearning.ledger.schema import settlement_transactions
from crowdlearning.payments.memory_transport import MemoryTransport
from crowdlearning.payments.settlement import Settler, reconcile
from tests.ledger.factories import funded_player, new_ledger

TREASURY = "0.0.2"


class FakeClock:
    """A clock the test moves by hand [epoch ns]."""

    def __init__(self) -> None:
        self.now_ns = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 10**9)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def ledger(db_url: str, clock: FakeClock) -> Iterator[Ledger]:
    engine = make_engine(db_url)
    yield new_ledger(engine, clock=clock)
    engine.dispose()


@pytest.fixture
def network(clock: FakeClock) -> MemoryTransport:
    accounts = {f"0.0.{1000 + n}": 0 for n in range(30)}
    return MemoryTransport(treasury_account_id=TREASURY, balances=accounts, clock=clock)


def fund(ledger: Ledger, network: MemoryTransport, players: int, each: int) -> None:
    """Players with ``each`` tinybar available; the chain treasury holds what the books say."""
    for n in range(players):
        funded_player(ledger, f"p{n}", each)
    network.balances[TREASURY] = ledger.check_books().internal_tinybar


def settler(ledger: Ledger, transport: HederaTransport, clock: FakeClock) -> Settler:
    return Settler(ledger, transport, clock=clock, max_attempts=3, expiry_margin_s=5)


def pay(ledger: Ledger, n: int, amount: int, destination: str | None = None) -> None:
    dest = destination or f"0.0.{1000 + n}"
    ledger.request_payout(f"po{n}", f"player:p{n}:available", dest, amount)


def stored_states(ledger: Ledger) -> list[str]:
    query = sa.select(settlement_transactions.c.state).order_by(
        settlement_transactions.c.created_at_ns
    )
    return ledger.run(lambda c: list(c.execute(query).scalars()))


def test_payouts_are_batched_within_the_transfer_limit(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    # GIVEN 25 pending payouts to distinct accounts
    fund(ledger, network, 25, 1_000)
    for n in range(25):
        pay(ledger, n, 100 + n)
    # WHEN settlement runs once
    report = settler(ledger, network, clock).run_once()
    # THEN 3 transactions of at most 9 recipients + the treasury paid everyone exactly once
    assert (report.prepared, report.succeeded, report.posted_payouts, report.live) == (3, 3, 25, 0)
    assert all(network.balances[f"0.0.{1000 + n}"] == 100 + n for n in range(25))
    assert ledger.get_payout("po7").state is PayoutState.POSTED
    result = reconcile(ledger, network)
    assert (result.mismatches, result.drift_tinybar, result.checked) == ((), 0, 3)


def test_payouts_to_the_same_account_share_one_adjustment(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    fund(ledger, network, 12, 1_000)
    for n in range(12):
        pay(ledger, n, 10, destination="0.0.1000")
    report = settler(ledger, network, clock).run_once()
    assert report.prepared == 1
    assert network.balances["0.0.1000"] == 120


def test_transport_errors_retry_the_same_bytes(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    fund(ledger, network, 1, 1_000)
    pay(ledger, 0, 500)
    network.fail_next_submits = 2
    s = settler(ledger, network, clock)
    assert s.run_once().transport_errors == 1
    assert s.run_once().transport_errors == 1
    assert s.run_once().succeeded == 1
    assert stored_states(ledger) == ["succeeded"]  # one transaction id throughout
    assert len(network.executed) == 1


def test_lost_answer_is_resolved_by_the_receipt(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    fund(ledger, network, 1, 1_000)
    pay(ledger, 0, 500)
    network.lose_next_answers = 1
    s = settler(ledger, network, clock)
    assert s.run_once().transport_errors == 1
    report = s.run_once()  # receipt SUCCESS: post, do not resend
    assert (report.succeeded, report.submitted) == (1, 0)
    assert network.executed == [network.executed[0]]
    assert network.balances["0.0.1000"] == 500


def test_duplicate_answer_counts_as_success(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    # GIVEN a transaction the network executed while its answer and first receipt were lost
    fund(ledger, network, 1, 1_000)
    pay(ledger, 0, 500)
    network.lose_next_answers = 1
    s = settler(ledger, network, clock)
    s.run_once()
    network.hide_next_receipts = 1
    # WHEN settlement resends the same bytes
    report = s.run_once()
    # THEN the node answers DUPLICATE_TRANSACTION, which counts as accepted, and it posts once
    assert (report.submitted, report.succeeded) == (1, 1)
    query = sa.select(settlement_transactions.c.last_status)
    assert ledger.run(lambda c: c.execute(query).scalar_one()) == "DUPLICATE_TRANSACTION"
    assert len(network.executed) == 1
    assert network.balances["0.0.1000"] == 500


def test_expired_transaction_is_reissued_once(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    # GIVEN a node that accepted the transaction but lost it before consensus
    fund(ledger, network, 1, 1_000)
    pay(ledger, 0, 500)
    network.ignore_next_submits = 1
    s = settler(ledger, network, clock)
    assert s.run_once().live == 1
    # WHEN the window has not yet passed, the same bytes are resent... and executed
    # (so first make the node drop the resend too, then let the window pass)
    network.ignore_next_submits = 1
    clock.advance(60)
    assert s.run_once().live == 1
    clock.advance(70)  # past the window (+margin), still within the receipt TTL
    report = s.run_once()
    # THEN the old id expired, a new one paid exactly once
    assert (report.expired, report.prepared, report.succeeded) == (1, 1, 1)
    assert stored_states(ledger) == ["expired", "succeeded"]
    assert network.balances["0.0.1000"] == 500
    assert len(network.executed) == 1


def test_failed_payout_is_isolated_then_voided(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    # GIVEN a batch where one destination does not exist on chain
    fund(ledger, network, 3, 1_000)
    pay(ledger, 0, 100)
    pay(ledger, 1, 100, destination="0.0.999999")
    pay(ledger, 2, 100)
    s = settler(ledger, network, clock)
    # WHEN settlement runs until it gives up on the bad one
    for _ in range(4):
        s.run_once()
    # THEN the good payouts went through alone, the bad one was voided and refunded
    assert network.balances["0.0.1000"] == 100 and network.balances["0.0.1002"] == 100
    bad = ledger.get_payout("po1")
    assert bad.state is PayoutState.VOIDED and "INVALID_ACCOUNT_ID" in (bad.failure or "")
    assert ledger.balance("player:p1:available") == 1_000
    result = reconcile(ledger, network)
    assert (result.mismatches, result.drift_tinybar) == ((), 0)


def test_reconciliation_flags_a_ledger_that_disagrees_with_the_chain(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    fund(ledger, network, 1, 1_000)
    pay(ledger, 0, 500)
    settler(ledger, network, clock).run_once()
    with ledger.engine.begin() as conn:
        conn.execute(settlement_transactions.update().values(state="failed"))
    result = reconcile(ledger, network)
    assert len(result.mismatches) == 1 and "executed on chain" in result.mismatches[0]
    ledger.deposit("operator-funds", "treasury", 100)
    network.balances[TREASURY] += 100 - 7  # and a fee the books do not know yet
    assert reconcile(ledger, network).drift_tinybar == -7
    ledger.book_network_fee("fee-1", 7)
    assert reconcile(ledger, network).drift_tinybar == 0


def test_treasury_destination_is_voided(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    fund(ledger, network, 1, 1_000)
    pay(ledger, 0, 500, destination=TREASURY)
    assert settler(ledger, network, clock).run_once().voided_payouts == 1
    assert ledger.balance("player:p0:available") == 1_000


def test_transaction_past_the_receipt_ttl_is_stuck_until_an_operator_resolves_it(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    # GIVEN a transaction that executed, whose answer was lost, and a settler down for 10 minutes
    fund(ledger, network, 1, 1_000)
    pay(ledger, 0, 500)
    network.lose_next_answers = 1
    s = settler(ledger, network, clock)
    s.run_once()
    clock.advance(600)
    network.receipts.clear()  # the node forgot the receipt
    # WHEN settlement runs again
    report = s.run_once()
    # THEN it neither re-issues nor posts: the transaction is stuck
    assert (report.stuck, report.prepared, report.live) == (1, 0, 1)
    # AND the operator, having seen it on a mirror node, settles it once
    [tx_id] = network.executed
    assert s.resolve_stuck(tx_id, executed=True).posted_payouts == 1
    assert s.run_once().live == 0
    assert len(network.executed) == 1
    assert ledger.get_payout("po0").state is PayoutState.POSTED


def test_stuck_transaction_that_never_ran_is_reissued_after_resolution(
    ledger: Ledger, network: MemoryTransport, clock: FakeClock
) -> None:
    fund(ledger, network, 1, 1_000)
    pay(ledger, 0, 500)
    network.ignore_next_submits = 1
    s = settler(ledger, network, clock)
    s.run_once()
    clock.advance(600)
    assert s.run_once().stuck == 1
    tx_id = stored_id(ledger)
    s.resolve_stuck(tx_id, executed=False)
    assert s.run_once().succeeded == 1
    assert network.balances["0.0.1000"] == 500 and len(network.executed) == 1


def stored_id(ledger: Ledger) -> str:
    query = sa.select(settlement_transactions.c.id)
    return ledger.run(lambda c: c.execute(query).scalar_one())


def test_settler_from_settings(ledger: Ledger, network: MemoryTransport) -> None:
    settings = Settings(settlement_max_attempts=2, settlement_receipt_ttl_s=0)
    s = Settler.from_settings(ledger, network, settings)
    assert (s.max_attempts, s.receipt_ttl_s) == (2, None)
    with pytest.raises(ValueError, match="max_transfers_per_transaction"):
        Settler(ledger, MemoryTransport(max_transfers=1))
