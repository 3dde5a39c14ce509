"""Argument types and the usage error shared by the ``crowdlearning`` commands.

A user's mistake on the command line ends in one line on stderr, ``crowdlearning <command>:
error: <what is wrong>``, and exit code 2 (argparse's own convention), never in a traceback.
Nothing here imports more than the standard library: ``--help`` must stay fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

__all__ = ["USAGE_ERROR", "at_least", "module_docstring", "port_number", "usage_error"]

USAGE_ERROR = 2  # exit code of a user's mistake (as argparse exits)


def module_docstring(module: str) -> str:
    """A module's docstring read from its source, without importing it (and what it imports):
    a command's ``--help`` shows its module's documentation and stays fast."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return ""
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""


def usage_error(prog: str, message: str) -> int:
    """Print ``prog: error: message`` on stderr; returns the exit code to return."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def port_number(text: str) -> int:
    """A TCP port, 0..65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"a port is 0..65535 (0 = any free port), got {port}")
    return port


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse
