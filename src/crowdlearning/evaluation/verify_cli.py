"""``crowdlearning verify-verdict``'s command line, kept light: ``--help`` and argument mistakes
answer without loading torch or the judge (``evaluation.verify`` loads them once the arguments
are good)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from crowdlearning.cli_args import module_docstring, usage_error

__all__ = ["PROG", "verify_main", "verify_parser"]

PROG = "crowdlearning verify-verdict"


def verify_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=module_docstring("crowdlearning.evaluation.verify"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the judge's data directory (models/, dataset/, judged/, "
                        "verdicts.jsonl); default: CROWDLEARNING_DATA_DIR")
    parser.add_argument("--contribution", metavar="ID", default=None,
                        help="check only this contribution's verdict from the log")
    parser.add_argument("--record", type=Path, default=None,
                        help="check a verdict record given as a JSON file instead of the log")
    parser.add_argument("--sha256", default=None,
                        help="with --record: the hash published on the audit topic")
    return parser


def verify_main(argv: Sequence[str]) -> int:
    """Exit code 0 when every verdict checked is reproduced, 1 when any differs, 2 on a usage
    error (one line on stderr)."""
    parser = verify_parser()
    args = parser.parse_args(argv)
    if args.sha256 is not None and args.record is None:
        return usage_error(PROG, "--sha256 goes with --record (the log carries its hashes)")
    if args.data_dir is None:
        from crowdlearning.config import get_settings

        args.data_dir = get_settings().data_dir
    if not args.data_dir.is_dir():
        return usage_error(PROG, f"data directory {args.data_dir} does not exist")
    if args.record is not None and not args.record.is_file():
        return usage_error(PROG, f"no record file at {args.record}")
    if args.record is None and not (args.data_dir / "verdicts.jsonl").is_file():
        return usage_error(PROG, f"no verdict log at {args.data_dir / 'verdicts.jsonl'}")
    from crowdlearning.evaluation.verify import run_from_args  # the heavy part

    return run_from_args(args)
