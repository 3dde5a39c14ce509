"""Two-phase payouts: pending -> posted | voided, each at most once."""

from __future__ import annotations

import pytest

from crowdlearning.ledger import (
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    Ledger,
    PayoutState,
    TransferStateError,
    UnknownTransferError,
)
from crowdlearning.ledger import payouts as payouts_mod
from tests.ledger.factories import funded_player

ALICE = "player:alice:available"


def _post(ledger: Ledger, payout_id: str) -> payouts_mod.Payout:
    return ledger.run(lambda c: payouts_mod.post_payout(c, payout_id, now_ns=1))


def _void(ledger: Ledger, payout_id: str) -> payouts_mod.Payout:
    return ledger.run(lambda c: payouts_mod.void_payout(c, payout_id, "test", now_ns=1))


def test_pending_payout_reserves_then_posts_to_world(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000)
    payout = ledger.request_payout("p1", ALICE, "0.0.1001", 400)
    assert payout.state is PayoutState.PENDING
    assert ledger.balance(ALICE) == 600
    assert ledger.balance("pending_payouts") == 400
    assert _post(ledger, "p1").state is PayoutState.POSTED
    assert _post(ledger, "p1").state is PayoutState.POSTED  # idempotent
    assert ledger.balance("pending_payouts") == 0
    assert ledger.balance("world") == -1_000 + 400
    with pytest.raises(TransferStateError, match="already posted"):
        _void(ledger, "p1")
    ledger.check_books()


def test_withdraw_is_a_payout_from_the_available_balance(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000, stake=5_000)
    payout = ledger.withdraw("w1", "alice", "0.0.1001", 1_000)
    assert (payout.from_account, payout.state) == (ALICE, PayoutState.PENDING)
    with pytest.raises(InsufficientFundsError):  # locked stake is not withdrawable
        ledger.withdraw("w2", "alice", "0.0.1001", 1)


def test_voided_payout_returns_the_money(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000)
    ledger.request_payout("p1", ALICE, "0.0.1001", 400)
    assert _void(ledger, "p1").state is PayoutState.VOIDED
    assert ledger.balance(ALICE) == 1_000
    with pytest.raises(TransferStateError, match="already voided"):
        _post(ledger, "p1")
    ledger.check_books()


def test_payout_idempotency(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000)
    first = ledger.request_payout("p1", ALICE, "0.0.1001", 400)
    assert ledger.request_payout("p1", ALICE, "0.0.1001", 400) == first
    with pytest.raises(IdempotencyConflictError):
        ledger.request_payout("p1", ALICE, "0.0.1002", 400)
    assert ledger.balance(ALICE) == 600


@pytest.mark.parametrize("destination", ["0.0.x", "0.0", "0.0.-1", "0.0.01", "", "0.0.1 ", 7])
def test_malformed_hedera_account_is_refused(ledger: Ledger, destination: object) -> None:
    funded_player(ledger, "alice", 1_000)
    with pytest.raises(InvalidInputError, match="Hedera account id"):
        ledger.request_payout("p1", ALICE, destination, 400)  # type: ignore[arg-type]
    assert ledger.balance(ALICE) == 1_000


def test_payout_id_too_long_to_derive_ids_from_is_refused(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 1_000)
    with pytest.raises(InvalidInputError, match=r"payout_id must be 1\.\.96"):
        ledger.request_payout("p" * 97, ALICE, "0.0.1001", 1)
    assert ledger.balance(ALICE) == 1_000


def test_payout_beyond_balance_is_refused(ledger: Ledger) -> None:
    funded_player(ledger, "alice", 100)
    with pytest.raises(InsufficientFundsError):
        ledger.request_payout("p1", ALICE, "0.0.1001", 101)
    assert ledger.run(lambda c: payouts_mod.find_payout(c, "p1")) is None


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
@pytest.mark.parametrize("payout_id", ["a\x00b", "\x00", "", "a b", "p" * 200])
def test_looking_up_an_id_no_payout_can_have_finds_nothing(
        request: pytest.FixtureRequest, db: str, payout_id: str) -> None:
    # PostgreSQL refuses a NUL in a query (a 500 behind GET /api/wallet/payouts/a%00b); SQLite
    # just finds nothing: both find nothing
    ledger: Ledger = request.getfixturevalue("ledger" if db == "sqlite" else "pg_ledger")
    assert ledger.run(lambda c: payouts_mod.find_payout(c, payout_id)) is None
    with pytest.raises(UnknownTransferError):
        ledger.get_payout(payout_id)
