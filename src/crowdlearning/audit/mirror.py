"""Reading the audit topic back: a mirror node's REST API (or the local network's mirror view).

``GET {mirror}/topics/{topic}/messages?sequencenumber=eq:N`` for one message, and
``?sequencenumber=gt:N&order=asc&limit=100`` to page through a topic (the local mirror view and
the public mirror nodes answer both in the same shape; see docs/payments.md).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from crowdlearning.config import Settings
from crowdlearning.errors import HederaUnavailableError

__all__ = ["MirrorTopicReader", "TopicMessage", "TopicReader", "default_mirror_url"]

PUBLIC_MIRRORS = {"testnet": "https://testnet.mirrornode.hedera.com/api/v1",
                  "mainnet": "https://mainnet-public.mirrornode.hedera.com/api/v1"}
PAGE = 100  # the mirror node's page size cap


@dataclass(frozen=True)
class TopicMessage:
    """One message of a topic as a mirror node serves it."""

    topic_id: str
    sequence_number: int
    message: bytes
    consensus_timestamp: str  # "seconds.nanos"
    payer_account_id: str | None = None


class TopicReader(Protocol):
    """Where a verifier reads topic messages from."""

    def message(self, topic_id: str, sequence_number: int) -> TopicMessage | None:
        """Message ``sequence_number`` of ``topic_id``, or ``None`` if it is not there (yet)."""
        ...

    def messages(self, topic_id: str, after: int = 0) -> Iterator[TopicMessage]:
        """The topic's messages numbered above ``after``, in order."""
        ...


def default_mirror_url(settings: Settings) -> str:
    """The configured mirror, the public one of testnet/mainnet, or the local network's view."""
    if settings.hedera_mirror_url:
        return settings.hedera_mirror_url.rstrip("/")
    if settings.hedera_network in PUBLIC_MIRRORS:
        return PUBLIC_MIRRORS[settings.hedera_network]
    return f"http://{settings.hedera_local_host}:{settings.hedera_local_mirror_port}/api/v1"


@dataclass
class MirrorTopicReader:
    """A ``TopicReader`` over a mirror node's REST API (``base_url`` ends in ``/api/v1``)."""

    base_url: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    def message(self, topic_id: str, sequence_number: int) -> TopicMessage | None:
        page = self._get(topic_id, {"sequencenumber": f"eq:{sequence_number}", "limit": 1})
        return next((m for m in page if m.sequence_number == sequence_number), None)

    def messages(self, topic_id: str, after: int = 0) -> Iterator[TopicMessage]:
        while True:
            page = self._get(topic_id, {"sequencenumber": f"gt:{after}", "order": "asc",
                                        "limit": PAGE})
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1].sequence_number

    def _get(self, topic_id: str, params: dict[str, object]) -> list[TopicMessage]:
        url = f"{self.base_url.rstrip('/')}/topics/{topic_id}/messages"
        try:
            response = self.http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise HederaUnavailableError(f"mirror node {self.base_url}: {exc}") from exc
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise HederaUnavailableError(
                f"mirror node {self.base_url}: HTTP {response.status_code} for {url}")
        return [TopicMessage(topic_id, int(m["sequence_number"]),
                             base64.b64decode(m["message"]), str(m["consensus_timestamp"]),
                             m.get("payer_account_id"))
                for m in response.json().get("messages", [])]

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()
