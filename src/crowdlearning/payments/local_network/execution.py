"""Consensus: applying an admitted transaction to the state and recording its outcome.

The fee is charged to the payer first (if, by consensus time, the payer can no longer pay it, e.g.
after other pending transactions, the outcome is ``INSUFFICIENT_PAYER_BALANCE`` and nothing moves);
then the body's handler checks what needs state (other signers, balances, entity ids, list sizes)
and either applies its effect or fails with a status, changing nothing else.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from hiero_sdk_python.hapi.services import basic_types_pb2

from .fees import fee_for
from .ids import account_key, topic_key, transaction_id_key
from .keys import is_supported_key, key_is_satisfied
from .rules import NetworkRules
from .state import Account, NetworkState, Outcome, Topic, TopicMessage
from .submission import Submission

__all__ = ["execute"]

_RUNNING_HASH_VERSION = 3


@dataclass
class _Effect:
    """What a handler did: a status, hbar deltas, and ids/values the receipt reports."""

    status: str
    deltas: dict[str, int] = field(default_factory=dict)
    created_account: str | None = None
    created_topic: str | None = None
    topic_sequence_number: int = 0
    topic_running_hash: bytes = b""


@dataclass(frozen=True)
class _Context:
    sub: Submission
    state: NetworkState
    rules: NetworkRules
    payer: str
    consensus_ns: int

    def signed_by(self, key_bytes: bytes) -> bool:
        key = basic_types_pb2.Key.FromString(key_bytes)
        return key_is_satisfied(key, self.sub.sig_map, self.sub.body_bytes)


def execute(
    sub: Submission, state: NetworkState, rules: NetworkRules, consensus_ns: int
) -> Outcome:
    """Charge the fee, run the body's handler, store and return the outcome."""
    payer = account_key(sub.body.transactionID.accountID)
    fee = fee_for(sub.body_type) or 0
    if state.accounts[payer].balance_tinybar < fee:
        effect, fee = _Effect("INSUFFICIENT_PAYER_BALANCE"), 0
    else:
        _apply(state, {payer: -fee, rules.node_account_id: fee})
        effect = _HANDLERS[sub.body_type](_Context(sub, state, rules, payer, consensus_ns))
    if effect.status == "SUCCESS":
        _apply(state, effect.deltas)
    outcome = _outcome(sub, payer, fee, effect, consensus_ns, rules.node_account_id)
    state.outcomes[outcome.transaction_id] = outcome
    state.last_consensus_ns = consensus_ns
    return outcome


def _apply(state: NetworkState, deltas: dict[str, int]) -> None:
    for account_id, delta in deltas.items():
        state.accounts[account_id].balance_tinybar += delta


def _outcome(
    sub: Submission, payer: str, fee: int, effect: _Effect, consensus_ns: int, node: str
) -> Outcome:
    net = dict.fromkeys((payer, node), 0)
    net[payer] -= fee
    net[node] += fee
    if effect.status == "SUCCESS":
        for account_id, delta in effect.deltas.items():
            net[account_id] = net.get(account_id, 0) + delta
    return Outcome(
        transaction_id=transaction_id_key(sub.body.transactionID),
        status=effect.status,
        consensus_ns=consensus_ns,
        body_type=sub.body_type,
        payer=payer,
        fee_tinybar=fee,
        transfers=tuple((a, d) for a, d in net.items() if d != 0),
        memo=sub.body.memo,
        transaction_hash=sub.transaction_hash,
        created_account=effect.created_account,
        created_topic=effect.created_topic,
        topic_sequence_number=effect.topic_sequence_number,
        topic_running_hash=effect.topic_running_hash,
    )


def _crypto_transfer(ctx: _Context) -> _Effect:
    amounts = ctx.sub.body.cryptoTransfer.transfers.accountAmounts
    if len(amounts) > ctx.rules.max_transfer_list_size:
        return _Effect("TRANSFER_LIST_SIZE_LIMIT_EXCEEDED")
    deltas = {account_key(a.accountID): a.amount for a in amounts}
    accounts = ctx.state.accounts
    if any(account_id not in accounts for account_id in deltas):
        return _Effect("INVALID_ACCOUNT_ID")
    if not all(_transfer_signed(ctx, account_id, delta) for account_id, delta in deltas.items()):
        return _Effect("INVALID_SIGNATURE")
    if any(accounts[a].balance_tinybar + d < 0 for a, d in deltas.items()):
        return _Effect("INSUFFICIENT_ACCOUNT_BALANCE")
    return _Effect("SUCCESS", deltas)


