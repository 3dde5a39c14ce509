"""Checks ``crowdlearning`` runs on a command's arguments before loading the command.

For commands whose own parsers accept values they later crash on (a traceback instead of a
sentence), the mistakes a user makes are named here: ``demo --rounds 0``, an unknown persona in
``demo --crowd``, a port outside 0..65535. Each check takes the command's arguments and returns
what is wrong (``None``: nothing it knows of); the command's own parser still reads them after.
Checks load nothing heavy unless a value needs it (persona names are checked by the persona
factory itself, so the list here never goes stale).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

__all__ = ["CHECKS", "check_demo", "check_ports"]

PORT_FLAGS = ("--port", "--mirror-port")


def _lenient(*flags: str) -> argparse.ArgumentParser:
    """A parser reading only ``flags`` (as strings) and ignoring everything else."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in flags:
        parser.add_argument(flag)
    return parser


def _whole(flag: str, text: str | None, minimum: int) -> str | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        return f"argument {flag}: {text!r} is not a whole number"
    if value < minimum:
        return f"argument {flag}: must be at least {minimum}, got {value}"
    return None


def check_ports(argv: Sequence[str]) -> str | None:
    """Every ``--port`` / ``--mirror-port`` given is a TCP port (0..65535)."""
    args, _ = _lenient(*PORT_FLAGS).parse_known_args(list(argv))
    for flag in PORT_FLAGS:
        text = getattr(args, flag.lstrip("-").replace("-", "_"))
        problem = _whole(flag, text, 0)
        if problem is None and text is not None and int(text) > 65535:
            problem = f"argument {flag}: a port is 0..65535 (0 = any free port), got {text}"
        if problem:
            return problem
    return None


# demo option -> smallest value that runs (ticks: one second at 20 Hz)
DEMO_MINIMUMS = {"--rounds": 1, "--ticks": 20, "--eval-tracks": 1, "--bc-seeds": 1}


def check_demo(argv: Sequence[str]) -> str | None:
    """``demo``: at least one round, tick second, hidden track and baseline seed; every persona
    of ``--crowd`` known, each at least once."""
    args, _ = _lenient(*DEMO_MINIMUMS, "--crowd").parse_known_args(list(argv))
    for flag, minimum in DEMO_MINIMUMS.items():
        problem = _whole(flag, getattr(args, flag.lstrip("-").replace("-", "_")), minimum)
        if problem:
            return problem
    return None if args.crowd is None else _check_crowd(args.crowd)


def _check_crowd(text: str) -> str | None:
    names = []
    for part in text.split(","):
        name, _, count = part.strip().partition(":")
        problem = _whole("--crowd", count or "1", 1)
        if problem:
            return f"{problem} (persona:count, e.g. expert:2,lazy:1)"
        names.append(name.strip())
    import numpy as np

    from crowdlearning.crowd.personas import make_persona

    rng = np.random.default_rng(0)
    for name in names:
        try:
            make_persona(name, rng)
        except ValueError as exc:
            return f"argument --crowd: {exc}"
    return None


# command -> the checks run before it loads
CHECKS: dict[str, tuple[Callable[[Sequence[str]], str | None], ...]] = {
    "demo": (check_demo,),
    "hedera-node": (check_ports,),
    "payments": (check_ports,),
}
