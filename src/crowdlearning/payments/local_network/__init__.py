"""A local Hedera-compatible network: one gRPC node (plus a mirror REST view) for development.

See ``docs/payments.md`` for what it implements and enforces. Entry points:
``running_local_network()`` (in-process, background threads) and ``crowdlearning hedera-node``.
"""

from __future__ import annotations

from .network import DevOperator, LocalNetwork
from .rules import NetworkRules
from .server import LocalNetworkInfo, LocalNetworkServer, running_local_network

__all__ = [
    "DevOperator",
    "LocalNetwork",
    "LocalNetworkInfo",
    "LocalNetworkServer",
    "NetworkRules",
    "running_local_network",
]
