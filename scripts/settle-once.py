"""Settle pending payouts on Hedera now: the platform's ``Settler``, run until nothing is live.

    .venv/bin/python scripts/settle-once.py

The payments service (``crowdlearning payments serve``) books payouts and withdrawals but runs no
settlement job of its own: the game server (``crowdlearning serve``) settles every
``CROWDLEARNING_SERVER_SETTLE_INTERVAL_S``. Against a payments service on its own ledger, run
this (by hand, or from cron / a systemd timer) with the same database
(``CROWDLEARNING_PAYMENTS_DATABASE_URL``, else ``CROWDLEARNING_DATABASE_URL``) and the treasury
operator (``CROWDLEARNING_HEDERA_OPERATOR_ID`` / ``_KEY``; on the local network,
what ``crowdlearning hedera-node`` printed). It is the same exactly-once cycle (batch, sign,
store, submit, receipt, post): running it twice, or beside a game server, pays nothing twice.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-runs", type=int, default=20,
                        help="settlement runs at most, until no transaction awaits a receipt")
    parser.add_argument("--pause-s", type=float, default=0.5, help="pause between runs")
    args = parser.parse_args(argv)

    from crowdlearning.config import get_settings
    from crowdlearning.ledger import open_ledger
    from crowdlearning.payments.sdk_transport import SdkHederaTransport
    from crowdlearning.payments.settlement import Settler

    settings = get_settings()
    # the payments service's own database when one is set (as `crowdlearning payments` uses)
    url = getattr(settings, "payments_database_url", "") or settings.database_url
    ledger = open_ledger(settings.model_copy(update={"database_url": url}))
    transport = SdkHederaTransport.from_settings(settings)
    try:
        settler = Settler.from_settings(ledger, transport, settings)
        posted = voided = 0
        for run in range(args.max_runs):
            if run:
                time.sleep(args.pause_s)
            report = settler.run_once()
            posted, voided = posted + report.posted_payouts, voided + report.voided_payouts
            if report.live == 0 or report.network_down:
                break
    finally:
        transport.close()
    print(f"settled: payouts posted {posted}, voided {voided}, "
          f"transactions still live {report.live}, stuck {report.stuck}, "
          f"network down {report.network_down}")
    return 0 if report.live == 0 and not report.network_down else 1


if __name__ == "__main__":
    sys.exit(main())