def _transfer_signed(ctx: _Context, account_id: str, delta: int) -> bool:
    account = ctx.state.accounts[account_id]
    must_sign = delta < 0 or (delta > 0 and account.receiver_sig_required)
    return not must_sign or ctx.signed_by(account.key)


def _create_account(ctx: _Context) -> _Effect:
    create = ctx.sub.body.cryptoCreateAccount
    if not is_supported_key(create.key):
        return _Effect("BAD_ENCODING")
    if ctx.state.accounts[ctx.payer].balance_tinybar < create.initialBalance:
        return _Effect("INSUFFICIENT_PAYER_BALANCE")
    account_id = ctx.state.new_entity_id()
    ctx.state.accounts[account_id] = Account(
        key=create.key.SerializeToString(),
        balance_tinybar=0,
        receiver_sig_required=create.receiverSigRequired,
        memo=create.memo,
    )
    deltas = {ctx.payer: -create.initialBalance, account_id: create.initialBalance}
    return _Effect("SUCCESS", deltas, created_account=account_id)


def _create_topic(ctx: _Context) -> _Effect:
    create = ctx.sub.body.consensusCreateTopic
    keys = [k for k in (create.adminKey, create.submitKey) if k.WhichOneof("key")]
    if not all(map(is_supported_key, keys)):
        return _Effect("BAD_ENCODING")
    admin = create.adminKey.SerializeToString() if create.HasField("adminKey") else b""
    if admin and not ctx.signed_by(admin):
        return _Effect("INVALID_SIGNATURE")
    topic_id = ctx.state.new_entity_id()
    submit = create.submitKey.SerializeToString() if create.HasField("submitKey") else b""
    ctx.state.topics[topic_id] = Topic(memo=create.memo, admin_key=admin, submit_key=submit)
    return _Effect("SUCCESS", created_topic=topic_id)


def _submit_message(ctx: _Context) -> _Effect:
    submit = ctx.sub.body.consensusSubmitMessage
    topic_id = topic_key(submit.topicID)
    topic = ctx.state.topics.get(topic_id)
    if topic is None:
        return _Effect("INVALID_TOPIC_ID")
    if topic.submit_key and not ctx.signed_by(topic.submit_key):
        return _Effect("INVALID_SIGNATURE")
    topic.sequence_number += 1
    topic.running_hash = _running_hash(topic, topic_id, ctx, submit.message)
    topic.messages.append(
        TopicMessage(
            sequence_number=topic.sequence_number,
            consensus_ns=ctx.consensus_ns,
            message=bytes(submit.message),
            running_hash=topic.running_hash,
            payer=ctx.payer,
            transaction_id=transaction_id_key(ctx.sub.body.transactionID),
        )
    )
    return _Effect(
        "SUCCESS",
        topic_sequence_number=topic.sequence_number,
        topic_running_hash=topic.running_hash,
    )


def _running_hash(topic: Topic, topic_id: str, ctx: _Context, message: bytes) -> bytes:
    """SHA-384 chain over the previous hash, payer, topic, consensus time, sequence and message."""
    entity_nums = [int(p) for p in ctx.payer.split(".")] + [int(p) for p in topic_id.split(".")]
    seconds, nanos = divmod(ctx.consensus_ns, 1_000_000_000)
    header = struct.pack(
        ">q6qqiq", _RUNNING_HASH_VERSION, *entity_nums, seconds, nanos, topic.sequence_number
    )
    return hashlib.sha384(topic.running_hash + header + hashlib.sha384(message).digest()).digest()


_HANDLERS: dict[str, Callable[[_Context], _Effect]] = {
    "cryptoTransfer": _crypto_transfer,
    "cryptoCreateAccount": _create_account,
    "consensusCreateTopic": _create_topic,
    "consensusSubmitMessage": _submit_message,
}
