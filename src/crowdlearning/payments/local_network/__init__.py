"""A local Hedera-compatible network: one gRPC node (plus a mirror REST view) for development.

See ``docs/payments.md`` for what it implements and enforces. Entry points:
``running_local_network()`` (in-process, background threads) and ``crowdlearning hedera-node``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .network import DevOperator, LocalNetwork
    from .rules import NetworkRules
    from .server import LocalNetworkInfo, LocalNetworkServer, running_local_network

# loaded on first use (PEP 562): ``crowdlearning hedera-node --help`` and any module of this
# package then answer without importing the SDK and gRPC (~0.45 s)
_LAZY = {"DevOperator": "network", "LocalNetwork": "network", "NetworkRules": "rules",
         "LocalNetworkInfo": "server", "LocalNetworkServer": "server",
         "running_local_network": "server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DevOperator",
    "LocalNetwork",
    "LocalNetworkInfo",
    "LocalNetworkServer",
    "NetworkRules",
    "running_local_network",
]
