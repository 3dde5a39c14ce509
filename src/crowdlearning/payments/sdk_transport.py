"""``HederaTransport`` over the official Python SDK (``hiero-sdk-python``).

The network is a settings choice: ``local`` (the embedded local network, see
``crowdlearning.payments.local_network``), ``testnet`` or ``mainnet``; the operator account id and
key always come from the environment (``CROWDLEARNING_HEDERA_OPERATOR_ID`` / ``_KEY``).

Errors (``crowdlearning.errors``)::

    HederaError                 a transaction reached consensus with a failure where none may fail
    ├── HederaRequestError      bad input: malformed id, amounts not summing to zero, too many legs
    └── HederaUnavailableError  no answer in time (gRPC failure, retries exhausted); retry later
        └── HederaNotSentError  ``submit`` found no node reachable and sent nothing

A pre-check rejection of ``submit`` is not an error: it is reported in ``SubmitOutcome.status``.

Outages: the SDK keeps a per-node backoff (8 s doubling to 3,600 s by default) and gRPC a
per-channel reconnect backoff (up to 120 s), so after a long outage a client could go on failing
for minutes (or an hour) once the node is back. Our callers pace their own retries (settlement
runs every few seconds), so after every network failure the transport readmits all nodes and
drops their channels (``_reset_nodes``): the next call connects afresh, and works as soon as the
network does.
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import httpx
from hiero_sdk_python import (
    AccountCreateTransaction,
    AccountId,
    AccountInfoQuery,
    Client,
    CryptoGetAccountBalanceQuery,
    Hbar,
    PrivateKey,
    PublicKey,
    TopicCreateTransaction,
    TopicId,
    TopicMessageSubmitTransaction,
    TransactionGetReceiptQuery,
    TransactionId,
    TransactionRecordQuery,
    TransferTransaction,
)
from hiero_sdk_python.exceptions import MaxAttemptsError, PrecheckError, ReceiptStatusError
from hiero_sdk_python.hapi.services import timestamp_pb2
from hiero_sdk_python.logger.log_level import LogLevel
from hiero_sdk_python.logger.logger import Logger
from hiero_sdk_python.response_code import ResponseCode
from hiero_sdk_python.transaction.transaction import Transaction

from crowdlearning.audit.network import MessageReceipt
from crowdlearning.config import Settings
from crowdlearning.errors import (
    ConfigurationError,
    HederaError,
    HederaRequestError,
    HederaUnavailableError,
)
from crowdlearning.hedera.transport import PreparedTransaction, SubmitOutcome, TransferReceipt
from crowdlearning.payments.local_network import LocalNetworkInfo

__all__ = ["HederaNotSentError", "SdkHederaTransport", "client_for_network"]

log = logging.getLogger(__name__)

_ENTITY_ID = re.compile(r"^\d{1,10}\.\d{1,10}\.\d{1,19}$")
_NS_PER_S = 1_000_000_000
VALID_START_BACKDATE_S = 5  # like the SDK: tolerate a node clock slightly behind ours [s]
MAX_MEMO_BYTES = 100
MAX_AUDIT_MESSAGE_BYTES = 1024  # one HCS chunk; audit messages are hashes
_NOT_FINAL = {"RECEIPT_NOT_FOUND", "UNKNOWN", "OK"}  # receipt answers that are not an outcome
PUBLIC_MIRRORS = {"testnet": "https://testnet.mirrornode.hedera.com/api/v1",
                  "mainnet": "https://mainnet-public.mirrornode.hedera.com/api/v1"}
SDK_NODE_MIN_BACKOFF_S = 8.0  # the SDK's own per-node backoff (hiero_sdk_python.node._Node)
SDK_NODE_MAX_BACKOFF_S = 3600.0


class HederaNotSentError(HederaUnavailableError):
    """``submit`` sent nothing: no node of the network could be connected to, so the bytes never
    left this process (the SDK was not called). Settlement relies on it: a transaction that was
    never sent can be given up as soon as its valid window is over, without asking for a receipt.
    """

    maybe_delivered = False


def client_for_network(
    network: str, *, local_address: str = "", node_account_id: str = "0.0.3"
) -> Client:
    """An SDK client (no operator yet) for ``local`` (at ``local_address``), testnet or mainnet."""
    if network == "local":
        if not local_address:
            raise ConfigurationError("hedera_network=local needs the local node's host:port")
        return Client.for_network({local_address: AccountId.from_string(node_account_id)})
    if network == "testnet":
        return Client.for_testnet()
    if network == "mainnet":
        return Client.for_mainnet()
    raise ConfigurationError(f"hedera_network={network!r}: expected local, testnet or mainnet")


def _entity(account_id: str) -> AccountId:
    if not isinstance(account_id, str) or not _ENTITY_ID.match(account_id):
        raise HederaRequestError(
            f"malformed Hedera account id {account_id!r}: expected shard.realm.num"
        )
    return AccountId.from_string(account_id)


def _format_tx_id(tx_id: TransactionId) -> str:
    start = tx_id.valid_start
    return f"{tx_id.account_id}@{start.seconds}.{start.nanos:09d}"


def _parse_tx_id(transaction_id: str) -> TransactionId:
    payer, _, start = transaction_id.partition("@")
    seconds, _, nanos = start.partition(".")
    if not (seconds.isdigit() and nanos.isdigit()):
        raise HederaRequestError(
            f"malformed transaction id {transaction_id!r}: payer@seconds.nanos"
        )
    stamp = timestamp_pb2.Timestamp(seconds=int(seconds), nanos=int(nanos))
    return TransactionId(_entity(payer), stamp)


def _status_name(status: Any) -> str:
    return ResponseCode(status).name


class SdkHederaTransport:
    """Payouts, receipts, balances and the audit topic through the SDK.

    Transaction ids stay unique when ``prepare_transfer`` is called from several threads.
    """

    def __init__(
        self,
        *,
        client: Client,
        operator_id: str,
        operator_key: PrivateKey,
        max_transfers_per_transaction: int = 10,
        valid_duration_s: int = 120,
        audit_topic_id: str = "",
        request_timeout_s: float = 30.0,
        fetch_consensus_time: bool = False,
        clock_ns: Callable[[], int] = time.time_ns,
        connect_timeout_s: float = 5.0,
        node_min_backoff_s: float = SDK_NODE_MIN_BACKOFF_S,
        node_max_backoff_s: float = SDK_NODE_MAX_BACKOFF_S,
        mirror_url: str | None = None,
    ) -> None:
        if not 2 <= max_transfers_per_transaction <= 10:
            raise ConfigurationError(
                f"max_transfers_per_transaction={max_transfers_per_transaction}"
            )
        if not 15 <= valid_duration_s <= 180:
            raise ConfigurationError(f"valid_duration_s={valid_duration_s} outside [15, 180]")
        self._client = client.set_operator(_entity(operator_id), operator_key)
        self._client.set_grpc_deadline(min(10.0, request_timeout_s))  # per attempt [s]
        self._client.set_request_timeout(request_timeout_s)
        # Our single-attempt receipt probes make the SDK log an ERROR per "not found yet"; every
        # real failure is raised to the caller as a HederaError, so the SDK's own log stays quiet.
        self._client.logger = Logger(LogLevel.DISABLED, "crowdlearning.payments.sdk")
        self._operator_id, self._operator_key = operator_id, operator_key
        self._max_transfers = max_transfers_per_transaction
        self._valid_duration_s = valid_duration_s
        self._audit_topic_id = audit_topic_id
        self._timeout_s = request_timeout_s
        self._fetch_consensus_time = fetch_consensus_time
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._last_start_ns = 0
        self._topic_lock = threading.Lock()  # the audit topic is looked up / created once
        self._audit_topic_source: Callable[[], str] | None = None
        self._connect_timeout_s = connect_timeout_s
        self._mirror_url = mirror_url.rstrip("/") if mirror_url else None
        self._http: httpx.Client | None = None
        self._set_node_backoff(node_min_backoff_s, node_max_backoff_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> SdkHederaTransport:
        """Build from ``CROWDLEARNING_HEDERA_*``; the operator must be configured."""
        if settings.environment == "production" and settings.hedera_network == "local":
            raise ConfigurationError("hedera_network=local is for development, not production")
        key_text = settings.hedera_operator_key.get_secret_value()
        if not settings.hedera_operator_id or not key_text:
            raise ConfigurationError(
                "set CROWDLEARNING_HEDERA_OPERATOR_ID and CROWDLEARNING_HEDERA_OPERATOR_KEY "
                "(for hedera_network=local, `crowdlearning hedera-node` prints them)"
            )
        address = f"{settings.hedera_local_host}:{settings.hedera_local_port}"
        return cls(
            client=client_for_network(settings.hedera_network, local_address=address),
            operator_id=settings.hedera_operator_id,
            operator_key=_private_key(key_text),
            max_transfers_per_transaction=settings.hedera_max_transfers_per_tx,
            valid_duration_s=settings.hedera_valid_duration_s,
            audit_topic_id=settings.hedera_audit_topic_id,
            request_timeout_s=settings.hedera_request_timeout_s,
            connect_timeout_s=settings.hedera_connect_timeout_s,
            node_min_backoff_s=settings.hedera_node_min_backoff_s,
            node_max_backoff_s=settings.hedera_node_max_backoff_s,
            mirror_url=_settings_mirror_url(settings),
        )

    @classmethod
    def for_local_network(cls, info: LocalNetworkInfo, **options: Any) -> SdkHederaTransport:
        """A transport whose operator is the local network's funded development account."""
        client = client_for_network(
            "local", local_address=info.address, node_account_id=info.node_account_id
        )
        key = PrivateKey.from_string_der(info.operator_private_key_der_hex)
        options.setdefault("mirror_url", info.mirror_rest_url)
        return cls(client=client, operator_id=info.operator_account_id, operator_key=key, **options)

    def close(self) -> None:
        """Close the SDK's gRPC channels (and the mirror HTTP client)."""
        self._client.close()
        if self._http is not None:
            self._http.close()

    # --- HederaTransport ---------------------------------------------------------------------

    @property
    def treasury_account_id(self) -> str:
        return self._operator_id

    @property
    def max_transfers_per_transaction(self) -> int:
        return self._max_transfers

    @property
    def operator_public_key(self) -> PublicKey:
        """The operator's public key (also the audit topic's submit key)."""
        return self._operator_key.public_key()

    @property
    def audit_topic_id(self) -> str:
        """The audit topic in use (created on first publish when the setting was empty)."""
        return self._audit_topic_id

    def use_audit_topic_from(self, source: Callable[[], str]) -> None:
        """Ask ``source`` for the audit topic on first use instead of creating one (the
        deployment's topic kept in the ledger database: ``audit.topic.deployment_topic``)."""
        with self._topic_lock:
            self._audit_topic_source = source

    def prepare_transfer(self, transfers: dict[str, int], *, memo: str = "") -> PreparedTransaction:
        """Build, freeze and sign (operator key) a CryptoTransfer with a fresh transaction id."""
        self._check_transfers(transfers, memo)
        tx = TransferTransaction()
        for account_id, amount in transfers.items():
            tx.add_hbar_transfer(_entity(account_id), amount)
        valid_start_ns = self._next_valid_start_ns()
        stamp = timestamp_pb2.Timestamp(
            seconds=valid_start_ns // _NS_PER_S, nanos=valid_start_ns % _NS_PER_S
        )
        tx_id = TransactionId(_entity(self._operator_id), stamp)
        tx.set_transaction_id(tx_id).set_transaction_memo(memo)
        tx.set_transaction_valid_duration(self._valid_duration_s)
        tx.freeze_with(self._client).sign(self._operator_key)
        return PreparedTransaction(
            _format_tx_id(tx_id), valid_start_ns, self._valid_duration_s, tx.to_bytes()
        )

    def submit(self, prepared: PreparedTransaction) -> SubmitOutcome:
        """Send the exact signed bytes; a duplicate answer counts as accepted.

        ``HederaNotSentError`` when no node can be connected to (nothing was sent); any other
        ``HederaUnavailableError`` means the bytes may have reached a node."""
        try:
            tx = Transaction.from_bytes(prepared.body)
        except ValueError as err:
            raise HederaRequestError(f"{prepared.transaction_id}: unreadable body: {err}") from err
        if not self.reachable():
            raise HederaNotSentError(
                f"{prepared.transaction_id}: no Hedera node reachable within "
                f"{self._connect_timeout_s} s; nothing sent"
            )
        try:
            self._call(
                lambda: tx.execute(self._client, timeout=self._timeout_s, wait_for_receipt=False)
            )
        except PrecheckError as err:
            status = _status_name(err.status)
            return SubmitOutcome(prepared.transaction_id, status == "DUPLICATE_TRANSACTION", status)
        return SubmitOutcome(prepared.transaction_id, True, "OK")

    def get_receipt(self, transaction_id: str) -> TransferReceipt | None:
        """The final status, or ``None`` while the network does not know the transaction."""
        receipt = self._final_receipt(transaction_id)
        return None if receipt is None else self._transfer_receipt(transaction_id, receipt)

    def _transfer_receipt(self, transaction_id: str, receipt: Any) -> TransferReceipt:
        timestamp = (self._consensus_ns(_parse_tx_id(transaction_id))
                     if self._fetch_consensus_time else None)
        return TransferReceipt(transaction_id, _status_name(receipt.status), timestamp)

    def _final_receipt(self, transaction_id: str) -> Any | None:
        """The SDK receipt of ``transaction_id``, one attempt; ``None`` means "no final status":
        the network does not know the transaction, or it awaits consensus (UNKNOWN, seconds at
        most). Settlement re-issues a payout whose window passed with None, so a *busy* node
        (BUSY, PLATFORM_NOT_ACTIVE) raises (retry later) instead: it may well have executed."""
        query = TransactionGetReceiptQuery().set_transaction_id(_parse_tx_id(transaction_id))
        query.set_max_attempts(1).set_min_backoff(0).set_max_backoff(0)
        try:
            return self._call(lambda: query.execute(self._client, timeout=self._timeout_s))
        except HederaUnavailableError as err:
            if _status_of(getattr(err.__cause__, "last_error", None)) in _NOT_FINAL:
                return None
            raise
        except PrecheckError as err:
            raise HederaError(f"receipt of {transaction_id}: {_status_name(err.status)}") from err

    def account_balance(self, account_id: str) -> int:
        query = CryptoGetAccountBalanceQuery().set_account_id(_entity(account_id))
        balance = self._query(query, f"balance of {account_id}")
        return int(balance.hbars.to_tinybars())

    def account_public_key(self, account_id: str) -> str | None:
        """The account's single public key (DER hex) from a (paid) CryptoGetInfo query."""
        info = self._query(AccountInfoQuery(_entity(account_id)), f"account {account_id}")
        key = info.key
        return key.to_string_der() if isinstance(key, PublicKey) else None

    def _query(self, query: Any, what: str) -> Any:
        """Run a query; a pre-check refusal (unknown account...) is a ``HederaRequestError``."""
        try:
            return self._call(lambda: query.execute(self._client, timeout=self._timeout_s))
        except PrecheckError as err:
            raise HederaRequestError(f"{what}: {_status_name(err.status)}") from err

    def publish_audit(self, message: bytes) -> str:
        """Submit ``message`` to the audit topic (created once if none is configured).

        At-least-once: a retry after an error may publish the message twice; readers dedupe by
        content (audit messages are hashes).
        """
        if not 0 < len(message) <= MAX_AUDIT_MESSAGE_BYTES:
            raise HederaRequestError(
                f"audit message of {len(message)} bytes: 1..{MAX_AUDIT_MESSAGE_BYTES}"
            )
        topic = TopicId.from_string(self._ensure_audit_topic())
        tx = TopicMessageSubmitTransaction().set_topic_id(topic).set_message(message)
        tx.freeze_with(self._client)
        self._execute_successfully(tx, "audit message")
        return _format_tx_id(tx.transaction_id)

    # --- audit.network.AuditNetwork: one topic, messages stored before they are sent -------

    def create_audit_topic(self) -> str:
        """Create a topic (memo ``crowdlearning audit``) whose admin and submit key is the
        operator's: only the platform can post to it. Returns its id."""
        public = self._operator_key.public_key()
        tx = TopicCreateTransaction().set_memo("crowdlearning audit")
        tx.set_admin_key(public).set_submit_key(public)
        receipt = self._execute_successfully(tx, "audit topic creation")
        return str(receipt.topic_id)

    def prepare_audit_message(self, topic_id: str, message: bytes) -> PreparedTransaction:
        """Sign (operator key) a message for ``topic_id`` with a fresh transaction id; send it
        with ``submit``, as often as needed."""
        if not 0 < len(message) <= MAX_AUDIT_MESSAGE_BYTES:
            raise HederaRequestError(
                f"audit message of {len(message)} bytes: 1..{MAX_AUDIT_MESSAGE_BYTES}"
            )
        if not _ENTITY_ID.match(topic_id):
            raise HederaRequestError(f"malformed topic id {topic_id!r}: expected shard.realm.num")
        tx = TopicMessageSubmitTransaction().set_topic_id(TopicId.from_string(topic_id))
        tx.set_message(message)
        valid_start_ns = self._next_valid_start_ns()
        stamp = timestamp_pb2.Timestamp(
            seconds=valid_start_ns // _NS_PER_S, nanos=valid_start_ns % _NS_PER_S
        )
        tx_id = TransactionId(_entity(self._operator_id), stamp)
        tx.set_transaction_id(tx_id).set_transaction_valid_duration(self._valid_duration_s)
        tx.freeze_with(self._client).sign(self._operator_key)
        return PreparedTransaction(
            _format_tx_id(tx_id), valid_start_ns, self._valid_duration_s, tx.to_bytes()
        )

    def audit_message_receipt(self, transaction_id: str) -> MessageReceipt | None:
        """A topic message's final status and sequence number; ``None`` while the network does
        not know it (as ``get_receipt``: a busy node raises instead)."""
        receipt = self._final_receipt(transaction_id)
        if receipt is None:
            return None
        status = _status_name(receipt.status)
        sequence = receipt.topic_sequence_number if status == "SUCCESS" else None
        return MessageReceipt(transaction_id, status, sequence or None)

    # --- helpers for demos and tests -----------------------------------------------------

    def create_account(self, public_key: PublicKey, initial_balance_tinybar: int = 0) -> str:
        """Create an account (paid by the operator) holding ``public_key``; returns its id."""
        tx = AccountCreateTransaction().set_key_without_alias(public_key)
        tx.set_initial_balance(Hbar.from_tinybars(initial_balance_tinybar))
        receipt = self._execute_successfully(tx, "account creation")
        return str(receipt.account_id)

    def wait_for_receipt(
        self, transaction_id: str, *, timeout_s: float, poll_s: float = 0.05
    ) -> TransferReceipt:
        """Poll ``get_receipt`` until final; ``HederaUnavailableError`` after ``timeout_s``."""
        receipt = self._final_receipt_within(transaction_id, timeout_s, poll_s)
        return self._transfer_receipt(transaction_id, receipt)

    def _final_receipt_within(self, transaction_id: str, timeout_s: float,
                              poll_s: float = 0.05) -> Any:
        """Poll ``_final_receipt`` until final; ``HederaUnavailableError`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (receipt := self._final_receipt(transaction_id)) is None:
            if time.monotonic() > deadline:
                raise HederaUnavailableError(
                    f"no receipt for {transaction_id} within {timeout_s} s"
                )
            time.sleep(poll_s)
        return receipt

    # --- outages ----------------------------------------------------------------------------

    def reachable(self, timeout_s: float | None = None) -> bool:
        """Whether a TCP connection to at least one node opens within ``timeout_s`` (the
        connect timeout by default). Nothing is sent; the nodes are tried in parallel."""
        timeout = self._connect_timeout_s if timeout_s is None else timeout_s
        addresses = [str(node._address) for node in self._client.network.nodes]
        if not addresses:
            return False
        answers: queue.SimpleQueue[bool] = queue.SimpleQueue()

        def attempt(address: str) -> None:
            host, _, port = address.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                    answers.put(True)
            except (OSError, ValueError) as err:
                log.debug("node %s unreachable: %s", address, err)
                answers.put(False)

        for address in addresses:
            threading.Thread(target=attempt, args=(address,), daemon=True).start()
        deadline = time.monotonic() + timeout
        for _ in addresses:  # the first success, or every node refused, or the deadline
            try:
                if answers.get(timeout=max(0.0, deadline - time.monotonic())):
                    return True
            except queue.Empty:
                return False
        return False

    def _set_node_backoff(self, min_s: float, max_s: float) -> None:
        """The SDK's per-node backoff after a failed gRPC call (8 s doubling to 3,600 s by
        default): kept configurable so that tests can make it large enough to matter."""
        network = self._client.network
        for node in network.nodes:
            node._min_backoff, node._max_backoff = min_s, max_s
            node._current_backoff = min_s
        network._node_min_readmit_period = min_s
        network._node_max_readmit_period = max_s

    def _reset_nodes(self) -> None:
        """After a network failure: readmit every node now and drop its gRPC channel.

        The SDK would otherwise keep a failed node out for its backoff (doubling to an hour)
        and gRPC would wait out its own reconnect backoff (up to 2 minutes); our callers retry
        at their own pace, so the next call must try the network again, on a fresh connection.
        """
        network = self._client.network
        now = time.monotonic()
        with self._lock:
            for node in network.nodes:
                node._current_backoff = node._min_backoff
                node._readmit_time = now
                node._close()  # the next call opens a new channel
            network._healthy_nodes = list(network.nodes)
            network._earliest_readmit_time = now

    def transaction_history(self, transaction_id: str, *, final_by_ns: int) -> str | None:
        """A transaction's outcome from the mirror node, which keeps history for good (a node
        forgets a receipt ~180 s after consensus).

        The status (``SUCCESS`` or a failure code), or ``None`` when the mirror has no such
        transaction and has consensus data past ``final_by_ns`` (the end of the transaction's
        valid window): it provably never reached consensus. ``HederaUnavailableError`` when it
        cannot be told (no mirror configured, mirror unreachable, or behind ``final_by_ns``).
        """
        if self._mirror_url is None:
            raise HederaUnavailableError("no mirror node configured (hedera_mirror_url)")
        payer, _, start = transaction_id.partition("@")
        seconds, _, nanos = start.partition(".")
        path = f"/transactions/{payer}-{seconds}-{nanos}"
        found = self._mirror_get(path)
        if found is not None:
            entries = [t for t in found.get("transactions", []) if not t.get("scheduled")]
            entries.sort(key=lambda t: t.get("nonce", 0))
            if entries:
                return str(entries[0]["result"])
        blocks = self._mirror_get("/blocks", {"limit": "1", "order": "desc"}) or {}
        latest = blocks.get("blocks") or [{}]
        to = str(latest[0].get("timestamp", {}).get("to") or "0")
        secs, _, frac = to.partition(".")
        final_through_ns = int(secs) * _NS_PER_S + int(frac.ljust(9, "0")[:9] or 0)
        if final_through_ns <= final_by_ns:
            raise HederaUnavailableError(
                f"mirror is final through {to} only; {transaction_id} cannot be decided yet"
            )
        return None

    def _mirror_get(self, path: str, params: dict[str, str] | None = None) -> dict | None:
        """GET a mirror REST path: its JSON, ``None`` on 404, ``HederaUnavailableError``
        otherwise."""
        if self._http is None:
            self._http = httpx.Client(timeout=self._connect_timeout_s + 5.0)
        try:
            response = self._http.get(f"{self._mirror_url}{path}", params=params)
        except httpx.HTTPError as err:
            raise HederaUnavailableError(f"mirror node unreachable: {err}") from err
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HederaUnavailableError(f"mirror node answered {response.status_code}")
        try:
            return dict(response.json())
        except ValueError as err:
            raise HederaUnavailableError(f"mirror node answered no JSON: {err}") from err

    # --- internals -------------------------------------------------------------------------

    def _check_transfers(self, transfers: dict[str, int], memo: str) -> None:
        if not transfers or len(transfers) > self._max_transfers:
            raise HederaRequestError(
                f"{len(transfers)} transfers: need 1..{self._max_transfers} per transaction"
            )
        for account_id, amount in transfers.items():
            _entity(account_id)
            if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
                raise HederaRequestError(
                    f"amount {amount!r} for {account_id}: a non-zero int of tinybars"
                )
            if abs(amount) >= 2**63:
                raise HederaRequestError(
                    f"amount {amount} for {account_id} overflows int64 tinybars"
                )
        if sum(transfers.values()) != 0:
            raise HederaRequestError(f"transfers sum to {sum(transfers.values())} tinybars, not 0")
        if len(memo.encode()) > MAX_MEMO_BYTES:
            raise HederaRequestError(f"memo of {len(memo.encode())} bytes exceeds {MAX_MEMO_BYTES}")

    def _next_valid_start_ns(self) -> int:
        """Now minus a small backdate, strictly increasing so that every id is new."""
        with self._lock:
            start = max(
                self._clock_ns() - VALID_START_BACKDATE_S * _NS_PER_S, self._last_start_ns + 1
            )
            self._last_start_ns = start
            return start

    def _ensure_audit_topic(self) -> str:
        with self._topic_lock:
            if not self._audit_topic_id and self._audit_topic_source is not None:
                self._audit_topic_id = self._audit_topic_source()
            elif not self._audit_topic_id:
                self._audit_topic_id = self.create_audit_topic()
                log.warning(
                    "created audit topic %s; set CROWDLEARNING_HEDERA_AUDIT_TOPIC_ID",
                    self._audit_topic_id,
                )
            return self._audit_topic_id

    def _execute_successfully(self, tx: Any, what: str) -> Any:
        """Execute with receipt; anything but SUCCESS raises ``HederaError``.

        DUPLICATE_TRANSACTION means an earlier send of this very transaction reached a node: the
        SDK re-sends the same signed bytes when an attempt times out (seen in CI on a loaded
        machine: the first attempt of an account creation was accepted, its retry refused), so
        the answer is that transaction's receipt, not a failure."""
        try:
            receipt = self._call(lambda: tx.execute(self._client, timeout=self._timeout_s))
        except PrecheckError as err:
            tx_id = getattr(tx, "transaction_id", None)
            if _status_name(err.status) != "DUPLICATE_TRANSACTION" or tx_id is None:
                raise HederaError(f"{what} failed: {_status_name(err.status)}") from err
            receipt = self._final_receipt_within(_format_tx_id(tx_id), self._timeout_s)
        except ReceiptStatusError as err:
            raise HederaError(f"{what} failed: {_status_name(err.status)}") from err
        if _status_name(receipt.status) != "SUCCESS":
            raise HederaError(f"{what} failed: {_status_name(receipt.status)}")
        return receipt

    def _consensus_ns(self, tx_id: TransactionId) -> int | None:
        """Consensus time from the (paid) record query; ``None`` if it cannot be had now."""
        query = TransactionRecordQuery().set_transaction_id(tx_id)
        try:
            record = self._call(lambda: query.execute(self._client, timeout=self._timeout_s))
        except (PrecheckError, HederaUnavailableError) as err:
            log.warning("no record for %s: %s", _format_tx_id(tx_id), err)
            return None
        stamp = record.consensus_timestamp
        return None if stamp is None else stamp.seconds * _NS_PER_S + stamp.nanos

    def _call(self, action: Callable[[], Any]) -> Any:
        """Run an SDK call, turning transport failures into ``HederaUnavailableError``."""
        try:
            return action()
        except (PrecheckError, ReceiptStatusError):
            raise
        except (MaxAttemptsError, grpc.RpcError, RuntimeError, ValueError) as err:
            # RuntimeError: the SDK's "All nodes are unhealthy" after gRPC failures; ValueError:
            # a channel closed under the call by ``_reset_nodes`` in another thread
            if _status_of(getattr(err, "last_error", None)) is None:  # no node answered
                self._reset_nodes()
            raise HederaUnavailableError(f"Hedera network unavailable: {err}") from err


