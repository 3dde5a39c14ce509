"""Serving the local network over gRPC (and the mirror REST view), in a background thread.

``running_local_network()`` is the one-liner for demos and tests::

    with running_local_network() as info:
        transport = SdkHederaTransport.for_local_network(info)
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from .mirror import MirrorRestServer
from .network import LocalNetwork
from .rules import NetworkRules
from .services import add_services

__all__ = ["LocalNetworkInfo", "LocalNetworkServer", "running_local_network"]

_SDK_TLS_PORT = 50212  # the SDK switches to TLS for this port, which the local node does not speak


@dataclass(frozen=True)
class LocalNetworkInfo:
    """How to reach a running local network, and its development operator (dev only)."""

    address: str  # host:port of the gRPC node
    node_account_id: str
    operator_account_id: str
    operator_private_key_der_hex: str
    mirror_rest_url: str | None = None  # e.g. http://127.0.0.1:5551/api/v1


class LocalNetworkServer:
    """A gRPC server (thread pool) exposing one ``LocalNetwork`` node."""

    def __init__(
        self,
        network: LocalNetwork,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        mirror_port: int | None = None,
        max_workers: int = 8,
    ) -> None:
        if port == _SDK_TLS_PORT:
            raise ValueError(f"port {port} makes the SDK use TLS; the local node speaks plain gRPC")
        self.network = network
        self._host, self._port, self._mirror_port = host, port, mirror_port
        self._max_workers = max_workers
        self._server: grpc.Server | None = None
        self._mirror: MirrorRestServer | None = None
        self._mirror_url: str | None = None

    def start(self) -> LocalNetworkInfo:
        """Bind and start serving; returns the address actually bound (port 0 = ephemeral)."""
        self._server, bound = self._bind()
        self._port = bound  # a restart (stop, start: an outage) comes back on the same port
        self._server.start()
        if self._mirror_port is not None and self._mirror is None:
            self._mirror = MirrorRestServer(self.network, host=self._host, port=self._mirror_port)
            self._mirror_url = self._mirror.start()
            self._mirror_port = int(self._mirror_url.rsplit(":", 1)[1].split("/")[0])
        mirror_url = self._mirror_url if self._mirror is not None else None
        operator = self.network.operator
        return LocalNetworkInfo(
            address=f"{self._host}:{bound}",
            node_account_id=self.network.node_account_id,
            operator_account_id=operator.account_id,
            operator_private_key_der_hex=operator.private_key_der_hex,
            mirror_rest_url=mirror_url,
        )

    def stop(self, grace_s: float = 1.0, *, mirror: bool = True) -> None:
        """Stop serving; in-flight calls get ``grace_s`` seconds to finish. ``start`` again
        serves the same network on the same ports (``mirror=False`` keeps the mirror view
        up: a consensus-node outage)."""
        if mirror and self._mirror is not None:
            self._mirror.stop()
            self._mirror = None
        if self._server is not None:
            self._server.stop(grace_s).wait(grace_s + 1.0)
            self._server = None

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the server stops (or ``timeout_s`` passes); True if it stopped."""
        return self._server is None or self._server.wait_for_termination(timeout_s) is not False

    def _bind(self) -> tuple[grpc.Server, int]:
        for _ in range(3):
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers))
            add_services(server, self.network)
            bound = server.add_insecure_port(f"{self._host}:{self._port}")
            if bound != _SDK_TLS_PORT:
                return server, bound
            server.stop(None)
        raise RuntimeError(
            f"could not bind {self._host}:{self._port} to a port other than {_SDK_TLS_PORT}"
        )


@contextmanager
def running_local_network(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state_path: Path | None = None,
    rules: NetworkRules | None = None,
    mirror_port: int | None = None,
    operator_key_type: str = "ed25519",
    consensus_delay_s: float = 0.0,
) -> Iterator[LocalNetworkInfo]:
    """Start a local network in background threads for the ``with`` block, then stop it."""
    network = LocalNetwork.open(
        state_path=state_path,
        rules=rules,
        operator_key_type=operator_key_type,
        consensus_delay_s=consensus_delay_s,
    )
    server = LocalNetworkServer(network, host=host, port=port, mirror_port=mirror_port)
    info = server.start()
    try:
        yield info
    finally:
        server.stop()
