"""``crowdlearning payments``: serve the third-party payments API, issue and revoke API keys."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded lazily at run time (see main)
    from crowdlearning.config import Settings
    from crowdlearning.hedera.transport import HederaTransport
    from crowdlearning.ledger import Ledger
    from crowdlearning.payments.deposits import ServiceDepositReader
    from crowdlearning.payments.worker import PaymentsWorker

__all__ = ["main"]
START_TIMEOUT_S = 30.0  # how long serve waits for the mirror node at start


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
    returns = sub.add_parser(  # issue 15.4: where a client's consent page may return players
        "return-url", help="list, register (a prefix) or --remove a client's consent return URLs")
    returns.add_argument("client_id", help="the client (third-party app)")
    returns.add_argument("url_prefix", nargs="?", help="https://host[/path] the consent page may "
                         "return to (a URL at or below it); none: list them")
    returns.add_argument("--remove", action="store_true", help="forget url_prefix")
    for command in (serve, issue, revoke, returns):  # the service's own database, keys included
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

        worker = _worker(ledger, settings)
        uvicorn.run(create_app(ledger, settings=settings, worker=worker), host=args.host,
                    port=args.port, **proxy_options(settings.payments_api_trusted_proxies))
        return 0
    if args.action == "return-url":
        return _return_url(ledger, args.client_id, args.url_prefix, remove=args.remove)
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


def _worker(ledger: Ledger, settings: Settings) -> PaymentsWorker | None:
    """The background worker: webhooks every ``payments_webhook_interval_s``; settlement when
    ``payments_settle_interval_s`` > 0 (the Hedera operator is the treasury); the treasury
    reader when ``payments_deposit_poll_s`` > 0 (on ``hedera_mirror_url``, else the network's
    mirror), which opens the books here, before anything settles; None when all are off."""
    from crowdlearning.payments.worker import PaymentsWorker

    settler = deposits = transport = None
    if settings.payments_settle_interval_s > 0 or settings.payments_deposit_poll_s > 0:
        from crowdlearning.payments.sdk_transport import SdkHederaTransport

        transport = SdkHederaTransport.from_settings(settings)
    if settings.payments_deposit_poll_s > 0:
        assert transport is not None
        deposits = _open_deposit_reader(ledger, settings, transport)
    if settings.payments_settle_interval_s > 0:
        from crowdlearning.payments.settlement import Settler

        assert transport is not None
        settler = Settler.from_settings(ledger, transport, settings)
    if settler is None and deposits is None and settings.payments_webhook_interval_s <= 0:
        return None
    return PaymentsWorker.from_settings(ledger, settings, settler=settler, deposits=deposits)


def _open_deposit_reader(ledger: Ledger, settings: Settings, transport: HederaTransport
                         ) -> ServiceDepositReader:
    """The service's treasury reader, its books opened or resumed (``ServiceDepositReader
    .open``); a mirror node that does not answer within ``START_TIMEOUT_S`` stops the start
    (settling before the books are open would make them disagree with the chain)."""
    import logging

    import httpx

    from crowdlearning.audit.mirror import default_mirror_url
    from crowdlearning.payments.deposits import DepositWatcher, ServiceDepositReader

    treasury = transport.treasury_account_id
    url = default_mirror_url(settings)
    reader = ServiceDepositReader(DepositWatcher(ledger, url, treasury))
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            reader.open(lambda: transport.account_balance(treasury))
            return reader
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                raise SystemExit(f"crowdlearning payments serve: the mirror node {url} does not "
                                 f"answer ({exc}); set CROWDLEARNING_HEDERA_MIRROR_URL, or "
                                 "CROWDLEARNING_PAYMENTS_DEPOSIT_POLL_S=0 when a game server "
                                 "reads this ledger's treasury") from exc
            logging.getLogger(__name__).warning("mirror node %s: %s (retrying)", url, exc)
            time.sleep(1.0)


def _return_url(ledger, client_id: str, prefix: str | None, *, remove: bool) -> int:  # type: ignore[no-untyped-def]
    """``return-url``: list, register or remove (docs/payments-consent.md); a mistake is one
    line and exit code 2."""
    import sys

    from crowdlearning.ledger import LedgerError
    from crowdlearning.ledger import clients as ledger_clients

    try:
        if prefix is None:
            print("\n".join(ledger.run(lambda c: ledger_clients.return_urls(c, client_id)))
                  or f"client {client_id}: no return URL registered")
        elif remove:
            gone = ledger.run(lambda c: ledger_clients.disallow_return_url(c, client_id, prefix))
            print("removed" if gone else f"client {client_id} had no return URL {prefix}")
        else:
            ledger.run(lambda c: ledger_clients.allow_return_url(c, client_id, prefix,
                                                                 now_ns=time.time_ns()))
            print(f"client {client_id}: consent may return to {prefix} and below")
    except LedgerError as e:
        print(f"crowdlearning payments return-url: {e}", file=sys.stderr)
        return 2
    return 0