def _status_of(error: BaseException | None) -> str | None:
    status = getattr(error, "status", None)
    return None if status is None else _status_name(status)


def _settings_mirror_url(settings: Settings) -> str | None:
    """The mirror REST base for settlement's history lookups: the configured one, the embedded
    local network's view, or the public mirror of testnet / mainnet."""
    if settings.hedera_mirror_url:
        return settings.hedera_mirror_url
    if settings.hedera_network == "local":
        port = settings.hedera_local_mirror_port
        return f"http://{settings.hedera_local_host}:{port}/api/v1" if port else None
    return PUBLIC_MIRRORS[settings.hedera_network]


def _private_key(text: str) -> PrivateKey:
    """Parse an operator key: DER hex, or ``ed25519:<raw hex>`` / ``ecdsa:<raw hex>``.

    A bare 32-byte raw key is refused: it could be either type, and guessing wrong only shows up
    later as INVALID_SIGNATURE.
    """
    kind, sep, raw = text.strip().partition(":")
    parsers = {"ed25519": PrivateKey.from_string_ed25519, "ecdsa": PrivateKey.from_string_ecdsa}
    try:
        if sep and kind in parsers:
            return parsers[kind](raw.strip().removeprefix("0x"))
        if not sep:
            return PrivateKey.from_string_der(kind.removeprefix("0x"))
    except ValueError:
        pass
    raise ConfigurationError(
        "CROWDLEARNING_HEDERA_OPERATOR_KEY must be a DER hex private key, "
        "or ed25519:<hex> / ecdsa:<hex> for a raw one"
    )
