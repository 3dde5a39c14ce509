"""``crowdlearning hedera-node``: run the local Hedera-compatible network until Ctrl-C.

Prints its gRPC address, node account id, the mirror REST URL, and a funded development operator
account id and private key (generated at first start; kept in ``--state`` when given). These are
development credentials for a network that exists only on this machine.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crowdlearning.config import get_settings

if TYPE_CHECKING:
    from .server import LocalNetworkInfo

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="crowdlearning hedera-node", description=__doc__)
    parser.add_argument("--host", default=settings.hedera_local_host, help="bind address")
    parser.add_argument(
        "--port", type=int, default=settings.hedera_local_port, help="gRPC port (0 = any)"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=settings.hedera_local_state_file,
        help="JSON state file (survives restarts)",
    )
    parser.add_argument("--mirror-port", type=int, default=settings.hedera_local_mirror_port,
                        help="mirror REST port (0 = any)")
    parser.add_argument(
        "--no-mirror", action="store_true", help="do not serve the mirror REST view"
    )
    parser.add_argument("--operator-key-type", choices=["ed25519", "ecdsa"], default="ed25519",
                        help="key type of the generated operator account")
    parser.add_argument(
        "--consensus-delay-ms",
        type=int,
        default=0,
        help="time to consensus (receipts UNKNOWN until)",
    )
    return parser


def _describe(info: LocalNetworkInfo) -> str:
    port = info.address.rsplit(":", 1)[1]
    lines = [
        f"local Hedera network listening on {info.address}",
        f"  node account id     {info.node_account_id}",
        f"  mirror REST         {info.mirror_rest_url or '(off)'}",
        f"  operator account    {info.operator_account_id}",
        f"  operator key (DER)  {info.operator_private_key_der_hex}",
        "  development credentials; for crowdlearning:",
        f"    export CROWDLEARNING_HEDERA_NETWORK=local CROWDLEARNING_HEDERA_LOCAL_PORT={port}",
        f"    export CROWDLEARNING_HEDERA_OPERATOR_ID={info.operator_account_id}",
        f"    export CROWDLEARNING_HEDERA_OPERATOR_KEY={info.operator_private_key_der_hex}",
        "Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .network import LocalNetwork  # the SDK and gRPC: once the arguments are good
    from .server import LocalNetworkServer

    network = LocalNetwork.open(
        state_path=args.state,
        operator_key_type=args.operator_key_type,
        consensus_delay_s=args.consensus_delay_ms / 1000,
    )
    mirror_port = None if args.no_mirror else args.mirror_port
    server = LocalNetworkServer(network, host=args.host, port=args.port, mirror_port=mirror_port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    info = server.start()
    print(_describe(info), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    print("stopped.", file=sys.stderr, flush=True)
    return 0
