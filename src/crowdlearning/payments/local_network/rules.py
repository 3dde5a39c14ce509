"""The network rules the local network enforces, as one frozen record (real-network values)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NetworkRules"]


@dataclass(frozen=True)
class NetworkRules:
    """Limits checked at pre-check and at consensus; defaults are the real network's."""

    node_account_id: str = "0.0.3"
    max_transfer_list_size: int = 10  # hbar balance adjustments in one CryptoTransfer
    min_valid_duration_s: int = 15
    max_valid_duration_s: int = 180
    min_validity_buffer_s: int = 10  # a transaction must stay valid this long after arrival [s]
    max_memo_bytes: int = 100
    max_message_bytes: int = 1024  # one HCS message chunk [bytes]

    def __post_init__(self) -> None:
        if self.max_transfer_list_size < 2:
            raise ValueError(f"max_transfer_list_size={self.max_transfer_list_size} must be >= 2")
        if not 0 < self.min_valid_duration_s <= self.max_valid_duration_s:
            raise ValueError(
                f"valid duration bounds [{self.min_valid_duration_s}, "
                f"{self.max_valid_duration_s}] s are not an interval of positive seconds"
            )
