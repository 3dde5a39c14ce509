"""Frozen records the ledger reads and writes; each validates itself at construction."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from crowdlearning.ledger.errors import InvalidInputError
from crowdlearning.ledger.validation import INT64_MAX, check_amount, check_identifier

__all__ = ["Leg", "Transfer", "TransferKind", "TransferSpec"]


class TransferKind(StrEnum):
    """``single`` moves money at once; ``pending`` reserves it until a ``post`` or ``void``."""

    SINGLE = "single"
    PENDING = "pending"
    POST = "post"
    VOID = "void"


@dataclass(frozen=True)
class Leg:
    """One signed movement: positive puts tinybars into ``account``, negative takes them out."""

    account: str
    amount_tinybar: int

    def __post_init__(self) -> None:
        amount = self.amount_tinybar
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
            raise InvalidInputError(f"leg amount must be a non-zero integer, got {amount!r}")
        if abs(amount) > INT64_MAX:
            raise InvalidInputError(f"leg amount out of int64 range: {amount}")


@dataclass(frozen=True)
class TransferSpec:
    """What a client asks to post: ``id`` is its idempotency key; legs sum to zero."""

    id: str
    legs: tuple[Leg, ...]
    kind: TransferKind = TransferKind.SINGLE
    pending_id: str | None = None
    memo: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.id, what="transfer id")
        if len(self.legs) < 2:
            raise InvalidInputError(
                f"transfer {self.id} needs at least two legs, got {len(self.legs)}"
            )
        if sum(leg.amount_tinybar for leg in self.legs) != 0:
            raise InvalidInputError(f"legs of transfer {self.id} do not sum to zero: {self.legs}")
        if len({leg.account for leg in self.legs}) != len(self.legs):
            raise InvalidInputError(f"transfer {self.id} names an account twice: {self.legs}")
        check_amount(self.amount_tinybar, what=f"amount of transfer {self.id}")
        if (self.kind in (TransferKind.POST, TransferKind.VOID)) != (self.pending_id is not None):
            raise InvalidInputError(
                f"only post/void transfers name a pending_id (transfer {self.id})"
            )
        if len(self.memo) > 256:
            raise InvalidInputError(f"memo longer than 256 characters (transfer {self.id})")

    @classmethod
    def move(
        cls,
        id: str,
        from_account: str,
        to_account: str,
        amount_tinybar: int,
        *,
        kind: TransferKind = TransferKind.SINGLE,
        pending_id: str | None = None,
        memo: str = "",
    ) -> TransferSpec:
        """A two-leg transfer of ``amount_tinybar`` from one account to another."""
        check_amount(amount_tinybar)
        legs = (Leg(from_account, -amount_tinybar), Leg(to_account, amount_tinybar))
        return cls(id=id, legs=legs, kind=kind, pending_id=pending_id, memo=memo)

    @property
    def amount_tinybar(self) -> int:
        """The total moved: the sum of the positive legs."""
        return sum(leg.amount_tinybar for leg in self.legs if leg.amount_tinybar > 0)

    def same_content(self, other: TransferSpec) -> bool:
        """Whether ``other`` asks for exactly this transfer (legs compared as a set)."""
        return (
            set(self.legs) == set(other.legs)
            and self.kind == other.kind
            and self.pending_id == other.pending_id
            and self.memo == other.memo
        )


@dataclass(frozen=True)
class Transfer:
    """A posted, immutable transfer as stored."""

    spec: TransferSpec
    created_at_ns: int

    @property
    def id(self) -> str:
        """The client-chosen id."""
        return self.spec.id

    @property
    def amount_tinybar(self) -> int:
        """The total moved."""
        return self.spec.amount_tinybar

    def leg_for(self, account: str) -> int:
        """The signed amount this transfer moved into ``account`` (0 if it did not touch it)."""
        return sum(leg.amount_tinybar for leg in self.spec.legs if leg.account == account)
