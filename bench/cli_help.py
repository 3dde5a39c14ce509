"""How fast does each ``crowdlearning ... --help`` answer? (issue 12: under a second each)

Every command of ``crowdlearning --help`` and every subcommand their own help lists (``payments
serve``, ``audit verify``, ...) is asked for ``--help`` in a fresh process, as a user types it:
one warm-up run (the OS file cache warm, as on a second try), then ``--repeat`` timed runs. Prints
per command the median and slowest wall seconds, the ratio of the slowest to the 1 s target, and
which heavy libraries the help loaded (``-X importtime``), with the load average before and after
(the machine is shared: a figure taken at load 3 on 2 cores is not one taken at load 0). Exits 1
when any command's slowest run is over the target.

    .venv/bin/python bench/cli_help.py
    .venv/bin/python bench/cli_help.py --repeat 5 --only demo verify-verdict
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from crowdlearning.cli import COMMANDS

TARGET_S = 1.0
CLI = [sys.executable, "-m", "crowdlearning.cli"]
# libraries a --help has no need of; naming the ones loaded says where the time went
HEAVY = ("torch", "scipy", "numba", "matplotlib", "sqlalchemy", "fastapi", "hiero_sdk_python",
         "grpc", "onnx", "pandas", "ray")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CROWDLEARNING_")}


def help_seconds(command: str) -> float:
    """Wall seconds of ``crowdlearning <command> --help`` in a new process."""
    start = time.perf_counter()
    r = subprocess.run([*CLI, *command.split(), "--help"], capture_output=True, env=_env(),
                       check=False)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{command} --help exited {r.returncode}: {r.stderr.decode()[-500:]}")
    return elapsed


def subcommands(command: str) -> list[str]:
    """``command``'s subcommands, read from the ``{a,b,c}`` choices of its usage line."""
    r = subprocess.run([*CLI, command, "--help"], capture_output=True, text=True, env=_env(),
                       check=False)
    usage = r.stdout.split("\n\n", 1)[0]
    m = re.search(r"\{([\w,-]+)\} \.\.\.", usage)
    return [f"{command} {name}" for name in m.group(1).split(",")] if m else []


def heavy_imports(command: str) -> list[str]:
    """The heavy libraries (``HEAVY``) that ``command --help`` imports."""
    r = subprocess.run([sys.executable, "-X", "importtime", *CLI[1:], *command.split(), "--help"],
                       capture_output=True, text=True, env=_env(), check=False)
    loaded = {m.group(1) for m in re.finditer(r"\|\s*([\w.]+)$", r.stderr, re.M)}
    return [name for name in HEAVY if name in loaded]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per command")
    parser.add_argument("--only", nargs="*", default=None,
                        help="commands to measure (default: all, with their subcommands)")
    args = parser.parse_args()
    if args.only:
        commands = args.only
    else:
        commands = [""]
        for command in COMMANDS:
            commands += [command, *subcommands(command)]
    load_before = os.getloadavg()
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f} ({os.cpu_count()} CPUs); {args.repeat} runs after a warm-up")
    print(f"{'command':<30}{'median s':>9}{'max s':>8}{'max/1s':>8}  heavy imports")
    worst_all, slow = 0.0, []
    for command in commands:
        help_seconds(command)  # warm-up
        times = [help_seconds(command) for _ in range(args.repeat)]
        median, worst = statistics.median(times), max(times)
        worst_all = max(worst_all, worst)
        if worst >= TARGET_S:
            slow.append(command)
        heavy = ", ".join(heavy_imports(command)) or "-"
        label = f"{command or '(none)'} --help"
        print(f"{label:<30}{median:>9.2f}{worst:>8.2f}{worst / TARGET_S:>8.2f}  {heavy}",
              flush=True)
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"{len(commands)} commands, slowest {worst_all:.2f} s "
          f"({worst_all / TARGET_S:.2f}x the {TARGET_S:.0f} s target); "
          f"over the target: {', '.join(slow) or 'none'}")
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
