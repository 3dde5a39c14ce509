"""Hypothesis: random operation sequences keep the books balanced and match a simple model."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from crowdlearning.ledger import LedgerError, make_engine
from crowdlearning.ledger import payouts as payouts_mod
from tests.ledger.factories import HOLD, STAKE_MINIMUM, new_ledger, postgres_schema_engine

PLAYERS = ("a", "b", "c")
player = st.sampled_from(PLAYERS)
# mostly valid amounts, some invalid ones (zero, negative) that must change nothing
amount = st.integers(1, 60_000) | st.integers(1, 60_000) | st.integers(-5, 0)


class LedgerMachine(RuleBasedStateMachine):
    """Drives a ledger (SQLite here, PostgreSQL below) through random operations."""

    postgres_url: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.resources = ExitStack()
        self.engine = self._engine()
        self.ledger = new_ledger(self.engine)
        self.n = 0
        self.done: list[tuple[str, str, str, int]] = []  # posted moves, for replays
        self.open_holds: list[str] = []
        self.pending: list[str] = []
        for p in PLAYERS:
            self.ledger.open_player(p)

    def _engine(self) -> sa.Engine:
        if self.postgres_url:
            return self.resources.enter_context(postgres_schema_engine(self.postgres_url))
        tmp = Path(tempfile.mkdtemp())
        self.resources.callback(shutil.rmtree, tmp, ignore_errors=True)
        engine = make_engine(f"sqlite:///{tmp / 'ledger.db'}")
        self.resources.callback(engine.dispose)
        return engine

    def teardown(self) -> None:
        self.resources.close()

    def _id(self) -> str:
        self.n += 1
        return f"op{self.n}"

    def _try(self, fn, *args) -> object:  # type: ignore[no-untyped-def]
        """Run one operation; a refused one must leave the books exactly as they were."""
        before = self._snapshot()
        try:
            return fn(*args)
        except LedgerError:
            assert self._snapshot() == before
            return None

    def _snapshot(self) -> dict[str, int]:
        codes = ["treasury", "reward_budget", "pending_payouts", "world"]
        codes += [f"player:{p}:{k}" for p in PLAYERS for k in ("available", "stake", "held")]
        return {c: self.ledger.balance(c) for c in codes}

    @rule(p=player, value=amount)
    def deposit(self, p: str, value: int) -> None:
        self._try(self.ledger.deposit, self._id(), f"player:{p}:available", value)

    @rule(src=player, dst=player, value=amount)
    def move(self, src: str, dst: str, value: int) -> None:
        args = (self._id(), f"player:{src}:available", f"player:{dst}:available", value)
        if self._try(self.ledger.move, *args) is not None:
            self.done.append(args)

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        if self.done:
            args = data.draw(st.sampled_from(self.done))
            before = self._snapshot()
            self.ledger.move(*args)
            assert self._snapshot() == before

    @rule(value=amount)
    def fund_budget(self, value: int) -> None:
        self._try(self.ledger.deposit, self._id(), "treasury", value)
        self._try(self.ledger.fund_reward_budget, self._id(), value)

    @rule(p=player, value=amount)
    def lock(self, p: str, value: int) -> None:
        self._try(self.ledger.lock_stake, self._id(), p, value)

    @rule(p=player, value=amount)
    def unlock(self, p: str, value: int) -> None:
        self._try(self.ledger.unlock_stake, self._id(), p, value)

    @rule(p=player)
    def stake_up(self, p: str) -> None:
        self.ledger.deposit(self._id(), f"player:{p}:available", STAKE_MINIMUM)
        self.ledger.lock_stake(self._id(), p, STAKE_MINIMUM)

    @rule(p=player)
    def hold(self, p: str) -> None:
        cid = self._id()
        if self._try(self.ledger.hold_for_contribution, p, cid) is None and self._held(cid):
            self.open_holds.append(cid)

    def _held(self, cid: str) -> bool:
        return self.ledger.get_transfer(f"hold:{cid}") is not None

    @rule(data=st.data(), reward=st.integers(0, 3_000), penalty=st.integers(0, HOLD + 10))
    def settle(self, data: st.DataObject, reward: int, penalty: int) -> None:
        if self.open_holds:
            cid = data.draw(st.sampled_from(self.open_holds))
            settle = self.ledger.settle_contribution
            if self._try(lambda: settle(cid, reward_tinybar=reward, penalty_tinybar=penalty)):
                self.open_holds.remove(cid)

    @rule(p=player, value=amount)
    def payout(self, p: str, value: int) -> None:
        pid = self._id()
        if self._try(self.ledger.request_payout, pid, f"player:{p}:available", "0.0.99", value):
            self.pending.append(pid)

    @rule(data=st.data(), post=st.booleans())
    def resolve(self, data: st.DataObject, post: bool) -> None:
        if self.pending:
            pid = data.draw(st.sampled_from(self.pending))
            self.pending.remove(pid)
            resolve = payouts_mod.post_payout if post else payouts_mod.void_payout
            extra = () if post else ("void",)
            self.ledger.run(lambda c: resolve(c, pid, *extra, now_ns=1))  # type: ignore[operator]

    @invariant()
    def books_balance(self) -> None:
        self.ledger.check_books()
        assert all(v >= 0 for k, v in self._snapshot().items() if k != "world")


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


TestLedgerProperties = LedgerMachine.TestCase
TestLedgerProperties.settings = _settings(20)


def test_ledger_properties_on_postgres(postgres_url: str) -> None:
    """The same machine against PostgreSQL (fewer examples: a schema per example)."""
    machine = type("PostgresLedgerMachine", (LedgerMachine,), {"postgres_url": postgres_url})
    run_state_machine_as_test(machine, settings=_settings(6))
