"""The local network's fee schedule: a fixed fee per transaction type, in tinybars.

The real network prices by resource usage and the HBAR/USD rate; a fixed schedule of the same
order of magnitude is enough to exercise "the payer pays, and must be able to" in development.
Fees are charged to the payer and credited to the node account, even when the transaction fails
at consensus (as on the real network); a transaction rejected at pre-check is not charged.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = [
    "ACCOUNT_INFO_QUERY_COST_TINYBAR",
    "FEE_SCHEDULE_TINYBAR",
    "RECORD_QUERY_COST_TINYBAR",
    "fee_for",
]

# body type (TransactionBody "data" oneof name) -> fee [tinybar]
FEE_SCHEDULE_TINYBAR = MappingProxyType(
    {
        "cryptoTransfer": 100_000,  # 0.001 HBAR
        "cryptoCreateAccount": 5_000_000,  # 0.05 HBAR
        "consensusCreateTopic": 1_000_000,  # 0.01 HBAR
        "consensusSubmitMessage": 10_000,  # 0.0001 HBAR
    }
)
RECORD_QUERY_COST_TINYBAR = 100  # answer of a TransactionGetRecord query [tinybar]
ACCOUNT_INFO_QUERY_COST_TINYBAR = 100  # answer of a CryptoGetInfo query [tinybar]


def fee_for(body_type: str) -> int | None:
    """The fee of a transaction type, or ``None`` if the local network does not support it."""
    return FEE_SCHEDULE_TINYBAR.get(body_type)
