"""``crowdlearning audit verify``: check a verdict or a settled payout against the audit topic.

    crowdlearning audit verify --contribution ID        [--data-dir DIR | --database-url URL]
    crowdlearning audit verify --payout-transaction ID  [--mirror-url URL] [--json]

Reads the audit journal in the ledger database (never writes it), rebuilds the entry's inclusion
proof, reads the block's message from the topic on a mirror node, and prints each check. Exit
code: 0 verified, 1 something differs (named), 2 cannot be told yet (unknown id, not published
yet, not on the mirror yet, mirror unreachable).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crowdlearning.config import Settings

__all__ = ["audit_main"]

PROG = "crowdlearning audit verify"


def audit_main(argv: Sequence[str]) -> int:
    """``crowdlearning audit <verify> ...``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="crowdlearning audit",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check one verdict or settled payout",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("--contribution", metavar="ID", help="a judged contribution (run) id")
    which.add_argument("--payout-transaction", metavar="ID",
                       help="a settlement transaction id (payer@seconds.nanos)")
    verify.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="the deployment's data directory (its SQLite ledger and verdict "
                        "log; default CROWDLEARNING_DATA_DIR)")
    verify.add_argument("--database-url", metavar="URL",
                        help="the ledger database (default CROWDLEARNING_DATABASE_URL, or "
                        "DIR/crowdlearning.db)")
    verify.add_argument("--mirror-url", metavar="URL",
                        help="mirror node REST base .../api/v1 (default: the configured one, "
                        "the public mirror, or the local network's view)")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(list(argv))
    # loaded after parsing, so that --help answers at once
    from crowdlearning.audit.journal import AuditJournal
    from crowdlearning.audit.mirror import MirrorTopicReader, default_mirror_url
    from crowdlearning.audit.verify import verdict_record_from_log, verify_entry
    from crowdlearning.config import get_settings
    from crowdlearning.errors import HederaUnavailableError
    from crowdlearning.ledger.db import make_engine

    settings = _settings(get_settings(), args.data_dir, args.database_url)
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        print(f"{PROG}: error: no ledger database at {url}", file=sys.stderr)
        return 2
    engine = make_engine(url)
    reader = MirrorTopicReader(args.mirror_url or default_mirror_url(settings))
    journal = AuditJournal(engine)
    try:
        if args.contribution is not None:
            kind, subject = "verdict", args.contribution
            expected = verdict_record_from_log(settings.data_dir / "verdicts.jsonl", subject)
            books = "the verdict log"
        else:
            kind, subject = "payouts", args.payout_transaction
            expected, books = journal.settled_record(subject), "the ledger"
            if not expected["payouts"]:
                expected = None
        report = verify_entry(journal, reader, kind, subject, expected_record=expected,
                              books=books)
    except HederaUnavailableError as exc:
        print(f"{PROG}: cannot read the topic: {exc}", file=sys.stderr)
        return 2
    finally:
        reader.close()
        engine.dispose()
    if args.json:
        print(json.dumps({"kind": report.kind, "subject": report.subject,
                          "exit_code": report.exit_code,
                          "checks": [c.__dict__ for c in report.checks],
                          "proof": report.proof.to_dict() if report.proof else None}, indent=2))
    else:
        print("\n".join(report.lines()))
    return report.exit_code


def _settings(base: Settings, data_dir: Path | None, database_url: str | None) -> Settings:
    from crowdlearning.config import Settings

    update: dict[str, object] = {}
    if data_dir is not None:
        update["data_dir"] = data_dir
        if base.database_url == Settings.model_fields["database_url"].default:
            update["database_url"] = f"sqlite:///{data_dir / 'crowdlearning.db'}"
    if database_url:
        update["database_url"] = database_url
    return base.model_copy(update=update)
