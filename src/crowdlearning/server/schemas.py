"""Request (``...Create``) and response (``...Public``) bodies of the HTTP API."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from crowdlearning.http_guard import ErrorPublic, StrictBody, Tinybar
from crowdlearning.ledger.validation import check_hedera_account_id

__all__ = [
    "AmountCreate",
    "ChallengePublic",
    "ErrorPublic",
    "HederaLinkCreate",
    "HistoryPublic",
    "LeaderboardPublic",
    "ModelPublic",
    "RunPublic",
    "SessionPublic",
    "TransferPublic",
    "UserCreate",
    "UserPublic",
    "WalletPublic",
]

# shard.realm.num as Hedera writes them: ASCII digits (``\d`` would take any script's), no
# leading zeros, each part an int64 (the network's protobuf type). At most 18 digits: every
# such number fits an int64, so the published schema admits nothing the validator then refuses
# (19 digits did: 0.9312617188106587087.0 matched the pattern and overflowed)
_ID_PART = r"(0|[1-9][0-9]{0,17})"
HederaAccountId = Annotated[
    str, Field(pattern=rf"^{_ID_PART}\.{_ID_PART}\.{_ID_PART}$", examples=["0.0.1234"]),
    AfterValidator(check_hedera_account_id)]


class _Strict(StrictBody):
    """A request body: unknown fields refused (with one error, however many)."""


USERNAME_PATTERN = r"^[A-Za-z0-9_.\-]{3,32}$"


def _plain_username(name: str) -> str:
    """The name rules in words (a regex is no message for people); never the name itself."""
    if not 3 <= len(name) <= 32:
        raise PydanticCustomError("username", "Name must be 3 to 32 characters long")
    if not re.fullmatch(USERNAME_PATTERN, name):
        raise PydanticCustomError("username", "Name may use only letters A-Z and a-z, digits "
                                              "0-9, underscore, dot and hyphen (no spaces)")
    return name


def _plain_password(password: str) -> str:
    if len(password) < 8:
        raise PydanticCustomError("password", "Password must be at least 8 characters")
    if len(password) > 256:
        raise PydanticCustomError("password", "Password must be at most 256 characters")
    return password


class UserCreate(_Strict):
    """Sign up or sign in."""

    username: Annotated[str, AfterValidator(_plain_username),
                        WithJsonSchema({"type": "string", "pattern": USERNAME_PATTERN})]
    password: Annotated[str, AfterValidator(_plain_password),
                        WithJsonSchema({"type": "string", "minLength": 8, "maxLength": 256})]


class UserPublic(BaseModel):
    id: int
    username: str
    player_id: str
    hedera_account: str | None


class SessionPublic(BaseModel):
    """A signed-in session: the token also arrives as the ``cl_session`` cookie."""

    user: UserPublic
    token: str
    token_type: Literal["bearer"] = "bearer"


class ChallengePublic(BaseModel):
    challenge: str = Field(description="Sign its UTF-8 bytes with your account's ED25519 key.")
    expires_in_s: int


class HederaLinkCreate(_Strict):
    account_id: HederaAccountId
    public_key: str = Field(pattern=r"^[0-9a-fA-F]{64,200}$",
                            description="The account key: raw ED25519 or ECDSA, or DER; hex.")
    signature: str = Field(pattern=r"^[0-9a-fA-F]{128}$", description="Of the challenge, hex.")


class AmountCreate(_Strict):
    amount_tinybar: Tinybar


class WalletPublic(BaseModel):
    available_tinybar: int
    stake_tinybar: int
    held_tinybar: int
    stake_minimum_tinybar: int
    paid_mode: bool
    hedera_account: str | None
    deposit_account: str  # send HBAR here ...
    deposit_memo: str  # ... with this memo, to have it credited


class TransferPublic(BaseModel):
    id: str
    account: str
    delta_tinybar: int
    memo: str
    created_at_ns: int


class HistoryPublic(BaseModel):
    items: list[TransferPublic]


class RunPublic(BaseModel):
    run_id: str
    track_seed: int
    mode: str
    paid: bool
    ticks: int
    decision: str
    effect_pct: float
    reward_tinybar: int
    penalty_tinybar: int
    payout_id: str | None
    audit_tx: str | None
    created_at: float
    explanation: dict | None = None  # the verdict in words (docs/protocol.md), null before it


class LeaderboardPublic(BaseModel):
    by: Literal["improvement", "earnings"]
    season: str
    rows: list[dict]


class ModelPublic(BaseModel):
    version: int
    parent_version: int | None
    champion: bool
    created_at: str
    contributions: int
    training: dict
    metrics: dict
