"""Entity ids and transaction ids of the local network, as strings and as protobufs.

Account, topic and transaction ids are kept as ``shard.realm.num`` strings and
``payer@seconds.nanos`` strings (nanos zero-padded to 9 digits) so that state is plain data.
"""

from __future__ import annotations

from hiero_sdk_python.hapi.services import basic_types_pb2, timestamp_pb2

__all__ = [
    "account_key",
    "account_proto",
    "format_transaction_id",
    "timestamp_ns",
    "timestamp_proto",
    "topic_key",
    "topic_proto",
    "transaction_id_key",
    "transaction_id_proto",
]

_NS_PER_S = 1_000_000_000


def account_key(account: basic_types_pb2.AccountID) -> str:
    """``shard.realm.num`` of an AccountID protobuf."""
    return f"{account.shardNum}.{account.realmNum}.{account.accountNum}"


def account_proto(account_id: str) -> basic_types_pb2.AccountID:
    shard, realm, num = (int(part) for part in account_id.split("."))
    return basic_types_pb2.AccountID(shardNum=shard, realmNum=realm, accountNum=num)


def topic_key(topic: basic_types_pb2.TopicID) -> str:
    return f"{topic.shardNum}.{topic.realmNum}.{topic.topicNum}"


def topic_proto(topic_id: str) -> basic_types_pb2.TopicID:
    shard, realm, num = (int(part) for part in topic_id.split("."))
    return basic_types_pb2.TopicID(shardNum=shard, realmNum=realm, topicNum=num)


def timestamp_ns(stamp: timestamp_pb2.Timestamp) -> int:
    return stamp.seconds * _NS_PER_S + stamp.nanos


def timestamp_proto(epoch_ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=epoch_ns // _NS_PER_S, nanos=epoch_ns % _NS_PER_S)


def format_transaction_id(payer: str, valid_start_ns: int) -> str:
    """``payer@seconds.nanos`` with nanos zero-padded, e.g. ``0.0.2@1700000000.000000123``."""
    seconds, nanos = divmod(valid_start_ns, _NS_PER_S)
    return f"{payer}@{seconds}.{nanos:09d}"


def transaction_id_key(tx_id: basic_types_pb2.TransactionID) -> str:
    """The string key of a TransactionID protobuf (scheduled and nonce ids get a suffix)."""
    key = format_transaction_id(
        account_key(tx_id.accountID), timestamp_ns(tx_id.transactionValidStart)
    )
    if tx_id.scheduled:
        key += "?scheduled"
    if tx_id.nonce:
        key += f"/{tx_id.nonce}"
    return key


def transaction_id_proto(tx_id: str) -> basic_types_pb2.TransactionID:
    """Parse ``payer@seconds.nanos``; raises ``ValueError`` on a malformed id."""
    payer, _, start = tx_id.partition("@")
    seconds, _, nanos = start.partition(".")
    if not payer or not seconds or not nanos:
        raise ValueError(f"malformed transaction id {tx_id!r}: expected payer@seconds.nanos")
    stamp = timestamp_pb2.Timestamp(seconds=int(seconds), nanos=int(nanos))
    return basic_types_pb2.TransactionID(
        accountID=account_proto(payer), transactionValidStart=stamp
    )
