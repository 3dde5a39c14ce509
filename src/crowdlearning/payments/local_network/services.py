"""gRPC services of the local node, built on the SDK's own generated service definitions.

Implemented: CryptoService ``createAccount``, ``cryptoTransfer``, ``cryptoGetBalance``,
``getAccountInfo`` (paid), ``getTransactionReceipts``, ``getTxRecordByTxID`` (paid);
ConsensusService ``createTopic``, ``submitMessage``. Every other method answers gRPC
``UNIMPLEMENTED`` (the generated default).
"""

from __future__ import annotations

import grpc
from hiero_sdk_python.hapi.services import (
    basic_types_pb2,
    consensus_service_pb2_grpc,
    crypto_get_account_balance_pb2,
    crypto_get_info_pb2,
    crypto_service_pb2_grpc,
    query_header_pb2,
    query_pb2,
    response_header_pb2,
    response_pb2,
    transaction_get_receipt_pb2,
    transaction_get_record_pb2,
    transaction_pb2,
    transaction_response_pb2,
)

from .fees import ACCOUNT_INFO_QUERY_COST_TINYBAR, RECORD_QUERY_COST_TINYBAR
from .ids import account_key, transaction_id_key
from .network import LocalNetwork
from .records import code, receipt_proto, record_proto
from .submission import decode_transaction

__all__ = ["ConsensusService", "CryptoService", "add_services"]

TxResponse = transaction_response_pb2.TransactionResponse


def _submit(network: LocalNetwork, request: transaction_pb2.Transaction) -> TxResponse:
    return TxResponse(nodeTransactionPrecheckCode=code(network.submit(request)))


def _header(status: str, response_type: int, cost: int = 0) -> response_header_pb2.ResponseHeader:
    return response_header_pb2.ResponseHeader(
        nodeTransactionPrecheckCode=code(status), responseType=response_type, cost=cost
    )


