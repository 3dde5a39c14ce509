"""Input checks shared by the ledger, settlement and the API; they raise ``InvalidInputError``."""

from __future__ import annotations

import re

from crowdlearning.ledger.errors import InvalidInputError

__all__ = [
    "DERIVED_ID_MAX",
    "ID_MAX",
    "INT64_MAX",
    "check_amount",
    "check_hedera_account_id",
    "check_identifier",
]

INT64_MAX = 2**63 - 1  # largest amount or balance a BIGINT column (and Hedera's int64) holds
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@\-]*")
ID_MAX = 128  # transfer ids and other stored ids [chars]
DERIVED_ID_MAX = 96  # ids that other ids are derived from, e.g. payout:<id>:post [chars]
_HEDERA_ID = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


def check_amount(amount_tinybar: object, *, what: str = "amount_tinybar") -> int:
    """Return ``amount_tinybar`` if it is an int in ``1..INT64_MAX``; bools, floats refused."""
    if isinstance(amount_tinybar, bool) or not isinstance(amount_tinybar, int):
        raise InvalidInputError(
            f"{what} must be an integer number of tinybars, got {amount_tinybar!r}"
        )
    if not 0 < amount_tinybar <= INT64_MAX:
        raise InvalidInputError(f"{what} must be in 1..{INT64_MAX}, got {amount_tinybar}")
    return amount_tinybar


def check_identifier(value: object, *, what: str, max_length: int = ID_MAX) -> str:
    """Return ``value`` if it is a 1..``max_length`` char id of letters, digits and ``_.:@-``."""
    if not isinstance(value, str) or len(value) > max_length or not _IDENTIFIER.fullmatch(value):
        raise InvalidInputError(
            f"{what} must be 1..{max_length} characters of letters, digits and _.:@- "
            f"(starting with a letter or digit), got {value!r}"
        )
    return value


def check_hedera_account_id(value: object) -> str:
    """Return ``value`` if it is a ``shard.realm.num`` account id with int64 parts."""
    if not isinstance(value, str) or not _HEDERA_ID.fullmatch(value):
        raise InvalidInputError(f"Hedera account id must look like '0.0.1234', got {value!r}")
    if any(int(part) > INT64_MAX for part in value.split(".")):
        raise InvalidInputError(f"Hedera account id part out of int64 range: {value!r}")
    return value
