"""``crowdlearning market-study``'s command line, kept light: ``--help`` and argument mistakes
answer without loading torch, scipy or the simulator (the study itself, ``crowd.study``, loads
them once the arguments are good)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from crowdlearning.cli_args import module_docstring

__all__ = ["DEFAULT_PERSONAS", "study_main"]

DEFAULT_PERSONAS = ("expert", "human-150-0.2", "human-250-0.2", "late-6", "noisy-0.1",
                    "copier-0.01", "copier-0.03", "oversteer-1.6", "keyboard-150",
                    "keyboard-250", "keyboard-threshold", "gamepad-200", "keyboard-wrong",
                    "keyboard-random", "adversary", "gambler-0.3", "random")


def study_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crowdlearning market-study",
                                     description=module_docstring("crowdlearning.crowd.study"),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--personas", default=",".join(DEFAULT_PERSONAS),
                        help="comma-separated persona names (see crowd/personas.py)")
    parser.add_argument("--modes", default="label,takeover", help="label, takeover or both")
    parser.add_argument("--runs", type=int, default=12, help="runs per persona and mode a round")
    parser.add_argument("--rounds", type=int, default=1, help="rounds (merging in between)")
    parser.add_argument("--ticks", type=int, default=1200, help="ticks per run (20 per second)")
    parser.add_argument("--replays", type=int, default=10,
                        help="replayer and sybil attempts per round")
    parser.add_argument("--beta", type=float, default=None,
                        help="label mode: executed = beta * player + (1 - beta) * policy "
                        "(default: the server's setting, CROWDLEARNING_SERVER_LABEL_BETA)")
    parser.add_argument("--disturbance", type=_strength_range, default=None,
                        metavar="LOW,HIGH",
                        help="steering-noise strength range the server draws each run's "
                        "disturbance from (default: the server's setting; 0,0 = none)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the starts, the players' noise and the submission order")
    parser.add_argument("--out", type=Path, default=Path("var/market-study"),
                        help="folder for the JSON report and the plot")
    return parser


def _strength_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 0.1,0.2), got {text!r}"
                                         ) from None
    if not 0.0 <= low <= high <= 1.0:
        raise argparse.ArgumentTypeError(f"needs 0 <= LOW <= HIGH <= 1, got {text!r}")
    return low, high


def study_main(argv: Sequence[str]) -> int:
    parser = study_parser()
    args = parser.parse_args(argv)
    from crowdlearning.crowd.study import run_from_args  # the heavy part, once args are good

    return run_from_args(args, parser)