class CryptoService(crypto_service_pb2_grpc.CryptoServiceServicer):
    """Accounts, hbar transfers, balances, receipts and records."""

    def __init__(self, network: LocalNetwork) -> None:
        self._network = network

    def createAccount(  # noqa: N802 - gRPC method name
        self, request: transaction_pb2.Transaction, context: grpc.ServicerContext
    ) -> TxResponse:
        return _submit(self._network, request)

    def cryptoTransfer(  # noqa: N802 - gRPC method name
        self, request: transaction_pb2.Transaction, context: grpc.ServicerContext
    ) -> TxResponse:
        return _submit(self._network, request)

    def cryptoGetBalance(  # noqa: N802 - gRPC method name
        self, request: query_pb2.Query, context: grpc.ServicerContext
    ) -> response_pb2.Response:
        query = request.cryptogetAccountBalance
        balance = self._network.balance(account_key(query.accountID))
        answer = crypto_get_account_balance_pb2.CryptoGetAccountBalanceResponse(
            header=_header(
                "OK" if balance is not None else "INVALID_ACCOUNT_ID", query.header.responseType
            ),
            accountID=query.accountID,
            balance=balance or 0,
        )
        return response_pb2.Response(cryptogetAccountBalance=answer)

    def getAccountInfo(  # noqa: N802 - gRPC method name
        self, request: query_pb2.Query, context: grpc.ServicerContext
    ) -> response_pb2.Response:
        """The account's key, balance and memo (the fields the local network keeps)."""
        query = request.cryptoGetInfo
        account_id = account_key(query.accountID)
        status = self._paid_query_status(query.header, ACCOUNT_INFO_QUERY_COST_TINYBAR)
        key = self._network.account_key(account_id)
        if status == "OK" and key is None:
            status = "INVALID_ACCOUNT_ID"
        answer = crypto_get_info_pb2.CryptoGetInfoResponse(
            header=_header(status, query.header.responseType, cost=ACCOUNT_INFO_QUERY_COST_TINYBAR)
        )
        if status == "OK" and key is not None and query.header.responseType == _ANSWER_ONLY:
            info = answer.accountInfo
            info.accountID.CopyFrom(query.accountID)
            info.key.CopyFrom(basic_types_pb2.Key.FromString(key))
            info.balance = self._network.balance(account_id) or 0
            info.memo = self._network.account_memo(account_id)
        return response_pb2.Response(cryptoGetInfo=answer)

    def getTransactionReceipts(  # noqa: N802 - gRPC method name
        self, request: query_pb2.Query, context: grpc.ServicerContext
    ) -> response_pb2.Response:
        query = request.transactionGetReceipt
        tx_id = transaction_id_key(query.transactionID)
        outcome = self._network.receipt_outcome(tx_id)
        pending = outcome is None and self._network.is_pending(tx_id)
        found = outcome is not None or pending
        answer = transaction_get_receipt_pb2.TransactionGetReceiptResponse(
            header=_header("OK" if found else "RECEIPT_NOT_FOUND", query.header.responseType)
        )
        if outcome is not None:
            answer.receipt.CopyFrom(receipt_proto(outcome))
        elif pending:  # admitted, consensus not reached yet
            answer.receipt.status = code("UNKNOWN")
        return response_pb2.Response(transactionGetReceipt=answer)

    def getTxRecordByTxID(  # noqa: N802 - gRPC method name
        self, request: query_pb2.Query, context: grpc.ServicerContext
    ) -> response_pb2.Response:
        query = request.transactionGetRecord
        status = self._paid_query_status(query.header, RECORD_QUERY_COST_TINYBAR)
        outcome = self._network.receipt_outcome(transaction_id_key(query.transactionID))
        if status == "OK" and outcome is None:
            status = "RECORD_NOT_FOUND"
        answer = transaction_get_record_pb2.TransactionGetRecordResponse(
            header=_header(status, query.header.responseType, cost=RECORD_QUERY_COST_TINYBAR)
        )
        if status == "OK" and outcome is not None and query.header.responseType == _ANSWER_ONLY:
            answer.transactionRecord.CopyFrom(record_proto(outcome))
        return response_pb2.Response(transactionGetRecord=answer)

    def _paid_query_status(self, header: query_header_pb2.QueryHeader, cost: int) -> str:
        """Cost questions are free; an answer needs a payment of at least the cost to the node."""
        if header.responseType != _ANSWER_ONLY:
            return "OK"
        paid = _payment_to_node(header.payment, self._network.node_account_id)
        if paid < cost:
            return "INSUFFICIENT_TX_FEE"
        return self._network.submit(header.payment)


_ANSWER_ONLY = query_header_pb2.ResponseType.ANSWER_ONLY


def _payment_to_node(payment: transaction_pb2.Transaction, node_account_id: str) -> int:
    """Tinybars a query payment credits to the node (0 if it is not a transfer)."""
    sub = decode_transaction(payment)
    if sub is None or sub.body_type != "cryptoTransfer":
        return 0
    amounts = sub.body.cryptoTransfer.transfers.accountAmounts
    return sum(a.amount for a in amounts if account_key(a.accountID) == node_account_id)


class ConsensusService(consensus_service_pb2_grpc.ConsensusServiceServicer):
    """HCS topics: create and submit messages."""

    def __init__(self, network: LocalNetwork) -> None:
        self._network = network

    def createTopic(  # noqa: N802 - gRPC method name
        self, request: transaction_pb2.Transaction, context: grpc.ServicerContext
    ) -> TxResponse:
        return _submit(self._network, request)

    def submitMessage(  # noqa: N802 - gRPC method name
        self, request: transaction_pb2.Transaction, context: grpc.ServicerContext
    ) -> TxResponse:
        return _submit(self._network, request)


def add_services(server: grpc.Server, network: LocalNetwork) -> None:
    """Register the local node's services on ``server``."""
    crypto_service_pb2_grpc.add_CryptoServiceServicer_to_server(CryptoService(network), server)
    consensus_service_pb2_grpc.add_ConsensusServiceServicer_to_server(
        ConsensusService(network), server
    )
