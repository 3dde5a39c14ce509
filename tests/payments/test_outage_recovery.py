"""Settlement recovers from a Hedera outage by itself (issue 14.4).

The local network runs on a shifted clock shared with the transport and the settler, so that a
few real seconds of outage can count as 200-300 s of network time (valid windows close, receipts
are forgotten as on the real network: ``receipt_ttl_s=180``) without a test that waits minutes.
The SDK's per-node backoff is set to 600 s: without the transport's reset, every call after the
network's return would fail for ten minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hiero_sdk_python import PrivateKey

from crowdlearning.errors import HederaUnavailableError
from crowdlearning.ledger import Ledger, PayoutState, make_engine
from crowdlearning.ledger import settlement_store as store
from crowdlearning.payments.local_network import LocalNetwork, LocalNetworkServer
from crowdlearning.payments.local_network.fees import FEE_SCHEDULE_TINYBAR
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler, reconcile
from tests.ledger.factories import funded_player, new_ledger

pytestmark = pytest.mark.timeout(90)
BIG_BACKOFF_S = 600.0


class ShiftedClock:
    """Real time plus an offset that a test moves forward (network time passing)."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset_ns

    def advance(self, seconds: float) -> None:
        self.offset_ns += int(seconds * 1e9)


@dataclass
class Stack:
    clock: ShiftedClock
    server: LocalNetworkServer
    transport: SdkHederaTransport
    ledger: Ledger
    settler: Settler
    accounts: list[str]

    def outage(self, network_seconds: float) -> None:
        """The consensus node goes away (the mirror stays) while ``network_seconds`` pass."""
        self.server.stop(0, mirror=False)
        reports = [self.settler.run_once() for _ in range(3)]  # settlement keeps trying
        assert all(r.network_down and r.succeeded == 0 for r in reports)
        for _ in range(3):  # so do the transport's other users (deposits, audit): the SDK
            with pytest.raises(HederaUnavailableError):  # backs the node off (600 s, doubling)
                self.transport.account_balance(self.transport.treasury_account_id)
        self.clock.advance(network_seconds)

    def request(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            account, amount = self.accounts[n], 100 + n
            self.ledger.request_payout(f"po{n}", f"player:p{n}:available", account, amount)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    clock = ShiftedClock()
    network = LocalNetwork.open(clock_ns=clock, receipt_ttl_s=180)
    server = LocalNetworkServer(network, mirror_port=0)
    info = server.start()
    transport = SdkHederaTransport.for_local_network(
        info,
        clock_ns=clock,
        request_timeout_s=5,
        connect_timeout_s=1,
        node_min_backoff_s=BIG_BACKOFF_S,
        node_max_backoff_s=3600,
    )
    ledger = new_ledger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"), clock=clock)
    accounts = [
        transport.create_account(PrivateKey.generate_ed25519().public_key()) for _ in range(12)
    ]
    for n in range(12):
        funded_player(ledger, f"p{n}", 1_000)
    yield Stack(clock, server, transport, ledger, Settler(ledger, transport, clock=clock), accounts)
    transport.close()
    server.stop()
    ledger.engine.dispose()


def assert_paid_exactly_once(s: Stack, count: int, treasury_before: int) -> None:
    """Chain and ledger agree to the tinybar; each payout left the treasury once."""
    assert [s.transport.account_balance(a) for a in s.accounts[:count]] == [
        100 + n for n in range(count)
    ]
    assert all(s.ledger.get_payout(f"po{n}").state is PayoutState.POSTED for n in range(count))
    succeeded = s.ledger.run(lambda c: store.list_transactions(c, ("succeeded",), 100))
    paid = sum(100 + n for n in range(count))
    treasury = s.transport.account_balance(s.transport.treasury_account_id)
    fees = FEE_SCHEDULE_TINYBAR["cryptoTransfer"] * len(succeeded)
    assert treasury_before - treasury == paid + fees
    assert reconcile(s.ledger, s.transport).mismatches == ()


def test_pending_payouts_settle_on_the_first_run_after_a_long_outage(stack: Stack) -> None:
    # GIVEN six payouts settled, six more pending, and a 200 s outage during which settlement
    # keeps failing (the SDK would back the node off for 600 s and more)
    treasury_before = stack.transport.account_balance(stack.transport.treasury_account_id)
    stack.request(0, 6)
    assert stack.settler.run_once().posted_payouts == 6
    stack.request(6, 6)
    stack.outage(200)
    # WHEN the network returns
    stack.server.start()
    # THEN the first settlement run pays them: the transaction signed into the outage was
    # never sent, so once its window closed it was given up and re-signed, no operator needed
    report = stack.settler.run_once()
    assert (report.posted_payouts, report.stuck, report.live, report.network_down) == (
        6, 0, 0, False)
    assert report.expired == 1
    assert_paid_exactly_once(stack, 12, treasury_before)
    # AND the outage did not count as a failed attempt
    assert stack.ledger.get_payout("po6").attempts == 1
    [given_up] = stack.ledger.run(lambda c: store.list_transactions(c, ("expired",), 10))
    assert given_up.receipt_status == "EXPIRED_UNSENT"


@pytest.mark.parametrize("delivered", [True, False])
def test_maybe_sent_transaction_past_the_receipt_lifetime_is_decided_from_history(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, delivered: bool
) -> None:
    # GIVEN a submission whose answer was lost (it may or may not have reached the node)
    treasury_before = stack.transport.account_balance(stack.transport.treasury_account_id)
    stack.request(0, 3)
    real_submit = stack.transport.submit

    def lost_answer(prepared: object) -> object:
        monkeypatch.setattr(stack.transport, "submit", real_submit)
        if delivered:
            real_submit(prepared)  # type: ignore[arg-type]
        raise HederaUnavailableError("deadline exceeded")

    monkeypatch.setattr(stack.transport, "submit", lost_answer)
    assert stack.settler.run_once().transport_errors == 1
    # AND an outage longer than the receipt lifetime: the node has forgotten any receipt
    stack.outage(300)
    stack.server.start()
    # WHEN settlement runs after the network's return
    report = stack.settler.run_until_settled(max_runs=3)
    # THEN the mirror's history decided it: posted if it executed, else re-signed and paid
    # (each payout alone then, as after any failed attempt)
    assert (report.live, report.stuck) == (0, 0)
    assert_paid_exactly_once(stack, 3, treasury_before)
    states = stack.ledger.run(
        lambda c: store.list_transactions(c, ("succeeded", "expired"), 10)
    )
    expected = [("succeeded", "SUCCESS")] if delivered else [
        ("expired", "NOT_IN_HISTORY"), *[("succeeded", "SUCCESS")] * 3]
    assert [(t.state, t.receipt_status) for t in states] == expected


def test_without_the_reset_the_sdk_backoff_would_keep_failing(stack: Stack,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    # the control: what the reset protects against is real with these settings
    monkeypatch.setattr(SdkHederaTransport, "_reset_nodes", lambda self: None)
    stack.request(0, 1)
    stack.outage(1)
    stack.server.start()
    report = stack.settler.run_once()
    assert report.network_down and report.posted_payouts == 0
