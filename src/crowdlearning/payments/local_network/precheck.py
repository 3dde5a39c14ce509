"""Pre-check: what a node verifies before a transaction is admitted to consensus.

A transaction that fails here is not charged and leaves no receipt; its answer is the
``nodeTransactionPrecheckCode`` of the gRPC response. The order follows the real ingest checks:
encoding, transaction id, node, memo, validity window, duplicate, payer (exists, signed, can pay
the fee), then the checks that need no state ("pure checks") of the body.
"""

from __future__ import annotations

from collections.abc import Callable

from hiero_sdk_python.hapi.services import basic_types_pb2

from .fees import fee_for
from .ids import account_key, timestamp_ns, transaction_id_key
from .keys import key_is_satisfied
from .rules import NetworkRules
from .state import NetworkState
from .submission import Submission

__all__ = ["precheck"]

_NS_PER_S = 1_000_000_000


def precheck(sub: Submission, state: NetworkState, rules: NetworkRules, now_ns: int) -> str:
    """The pre-check code of a decoded submission: ``"OK"`` or the first rule it breaks."""
    for check in (_check_header, _check_window, _check_duplicate, _check_payer, _check_body):
        code = check(sub, state, rules, now_ns)
        if code != "OK":
            return code
    return "OK"


def _check_header(sub: Submission, _s: NetworkState, rules: NetworkRules, _now: int) -> str:
    body = sub.body
    if not body.HasField("transactionID") or not body.transactionID.HasField("accountID"):
        return "INVALID_TRANSACTION_ID"
    if account_key(body.nodeAccountID) != rules.node_account_id:
        return "INVALID_NODE_ACCOUNT"
    if len(body.memo.encode()) > rules.max_memo_bytes:
        return "MEMO_TOO_LONG"
    if fee_for(sub.body_type) is None:
        return "NOT_SUPPORTED"
    return "OK"


def _check_window(sub: Submission, _s: NetworkState, rules: NetworkRules, now_ns: int) -> str:
    duration_s = sub.body.transactionValidDuration.seconds
    if not rules.min_valid_duration_s <= duration_s <= rules.max_valid_duration_s:
        return "INVALID_TRANSACTION_DURATION"
    start_ns = timestamp_ns(sub.body.transactionID.transactionValidStart)
    expiry_ns = start_ns + (duration_s - rules.min_validity_buffer_s) * _NS_PER_S
    if expiry_ns < now_ns:
        return "TRANSACTION_EXPIRED"
    if start_ns > now_ns:
        return "INVALID_TRANSACTION_START"
    return "OK"


def _check_duplicate(sub: Submission, state: NetworkState, _r: NetworkRules, _now: int) -> str:
    seen = transaction_id_key(sub.body.transactionID) in state.outcomes
    return "DUPLICATE_TRANSACTION" if seen else "OK"


def _check_payer(sub: Submission, state: NetworkState, _r: NetworkRules, _now: int) -> str:
    payer = state.accounts.get(account_key(sub.body.transactionID.accountID))
    if payer is None:
        return "PAYER_ACCOUNT_NOT_FOUND"
    key = basic_types_pb2.Key.FromString(payer.key)
    if not key_is_satisfied(key, sub.sig_map, sub.body_bytes):
        return "INVALID_SIGNATURE"
    fee = fee_for(sub.body_type) or 0
    if sub.body.transactionFee < fee:
        return "INSUFFICIENT_TX_FEE"
    if payer.balance_tinybar < fee:
        return "INSUFFICIENT_PAYER_BALANCE"
    return "OK"


def _check_body(sub: Submission, _s: NetworkState, rules: NetworkRules, _now: int) -> str:
    pure = _PURE_CHECKS.get(sub.body_type)
    return pure(sub, rules) if pure else "OK"


def _pure_transfer(sub: Submission, _rules: NetworkRules) -> str:
    transfer = sub.body.cryptoTransfer
    if transfer.tokenTransfers:
        return "NOT_SUPPORTED"
    amounts = transfer.transfers.accountAmounts
    if any(a.is_approval for a in amounts):
        return "NOT_SUPPORTED"
    accounts = [account_key(a.accountID) for a in amounts]
    if len(set(accounts)) != len(accounts):
        return "ACCOUNT_REPEATED_IN_ACCOUNT_AMOUNTS"
    if sum(a.amount for a in amounts) != 0:
        return "INVALID_ACCOUNT_AMOUNTS"
    return "OK"


def _pure_create_account(sub: Submission, _rules: NetworkRules) -> str:
    create = sub.body.cryptoCreateAccount
    if not create.HasField("key"):
        return "KEY_REQUIRED"
    return "INVALID_INITIAL_BALANCE" if create.initialBalance < 0 else "OK"


def _pure_submit_message(sub: Submission, rules: NetworkRules) -> str:
    message = sub.body.consensusSubmitMessage.message
    if not message:
        return "INVALID_TOPIC_MESSAGE"
    return "MESSAGE_SIZE_TOO_LARGE" if len(message) > rules.max_message_bytes else "OK"


_PURE_CHECKS: dict[str, Callable[[Submission, NetworkRules], str]] = {
    "cryptoTransfer": _pure_transfer,
    "cryptoCreateAccount": _pure_create_account,
    "consensusSubmitMessage": _pure_submit_message,
}
