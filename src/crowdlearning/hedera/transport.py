"""The contract between settlement logic and a Hedera network.

Settlement code (``crowdlearning.ledger`` side) depends only on ``HederaTransport``; the real
implementation drives ``hiero-sdk-python`` over gRPC (against the local network by default, testnet
or mainnet by settings); tests may pass an in-memory twin. Exactly-once settlement rests on this
contract:

1. ``prepare_transfer`` builds *and signs* a transfer with a client-chosen transaction id and
   returns its bytes; the caller persists them (and the id) before anything is sent.
2. ``submit`` sends those exact bytes; sending them again is safe: the network answers
   ``DUPLICATE_TRANSACTION`` for a transaction it has already seen, which counts as accepted.
3. ``get_receipt`` tells the final status of a transaction id (``None`` while unknown).
4. A transaction whose valid-start + valid-duration window has passed without a receipt can never
   execute: only then may a new transaction id be issued for the same payout.

Amounts are integer tinybars; account ids are ``shard.realm.num`` strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "HederaTransport",
    "PreparedTransaction",
    "SubmitOutcome",
    "TransferReceipt",
]


@dataclass(frozen=True)
class PreparedTransaction:
    """A signed transaction ready to send; persist ``body`` before submitting it."""

    transaction_id: str  # e.g. "0.0.2@1700000000.000000123"
    valid_start_ns: int  # epoch nanoseconds of the transaction id's valid start
    valid_duration_s: int
    body: bytes  # serialized signed Transaction protobuf


@dataclass(frozen=True)
class SubmitOutcome:
    """The node's pre-check answer to a submission."""

    transaction_id: str
    accepted: bool  # OK or DUPLICATE_TRANSACTION
    status: str  # the network's response code name, e.g. "OK", "INSUFFICIENT_PAYER_BALANCE"


@dataclass(frozen=True)
class TransferReceipt:
    """The consensus outcome of a transaction."""

    transaction_id: str
    status: str  # "SUCCESS" or the failure code name
    consensus_timestamp_ns: int | None = None


@runtime_checkable
class HederaTransport(Protocol):
    """What settlement needs from a Hedera network."""

    @property
    def treasury_account_id(self) -> str:
        """The operator account that pays rewards and receives deposits and penalties."""
        ...

    @property
    def max_transfers_per_transaction(self) -> int:
        """Limit on balance adjustments in one hbar transfer list (10 on the real network)."""
        ...

    def prepare_transfer(
        self, transfers: dict[str, int], *, memo: str = ""
    ) -> PreparedTransaction:
        """Sign a CryptoTransfer; ``transfers`` maps account id -> tinybars and sums to zero."""
        ...

    def submit(self, prepared: PreparedTransaction) -> SubmitOutcome:
        """Send the signed bytes (safe to repeat)."""
        ...

    def get_receipt(self, transaction_id: str) -> TransferReceipt | None:
        """The final outcome, or ``None`` if the network does not know the transaction (yet)."""
        ...

    def account_balance(self, account_id: str) -> int:
        """Current balance in tinybars."""
        ...

    def account_public_key(self, account_id: str) -> str | None:
        """The DER hex of the one public key that controls ``account_id`` (the key the network
        demands signatures from), or ``None`` when it is controlled otherwise (a key list, a
        threshold key, a contract). Raises ``HederaRequestError`` for an unknown account."""
        ...

    def publish_audit(self, message: bytes) -> str:
        """Publish ``message`` to the audit topic (HCS); return the transaction id."""
        ...
