"""Turning stored outcomes into the receipt and record protobufs the SDK reads."""

from __future__ import annotations

from hiero_sdk_python.hapi.services import (
    basic_types_pb2,
    response_code_pb2,
    transaction_receipt_pb2,
    transaction_record_pb2,
)

from .ids import account_proto, timestamp_proto, topic_proto, transaction_id_proto
from .state import Outcome

__all__ = ["code", "receipt_proto", "record_proto"]

_RUNNING_HASH_VERSION = 3


def code(name: str) -> int:
    """The ``ResponseCodeEnum`` value of a response code name."""
    return response_code_pb2.ResponseCodeEnum.Value(name)


def receipt_proto(outcome: Outcome) -> transaction_receipt_pb2.TransactionReceipt:
    receipt = transaction_receipt_pb2.TransactionReceipt(status=code(outcome.status))
    if outcome.created_account:
        receipt.accountID.CopyFrom(account_proto(outcome.created_account))
    if outcome.created_topic:
        receipt.topicID.CopyFrom(topic_proto(outcome.created_topic))
    if outcome.topic_sequence_number:
        receipt.topicSequenceNumber = outcome.topic_sequence_number
        receipt.topicRunningHash = outcome.topic_running_hash
        receipt.topicRunningHashVersion = _RUNNING_HASH_VERSION
    return receipt


def record_proto(outcome: Outcome) -> transaction_record_pb2.TransactionRecord:
    amounts = [
        basic_types_pb2.AccountAmount(accountID=account_proto(account_id), amount=amount)
        for account_id, amount in outcome.transfers
    ]
    return transaction_record_pb2.TransactionRecord(
        receipt=receipt_proto(outcome),
        transactionHash=outcome.transaction_hash,
        consensusTimestamp=timestamp_proto(outcome.consensus_ns),
        transactionID=transaction_id_proto(outcome.transaction_id),
        memo=outcome.memo,
        transactionFee=outcome.fee_tinybar,
        transferList=basic_types_pb2.TransferList(accountAmounts=amounts),
    )
