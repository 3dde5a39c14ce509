"""The ``crowdlearning`` command: one subcommand per job (``crowdlearning --help``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["main"]

# subcommand -> ("module:function", help); each function takes argv and returns an exit code.
# Modules load lazily so that `crowdlearning --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("crowdlearning.server.cli:serve_main",
              "the game on http://127.0.0.1:8000 (embedded defaults): the main job"),
    "judge": ("crowdlearning.server.cli:judge_main",
              "the shared judge of several game servers (over Redis)"),
    "stack": ("crowdlearning.deploy.cli:stack_main",
              "several game servers behind HAProxy, judge and all, on this machine"),
    "run": ("crowdlearning.sim.cli:run_main", "the expert drives a track, writes a PNG"),
    "drive": ("crowdlearning.sim.cli:drive_main", "drive the scripted expert around a track"),
    "track": ("crowdlearning.sim.cli:track_main", "print a track as JSON (by seed or name)"),
    "demo": ("crowdlearning.crowd.demo_cli:demo_main",
             "a simulated crowd improves the model; writes a report"),
    "verify-verdict": ("crowdlearning.evaluation.verify_cli:verify_main",
                       "re-run published verdicts; confirm decision and hash bit for bit"),
    "audit": ("crowdlearning.audit.cli:audit_main",
              "audit verify: prove a verdict or payout is on the audit topic"),
    "market-study": ("crowdlearning.crowd.study_cli:study_main",
                     "a large simulated crowd: earnings and penalty rates per persona"),
    "payments": ("crowdlearning.payments.cli:main",
                 "third-party payments API: serve, issue-key, revoke-key, return-url"),
    "hedera-node": (
        "crowdlearning.payments.local_network.cli:main",
        "start the local Hedera-compatible network and print how to connect",
    ),
    "sign-link": ("crowdlearning.server.link_cli:sign_link_main",
                  "sign the Wallet page's challenge to link your Hedera account"),
}


def _load(target: str) -> Callable[[Sequence[str]], int]:
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


# Every command computes in one thread per library (the game loop, the judge, the studies): on a
# shared 2-core machine a second BLAS thread on the game loop cost 5x CPU. Set before numpy,
# torch or numba load (they load lazily, below); an explicit environment value wins.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user's mistake is one line on stderr and exit code 2."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="crowdlearning", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), help="what to run")
    lines = "\n".join(f"  {name:<14} {helptext}" for name, (_, helptext) in COMMANDS.items())
    parser.epilog = f"commands:\n{lines}\n\n`crowdlearning <command> --help` explains each."
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return 0
    args = parser.parse_args(argv[:1])
    return _run(args.command, argv[1:])


def _run(command: str, argv: list[str]) -> int:
    from crowdlearning.cli_args import usage_error
    from crowdlearning.cli_checks import CHECKS

    prog = f"crowdlearning {command}"
    if not {"-h", "--help"} & set(argv):
        for check in CHECKS.get(command, ()):
            problem = check(argv)
            if problem:
                return usage_error(prog, problem)
    from crowdlearning.errors import ConfigurationError, TrackError

    try:
        return int(_load(COMMANDS[command][0])(argv) or 0)
    except (ConfigurationError, TrackError) as exc:
        return usage_error(prog, str(exc))
    except Exception as exc:
        if not _is_settings_error(exc):
            raise
        return usage_error(prog, "invalid setting: " + "; ".join(
            f"CROWDLEARNING_{'_'.join(map(str, e['loc'])).upper() or '*'}: {e['msg']}"
            for e in exc.errors()))  # type: ignore[attr-defined]


def _is_settings_error(exc: Exception) -> bool:
    """A pydantic error about the ``CROWDLEARNING_*`` settings. pydantic is not imported for it
    (0.1 s of every ``--help``): an error it raised means a command has loaded it already."""
    pydantic = sys.modules.get("pydantic")
    return (pydantic is not None and isinstance(exc, pydantic.ValidationError)
            and exc.title == "Settings")


if __name__ == "__main__":
    raise SystemExit(main())
