"""Hypothesis: payouts, faults, crashes and clock jumps never pay a payout twice or lose one."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from crowdlearning.hedera.transport import PreparedTransaction, SubmitOutcome
from crowdlearning.ledger import PayoutState, make_engine
from crowdlearning.payments.memory_transport import MemoryTransport
from crowdlearning.payments.settlement import Settler, reconcile
from tests.ledger.factories import funded_player, new_ledger

TREASURY = "0.0.2"
DESTINATIONS = [f"0.0.{3000 + n}" for n in range(14)] + ["0.0.404"]  # 0.0.404 is not on chain
PLAYERS = 4
FAULTS = ["fail", "lose", "ignore", "hide", "receipt_fail", "crash_before", "crash_after"]
COUNTERS = {
    "fail": "fail_next_submits",
    "lose": "lose_next_answers",
    "ignore": "ignore_next_submits",
    "hide": "hide_next_receipts",
    "receipt_fail": "fail_next_receipts",
}


class SimulatedCrash(BaseException):
    """The settlement process dies."""


class CrashingTransport(MemoryTransport):
    """The in-memory twin, able to kill the caller before or after a submission."""

    crash_before_submit = False
    crash_after_submit = False

    def submit(self, prepared: PreparedTransaction) -> SubmitOutcome:
        if self.crash_before_submit:
            self.crash_before_submit = False
            raise SimulatedCrash
        outcome = super().submit(prepared)
        if self.crash_after_submit:
            self.crash_after_submit = False
            raise SimulatedCrash
        return outcome


class Clock:
    """A hand-moved clock [epoch ns]."""

    now_ns = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.now_ns


class SettlementMachine(RuleBasedStateMachine):
    """Payouts flow through settlement while the network and the process misbehave."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.clock = Clock()
        self.engine = make_engine(f"sqlite:///{self.dir / 'ledger.db'}")
        self.ledger = new_ledger(self.engine, clock=self.clock)
        chain = dict.fromkeys(DESTINATIONS[:-1], 0)
        self.net = CrashingTransport(treasury_account_id=TREASURY, balances=chain, clock=self.clock)
        for n in range(PLAYERS):
            funded_player(self.ledger, f"p{n}", 10**9)
        self.net.balances[TREASURY] = self.ledger.check_books().internal_tinybar
        self.payouts: dict[str, tuple[str, int]] = {}

    def teardown(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def settler(self) -> Settler:
        """A fresh settler each run: a restart after a crash loses nothing in memory."""
        return Settler(self.ledger, self.net, clock=self.clock, max_attempts=3, receipt_ttl_s=None)

    @rule(
        player=st.integers(0, PLAYERS - 1),
        dest=st.sampled_from(DESTINATIONS),
        amount=st.integers(1, 10**6),
    )
    def request(self, player: int, dest: str, amount: int) -> None:
        pid = f"po{len(self.payouts)}"
        self.ledger.request_payout(pid, f"player:p{player}:available", dest, amount)
        self.payouts[pid] = (dest, amount)

    @rule(fault=st.sampled_from(FAULTS))
    def inject(self, fault: str) -> None:
        if fault.startswith("crash"):
            setattr(self.net, f"{fault}_submit", True)
            return
        name = COUNTERS[fault]
        setattr(self.net, name, getattr(self.net, name) + 1)

    @rule(seconds=st.sampled_from([0, 1, 30, 90, 200]))
    def wait(self, seconds: int) -> None:
        self.clock.now_ns += seconds * 10**9

    @rule()
    def settle(self) -> None:
        with contextlib.suppress(SimulatedCrash):
            self.settler().run_once()

    @precondition(lambda self: self.payouts)
    @rule()
    def drain(self) -> None:
        """Faults stop; after enough time and runs, every payout is final and paid at most once."""
        for name in [*COUNTERS.values(), "crash_before_submit", "crash_after_submit"]:
            setattr(self.net, name, 0)
        for _ in range(6):
            self.settler().run_once()
            self.clock.now_ns += 200 * 10**9
        states = {self.ledger.get_payout(pid).state for pid in self.payouts}
        assert states <= {PayoutState.POSTED, PayoutState.VOIDED}
        assert self._paid_by_chain() == self._posted()
        result = reconcile(self.ledger, self.net)
        assert (result.mismatches, result.drift_tinybar) == ((), 0)

    def _posted(self) -> dict[str, int]:
        total: dict[str, int] = defaultdict(int)
        for pid, (dest, amount) in self.payouts.items():
            if self.ledger.get_payout(pid).state is PayoutState.POSTED:
                total[dest] += amount
        return {d: v for d, v in total.items() if v}

    def _paid_by_chain(self) -> dict[str, int]:
        return {d: v for d, v in self.net.balances.items() if d != TREASURY and v}

    @invariant()
    def never_overpaid(self) -> None:
        owed: dict[str, int] = defaultdict(int)
        for pid, (dest, amount) in self.payouts.items():
            if self.ledger.get_payout(pid).state is not PayoutState.VOIDED:
                owed[dest] += amount
        assert all(paid <= owed[d] for d, paid in self._paid_by_chain().items())
        self.ledger.check_books()


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


TestSettlementProperties = SettlementMachine.TestCase
TestSettlementProperties.settings = _settings(25)


@pytest.mark.slow
class TestSettlementPropertiesLong(SettlementMachine.TestCase):  # type: ignore[misc, valid-type]
    """The same with more examples (about 30 s; found a double payment a mutant made)."""

    settings = _settings(120)
