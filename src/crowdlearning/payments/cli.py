"""``crowdlearning payments``: serve the third-party payments API, issue and revoke API keys."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="crowdlearning payments", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    serve = sub.add_parser("serve", help="serve the payments API (OpenAPI at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument("--port", type=int, default=8001, help="port to bind")
    issue = sub.add_parser("issue-key", help="open a client account and print a new API key")
    issue.add_argument("client_id", help="the client (third-party app) the key is for")
    revoke = sub.add_parser("revoke-key", help="revoke an API key")
    revoke.add_argument("key", help="the API key to revoke")
    for command in (serve, issue, revoke):  # the service's own database, keys included
        command.add_argument(
            "--database-url", default=None,
            help="the payments database (default: CROWDLEARNING_PAYMENTS_DATABASE_URL, else "
                 "CROWDLEARNING_DATABASE_URL)")
    args = parser.parse_args(argv)
    # loaded once the arguments are good: --help and mistakes answer without them (~0.4 s)
    from crowdlearning.config import get_settings
    from crowdlearning.ledger import clients as ledger_clients
    from crowdlearning.ledger import open_ledger

    settings = get_settings()
    url = args.database_url or settings.payments_database_url or settings.database_url
    settings = settings.model_copy(update={"database_url": url, "payments_database_url": url})
    ledger = open_ledger(settings)
    if args.action == "serve":
        import uvicorn

        from crowdlearning.http_guard import proxy_options
        from crowdlearning.payments.api import create_app

        uvicorn.run(create_app(ledger, settings=settings), host=args.host, port=args.port,
                    **proxy_options(settings.payments_api_trusted_proxies))
        return 0
    if args.action == "issue-key":
        key = ledger.run(lambda c: _issue(c, args.client_id))
        print(f"client {args.client_id}: API key (shown once, stored hashed): {key}")
        return 0
    ledger.run(lambda c: ledger_clients.revoke_key(c, args.key, now_ns=time.time_ns()))
    print("revoked")
    return 0


def _issue(conn, client_id: str) -> str:
    from crowdlearning.ledger import clients as ledger_clients

    ledger_clients.open_client(conn, client_id, now_ns=time.time_ns())
    return ledger_clients.issue_key(conn, client_id, now_ns=time.time_ns())
