"""Decoding a submitted ``Transaction`` protobuf into its body, signatures and hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from hiero_sdk_python.hapi.services import (
    basic_types_pb2,
    transaction_contents_pb2,
    transaction_pb2,
)

__all__ = ["MAX_TRANSACTION_BYTES", "Submission", "decode_transaction"]

MAX_TRANSACTION_BYTES = 6144  # the real network's limit on a serialized transaction [bytes]


@dataclass(frozen=True)
class Submission:
    """A decoded transaction: what was signed, the signatures, and the hash the record reports."""

    body: transaction_pb2.TransactionBody
    body_bytes: bytes
    sig_map: basic_types_pb2.SignatureMap
    transaction_hash: bytes  # SHA-384 of the signed transaction bytes
    raw: bytes  # the serialized Transaction, as journaled

    @property
    def body_type(self) -> str:
        return self.body.WhichOneof("data") or ""


def decode_transaction(transaction: transaction_pb2.Transaction) -> Submission | None:
    """Decode the signed form or the legacy (``bodyBytes``, ``sigMap``) one; None if invalid."""
    try:
        if transaction.signedTransactionBytes:
            signed = transaction_contents_pb2.SignedTransaction.FromString(
                transaction.signedTransactionBytes
            )
            body_bytes, sig_map = signed.bodyBytes, signed.sigMap
            hashed = transaction.signedTransactionBytes
        elif transaction.bodyBytes:
            body_bytes, sig_map = transaction.bodyBytes, transaction.sigMap
            hashed = transaction.SerializeToString()
        else:
            return None
        body = transaction_pb2.TransactionBody.FromString(body_bytes)
    except DecodeError:
        return None
    digest = hashlib.sha384(hashed).digest()
    return Submission(body, body_bytes, sig_map, digest, transaction.SerializeToString())
