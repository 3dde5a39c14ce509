"""Settlement end to end: the real SDK over gRPC against the local network, with a crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hiero_sdk_python import PrivateKey

from crowdlearning.ledger import Ledger, PayoutState, make_engine
from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler, reconcile
from tests.ledger.factories import funded_player, new_ledger

pytestmark = pytest.mark.timeout(60)
PAYOUTS = 12  # two transactions


class SimulatedCrash(BaseException):
    """The process dies here."""


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


def boot(url: str, network: LocalNetworkInfo) -> tuple[Ledger, Settler, SdkHederaTransport]:
    """A fresh process: its own engine, ledger, SDK client and settler."""
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    ledger = new_ledger(make_engine(url))
    return ledger, Settler(ledger, transport), transport


def test_crash_between_storing_and_submitting_pays_once_over_grpc(
    tmp_path: Path, network: LocalNetworkInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN twelve pending payouts to fresh Hedera accounts
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger, settler, transport = boot(url, network)
    keys = [PrivateKey.generate_ed25519().public_key() for _ in range(PAYOUTS)]
    accounts = [transport.create_account(key) for key in keys]
    for n, account in enumerate(accounts):
        funded_player(ledger, f"p{n}", 1_000)
        ledger.request_payout(f"po{n}", f"player:p{n}:available", account, 100 + n)
    # WHEN the process dies right after storing the first signed transaction
    monkeypatch.setattr(transport, "submit", _crash)
    with pytest.raises(SimulatedCrash):
        settler.run_once()
    transport.close()
    ledger.engine.dispose()
    # THEN a restarted process pays every payout exactly once
    ledger, settler, transport = boot(url, network)
    report = settler.run_until_settled(max_runs=50, pause_s=0.05)
    assert report.live == 0
    assert [transport.account_balance(a) for a in accounts] == [100 + n for n in range(PAYOUTS)]
    assert all(ledger.get_payout(f"po{n}").state is PayoutState.POSTED for n in range(PAYOUTS))
    assert reconcile(ledger, transport).mismatches == ()
    transport.close()
    ledger.engine.dispose()


def _crash(*_args: object) -> None:
    raise SimulatedCrash
