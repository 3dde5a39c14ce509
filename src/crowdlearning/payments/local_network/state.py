"""The local network's ledger state: accounts, topics and transaction outcomes.

Everything is plain data so that it can be saved as one JSON snapshot and loaded back
(``journal.py`` adds the per-transaction journal)::

    {"version": 1, "next_entity_num": 1002, "last_consensus_ns": ...,
     "accounts": {"0.0.2": {"key": "<Key protobuf hex>", "balance_tinybar": ..., ...}},
     "topics": {"0.0.1002": {"submit_key": "...", "sequence_number": 3, "messages": [...]}},
     "outcomes": {"0.0.1001@1700000000.000000123": {"status": "SUCCESS", ...}},
     "dev_keys": {"0.0.1001": "<DER private key hex>"}}

``dev_keys`` holds the generated development keys (never use such a file outside development).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["Account", "NetworkState", "Outcome", "Topic", "TopicMessage"]

_VERSION = 1


@dataclass
class Account:
    """A crypto account: its key (serialized ``Key`` protobuf) and its balance."""

    key: bytes
    balance_tinybar: int
    receiver_sig_required: bool = False
    memo: str = ""


@dataclass(frozen=True)
class TopicMessage:
    """One message in a topic, as the mirror node would serve it."""

    sequence_number: int
    consensus_ns: int
    message: bytes
    running_hash: bytes
    payer: str
    transaction_id: str


@dataclass
class Topic:
    """An HCS topic: keys, running hash and its messages."""

    memo: str = ""
    admin_key: bytes = b""
    submit_key: bytes = b""
    sequence_number: int = 0
    running_hash: bytes = bytes(48)
    messages: list[TopicMessage] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """The consensus result of one transaction: what its receipt and record report."""

    transaction_id: str
    status: str  # response code name, e.g. "SUCCESS"
    consensus_ns: int
    body_type: str  # TransactionBody "data" oneof, e.g. "cryptoTransfer"
    payer: str
    fee_tinybar: int
    transfers: tuple[tuple[str, int], ...]  # net hbar change per account, fee included
    memo: str = ""
    transaction_hash: bytes = b""
    created_account: str | None = None
    created_topic: str | None = None
    topic_sequence_number: int = 0
    topic_running_hash: bytes = b""


@dataclass
class NetworkState:
    """All mutable state of the local network."""

    accounts: dict[str, Account] = field(default_factory=dict)
    topics: dict[str, Topic] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    dev_keys: dict[str, str] = field(default_factory=dict)
    next_entity_num: int = 1001
    last_consensus_ns: int = 0

    def new_entity_id(self) -> str:
        """Allocate the next ``0.0.num`` (accounts and topics share one sequence)."""
        num = self.next_entity_num
        self.next_entity_num += 1
        return f"0.0.{num}"

    def save(self, path: Path) -> None:
        """Write the state atomically (temporary file, then rename)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(_to_plain(self), separators=(",", ":")))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> NetworkState:
        plain = json.loads(path.read_text())
        if plain.get("version") != _VERSION:
            raise ValueError(f"{path}: unsupported state version {plain.get('version')!r}")
        return cls(
            accounts={k: _from_plain(Account, v) for k, v in plain["accounts"].items()},
            topics={k: _topic_from_plain(v) for k, v in plain["topics"].items()},
            outcomes={k: _outcome_from_plain(v) for k, v in plain["outcomes"].items()},
            dev_keys=dict(plain["dev_keys"]),
            next_entity_num=int(plain["next_entity_num"]),
            last_consensus_ns=int(plain["last_consensus_ns"]),
        )


def _to_plain(state: NetworkState) -> dict[str, Any]:
    plain = _hexify(asdict(state))
    plain["version"] = _VERSION
    return plain


def _hexify(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _hexify(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hexify(v) for v in value]
    return value


def _from_plain(kind: type, plain: dict[str, Any]) -> Any:
    """Build dataclass ``kind`` from JSON, turning hex back into bytes where the field is bytes."""
    values = {}
    for f in fields(kind):
        raw = plain.get(f.name)
        values[f.name] = bytes.fromhex(raw) if f.type == "bytes" and raw is not None else raw
    return kind(**{k: v for k, v in values.items() if v is not None or k in plain})


def _topic_from_plain(plain: dict[str, Any]) -> Topic:
    topic = _from_plain(Topic, {**plain, "messages": []})
    topic.messages = [_from_plain(TopicMessage, m) for m in plain["messages"]]
    return topic


def _outcome_from_plain(plain: dict[str, Any]) -> Outcome:
    transfers = tuple((str(account), int(amount)) for account, amount in plain["transfers"])
    return _from_plain(Outcome, {**plain, "transfers": transfers})
