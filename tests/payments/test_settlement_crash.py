"""Crashes at every step of settlement, then a restart: each payout is paid exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowdlearning.ledger import Ledger, PayoutState, make_engine
from crowdlearning.ledger import settlement_store as store
from crowdlearning.payments.memory_transport import MemoryTransport
from crowdlearning.payments.settlement import Settler, reconcile
from tests.ledger.factories import funded_player, new_ledger

TREASURY = "0.0.2"
PAYOUTS = 12  # two transactions' worth


class SimulatedCrash(BaseException):
    """The process dies here (not an Exception: nothing in the code under test catches it)."""


def boot(url: str, network: MemoryTransport) -> tuple[Ledger, Settler]:
    """A fresh process: new engine, ledger and settler over the same database and network."""
    ledger = new_ledger(make_engine(url), clock=network.clock)
    return ledger, Settler(ledger, network, clock=network.clock)


def setup_payouts(url: str, network: MemoryTransport) -> None:
    ledger, _ = boot(url, network)
    for n in range(PAYOUTS):
        funded_player(ledger, f"p{n}", 1_000)
        network.balances[f"0.0.{2000 + n}"] = 0
        ledger.request_payout(f"po{n}", f"player:p{n}:available", f"0.0.{2000 + n}", 100 + n)
    network.balances[TREASURY] = ledger.check_books().internal_tinybar
    ledger.engine.dispose()


def crash_once(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, *, after: bool) -> None:
    """Make ``owner.name`` crash the process on its first call (before or after it ran)."""
    real = getattr(owner, name)

    def crashing(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(owner, name, real)
        if after:
            real(*args, **kwargs)
        raise SimulatedCrash(name)

    monkeypatch.setattr(owner, name, crashing)


def assert_paid_exactly_once(url: str, network: MemoryTransport) -> None:
    ledger, settler = boot(url, network)
    settler.run_until_settled(max_runs=3)
    for n in range(PAYOUTS):
        assert network.balances[f"0.0.{2000 + n}"] == 100 + n
        assert ledger.get_payout(f"po{n}").state is PayoutState.POSTED
    assert len(network.executed) == 2
    result = reconcile(ledger, network)
    assert (result.mismatches, result.drift_tinybar) == ((), 0)
    ledger.engine.dispose()


@pytest.mark.parametrize(
    ("target", "name", "after"),
    [
        ("transport", "submit", False),  # stored, crashed before sending
        ("transport", "submit", True),  # sent and executed, crashed before recording
        ("transport", "prepare_transfer", True),  # signed, crashed before storing
        ("store", "claim_batch", True),  # crash inside the storing transaction (rolled back)
        ("store", "record_submit", False),  # executed, answer not recorded
        ("store", "finish_succeeded", False),  # receipt seen, crash before posting
    ],
)
def test_crash_then_restart_pays_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, name: str, after: bool
) -> None:
    # GIVEN pending payouts and a process that dies at one step of settlement
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    network = MemoryTransport(treasury_account_id=TREASURY)
    setup_payouts(url, network)
    ledger, settler = boot(url, network)
    crash_once(monkeypatch, network if target == "transport" else store, name, after=after)
    # WHEN it crashes mid-run
    with pytest.raises(SimulatedCrash):
        settler.run_once()
    ledger.engine.dispose()
    # THEN a restarted process pays every payout exactly once
    assert_paid_exactly_once(url, network)
