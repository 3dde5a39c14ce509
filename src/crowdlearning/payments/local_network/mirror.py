"""A read-only HTTP view of the local network in the shape of the Hedera mirror node REST API.

Only what deposit detection and audit checks need:

- ``GET /api/v1/transactions?account.id=0.0.x[&timestamp=gt:S.N][&order=asc|desc][&limit=n]``
- ``GET /api/v1/transactions/{payer-seconds-nanos}`` (one transaction by id)
- ``GET /api/v1/topics/{topic}/messages[?sequencenumber=gt:n][&order=...][&limit=n]``
- ``GET /api/v1/accounts/{account}`` (balance only)
- ``GET /api/v1/blocks`` (one block ending where history is complete: how a reader knows that a
  transaction missing from the history never reached consensus)

Field names follow the mirror node (``consensus_timestamp`` as ``seconds.nanos``, transaction ids
as ``payer-seconds-nanos``, messages base64); pagination links are always ``null`` (ask again with a
``timestamp`` / ``sequencenumber`` filter).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .network import LocalNetwork
from .state import Outcome, TopicMessage

__all__ = ["MirrorRestServer"]

MAX_LIMIT = 100  # the mirror node's page size cap
_ENTITY = r"(\d+\.\d+\.\d+)"
_NOT_FOUND = HTTPStatus.NOT_FOUND, {"_status": {"messages": [{"message": "Not found"}]}}


def _stamp(epoch_ns: int) -> str:
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    return f"{seconds}.{nanos:09d}"


def _parse_stamp(text: str) -> int:
    seconds, _, nanos = text.partition(".")
    return int(seconds) * 1_000_000_000 + int((nanos or "0").ljust(9, "0")[:9])


def _mirror_tx_id(transaction_id: str) -> str:
    payer, _, start = transaction_id.partition("@")
    seconds, _, nanos = start.partition(".")
    return f"{payer}-{seconds}-{int(nanos):09d}"


def _transaction_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "consensus_timestamp": _stamp(outcome.consensus_ns),
        "transaction_id": _mirror_tx_id(outcome.transaction_id),
        "name": outcome.body_type.upper(),
        "result": outcome.status,
        "charged_tx_fee": outcome.fee_tinybar,
        "memo_base64": base64.b64encode(outcome.memo.encode()).decode(),
        "transaction_hash": base64.b64encode(outcome.transaction_hash).decode(),
        "transfers": [
            {"account": a, "amount": d, "is_approval": False} for a, d in outcome.transfers
        ],
    }


def _message_json(topic_id: str, message: TopicMessage) -> dict[str, Any]:
    return {
        "consensus_timestamp": _stamp(message.consensus_ns),
        "topic_id": topic_id,
        "message": base64.b64encode(message.message).decode(),
        "running_hash": base64.b64encode(message.running_hash).decode(),
        "running_hash_version": 3,
        "sequence_number": message.sequence_number,
        "payer_account_id": message.payer,
        "chunk_info": None,
    }


def _compare(op: str, left: int, right: int) -> bool:
    return {
        "gt": left > right,
        "gte": left >= right,
        "lt": left < right,
        "lte": left <= right,
        "eq": left == right,
    }.get(op, False)


def _page(
    items: list[Any], key: Any, params: dict[str, str], filter_name: str, parse: Any
) -> list[Any]:
    """Filter by ``<filter_name>=op:value``, order and limit, as the mirror node does."""
    if filter_name in params:
        op, _, value = params[filter_name].rpartition(":")
        items = [i for i in items if _compare(op or "eq", key(i), parse(value))]
    items = sorted(items, key=key, reverse=params.get("order", "desc") == "desc")
    limit = min(max(int(params.get("limit", 25)), 1), MAX_LIMIT)
    return items[:limit]


class _Handler(BaseHTTPRequestHandler):
    network: LocalNetwork  # set on the subclass made per server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            status, body = self._route(url.path, params)
        except ValueError as err:
            status, body = (
                HTTPStatus.BAD_REQUEST,
                {"_status": {"messages": [{"message": str(err)}]}},
            )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _route(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path == "/api/v1/transactions":
            return self._transactions(params)
        if match := re.fullmatch(rf"/api/v1/transactions/{_ENTITY}-(\d+)-(\d+)", path):
            return self._transaction(*match.groups())
        if match := re.fullmatch(rf"/api/v1/topics/{_ENTITY}/messages", path):
            return self._messages(match.group(1), params)
        if match := re.fullmatch(rf"/api/v1/accounts/{_ENTITY}", path):
            return self._account(match.group(1))
        if path == "/api/v1/blocks":
            return self._blocks()
        return _NOT_FOUND

    def _blocks(self) -> tuple[int, dict[str, Any]]:
        final = _stamp(self.network.final_through_ns())
        block = {"number": 0, "timestamp": {"from": final, "to": final}}
        return HTTPStatus.OK, {"blocks": [block], "links": {"next": None}}

    def _transactions(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        account = params.get("account.id")
        outcomes = (
            self.network.outcomes_for_account(account) if account else self.network.all_outcomes()
        )
        page = _page(outcomes, lambda o: o.consensus_ns, params, "timestamp", _parse_stamp)
        return HTTPStatus.OK, {
            "transactions": [_transaction_json(o) for o in page],
            "links": {"next": None},
        }

    def _transaction(self, payer: str, seconds: str, nanos: str) -> tuple[int, dict[str, Any]]:
        outcome = self.network.outcome(f"{payer}@{int(seconds)}.{int(nanos):09d}")
        if outcome is None:
            return _NOT_FOUND
        return HTTPStatus.OK, {"transactions": [_transaction_json(outcome)]}

    def _messages(self, topic_id: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        messages = self.network.topic_messages(topic_id)
        if messages is None:
            return _NOT_FOUND
        page = _page(
            messages, lambda m: m.sequence_number, {"order": "asc", **params}, "sequencenumber", int
        )
        return HTTPStatus.OK, {
            "messages": [_message_json(topic_id, m) for m in page],
            "links": {"next": None},
        }

    def _account(self, account_id: str) -> tuple[int, dict[str, Any]]:
        balance = self.network.balance(account_id)
        if balance is None:
            return _NOT_FOUND
        return HTTPStatus.OK, {"account": account_id, "balance": {"balance": balance, "tokens": []}}

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""


class MirrorRestServer:
    """The mirror REST view served by a stdlib threading HTTP server in a daemon thread."""

    def __init__(self, network: LocalNetwork, *, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("MirrorHandler", (_Handler,), {"network": network})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="mirror-rest", daemon=True
        )

    def start(self) -> str:
        """Start serving; returns the base URL ``http://host:port/api/v1``."""
        self._thread.start()
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
