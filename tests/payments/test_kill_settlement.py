"""kill -9 at every settlement step, then a restart: nothing lost, nothing paid twice (issue 14.9).

A child process settles over gRPC against a local network held by the test (the network
outlives the kill) and dies by SIGKILL at one step: inside the booking transaction, after the
booking, and at each of ``payments.settlement.FAULT_STEPS`` (signed / stored, not sent / marked
as sending, not sent / sent, answer not recorded / receipt seen, not posted / posted), the step
chosen by ``CROWDLEARNING_SETTLEMENT_FAULT_STEP`` exactly as a deployment would read it. A fresh
settler then finishes; the chain and the books must agree to the tinybar.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hiero_sdk_python import PrivateKey

from crowdlearning.config import Settings
from crowdlearning.ledger import PayoutState, make_engine
from crowdlearning.ledger import settlement_store as store
from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.local_network.fees import FEE_SCHEDULE_TINYBAR
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import FAULT_STEPS, Settler, reconcile
from tests.ledger.factories import funded_player, new_ledger

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parents[2]
PAYOUTS = 12  # two transactions

CHILD = """
import os, signal, sys, time
from crowdlearning.config import Settings
from crowdlearning.ledger import make_engine
from crowdlearning.ledger.payouts import request_payout
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler
from tests.ledger.factories import new_ledger

url, mode, destination = sys.argv[1:4]
settings = Settings()
ledger = new_ledger(make_engine(url))

def book(conn):
    request_payout(conn, "po0", "player:p0:available", destination, 100, now_ns=time.time_ns())
    if mode == "book":  # killed before the booking commits
        os.kill(os.getpid(), signal.SIGKILL)

ledger.run(book)
if mode == "booked":  # killed after the booking, before any settlement
    os.kill(os.getpid(), signal.SIGKILL)
transport = SdkHederaTransport.from_settings(settings)
Settler.from_settings(ledger, transport, settings).run_until_settled(max_runs=5)
sys.exit(3)  # not reached: the fault step kills this process
"""


@pytest.fixture(scope="module")
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


def child_env(network: LocalNetworkInfo, step: str) -> dict[str, str]:
    host, _, port = network.address.rpartition(":")
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CROWDLEARNING_ENVIRONMENT": "test",
        "CROWDLEARNING_HEDERA_NETWORK": "local",
        "CROWDLEARNING_HEDERA_LOCAL_HOST": host,
        "CROWDLEARNING_HEDERA_LOCAL_PORT": port,
        "CROWDLEARNING_HEDERA_MIRROR_URL": network.mirror_rest_url or "",
        "CROWDLEARNING_HEDERA_OPERATOR_ID": network.operator_account_id,
        "CROWDLEARNING_HEDERA_OPERATOR_KEY": network.operator_private_key_der_hex,
        "CROWDLEARNING_SETTLEMENT_FAULT_STEP": step,
    }


@pytest.mark.parametrize(
    ("mode", "step"),
    [("book", ""), ("booked", ""), *[("settle", step) for step in FAULT_STEPS]],
)
def test_kill_9_then_restart_pays_each_payout_exactly_once(
    tmp_path: Path, network: LocalNetworkInfo, mode: str, step: str
) -> None:
    # GIVEN twelve payouts to fresh accounts: eleven booked, the first booked by the child
    transport = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
    accounts = [
        transport.create_account(PrivateKey.generate_ed25519().public_key())
        for _ in range(PAYOUTS)
    ]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = new_ledger(make_engine(url))
    for n in range(PAYOUTS):
        funded_player(ledger, f"p{n}", 1_000)
    for n in range(1, PAYOUTS):
        ledger.request_payout(f"po{n}", f"player:p{n}:available", accounts[n], 100 + n)
    treasury_before = transport.account_balance(transport.treasury_account_id)
    # WHEN a settling process is killed with SIGKILL at that step
    child = subprocess.run(
        [sys.executable, "-c", CHILD, url, mode, accounts[0]],
        env=child_env(network, step), cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    # AND restarts: the judge books the lost verdict again (idempotent), settlement resumes
    ledger.engine.dispose()
    ledger = new_ledger(make_engine(url))
    ledger.request_payout("po0", "player:p0:available", accounts[0], 100)
    report = Settler(ledger, transport).run_until_settled(max_runs=20, pause_s=0.1)
    # THEN every payout left the treasury once: chain and books agree to the tinybar
    assert report.live == 0
    assert [transport.account_balance(a) for a in accounts] == [100 + n for n in range(PAYOUTS)]
    assert all(ledger.get_payout(f"po{n}").state is PayoutState.POSTED for n in range(PAYOUTS))
    assert all(ledger.balance(f"player:p{n}:available") == 900 - n for n in range(PAYOUTS))
    succeeded = ledger.run(lambda c: store.list_transactions(c, ("succeeded",), 100))
    fees = FEE_SCHEDULE_TINYBAR["cryptoTransfer"] * len(succeeded)
    treasury_after = transport.account_balance(transport.treasury_account_id)
    assert treasury_before - treasury_after == sum(100 + n for n in range(PAYOUTS)) + fees
    assert reconcile(ledger, transport).mismatches == ()
    transport.close()
    ledger.engine.dispose()


def test_fault_steps_match_the_setting_and_are_refused_in_production() -> None:
    choices = Settings.model_fields["settlement_fault_step"].annotation.__args__  # type: ignore[union-attr]
    assert set(choices) == {"", *FAULT_STEPS}
    settings = Settings(environment="production", settlement_fault_step="store")
    with pytest.raises(Exception, match="tests only"):
        Settler.from_settings(None, None, settings)  # type: ignore[arg-type]
