"""``crowdlearning demo``'s command line, kept light: ``--help`` and argument mistakes answer
without loading torch, numpy or the simulator (the demo itself, ``crowd.demo``, loads them once
the arguments are good)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from crowdlearning.cli_args import at_least, module_docstring

__all__ = ["BC_SEEDS", "demo_main", "demo_parser", "parse_crowd"]

BC_SEEDS = 3  # behaviour-cloning seeds averaged by default (crowd.demo.DemoConfig.bc_seeds)


def parse_crowd(text: str) -> dict[str, int]:
    """``expert:2,lazy:1,random`` -> ``{"expert": 2, "lazy": 1, "random": 1}`` (names are
    checked against the personas by ``cli_checks`` before the demo loads)."""
    crowd: dict[str, int] = {}
    for part in text.split(","):
        name, _, count = part.partition(":")
        if not name.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: persona:count, e.g. expert:2,lazy:1")
        crowd[name.strip()] = at_least(1)(count or "1")
    return crowd


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}")
    return value


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crowdlearning demo",
                                     description=module_docstring("crowdlearning.crowd.demo"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=at_least(1), default=None,
                        help="rounds of play, judging and merging (default: the config's)")
    parser.add_argument("--crowd", type=parse_crowd, default=None,
                        help="persona:count list, e.g. expert:2,lazy:1,random:1")
    parser.add_argument("--ticks", type=at_least(20), default=None,
                        help="ticks per session (20/s)")
    parser.add_argument("--eval-tracks", type=at_least(1), default=None,
                        help="hidden tracks of the learning curve's suite (2 starts each)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the crowd, the initial model and the play")
    parser.add_argument("--missions", type=_share, default=None,
                        help="share of the crowd's runs started on a mission, a few seconds "
                        "before a segment the champion fails (default 1; 0: random starts)")
    parser.add_argument("--aa", type=at_least(0), default=0,
                        help="A/A check: fresh placebo contributions judged against every "
                        "champion the crowd plays on (improved/worse counts in the report)")
    parser.add_argument("--accept-all", action="store_true",
                        help="plain DAgger, no verdicts, with the behaviour-cloning baseline")
    parser.add_argument("--no-baseline", action="store_true",
                        help="with --accept-all: skip the behaviour-cloning comparison")
    parser.add_argument("--bc-seeds", type=at_least(1), default=BC_SEEDS,
                        help="training seeds averaged for the behaviour-cloning comparison")
    parser.add_argument("--out", type=Path, default=Path("var/demo"),
                        help="folder for report.md and the learning-curve PNG")
    parser.add_argument("--json", type=Path, default=None, dest="json_path",
                        help="also write the report's figures as JSON here")
    return parser


def demo_main(argv: Sequence[str]) -> int:
    args = demo_parser().parse_args(argv)
    from crowdlearning.crowd.demo import run_from_args  # the heavy part, once args are good

    return run_from_args(args)
