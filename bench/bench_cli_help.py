"""How fast does ``crowdlearning <command> --help`` answer? (issue 12: under a second each)

Runs the installed command's help in a fresh process, as a user types it, ``--repeat`` times per
command (after one warm-up run, so the OS file cache is warm as on a second try), and prints the
median and the slowest wall time per command, with the modules it imported beyond the standard
library (``-X importtime``: the top ones by cumulative time) for any command over the target.
Every command of ``crowdlearning.cli.COMMANDS`` and the subcommands listed here is measured.
Run:

    .venv/bin/python bench/bench_cli_help.py
    .venv/bin/python bench/bench_cli_help.py --repeat 5 --only serve judge
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

SUBCOMMANDS = ("payments serve", "audit verify")
TARGET_S = 1.0


def help_time(command: str) -> float:
    """Wall seconds of ``crowdlearning <command> --help`` in a new process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWDLEARNING_")}
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "crowdlearning.cli", *command.split(), "--help"],
                       capture_output=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"{command} --help exited {r.returncode}: {r.stderr.decode()[-500:]}")
    return elapsed


def heaviest_imports(command: str, top: int = 5) -> list[tuple[float, str]]:
    """The ``top`` imports by cumulative time (s) when ``command --help`` runs."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "crowdlearning.cli",
                        *command.split(), "--help"], capture_output=True, text=True, check=False)
    rows = []
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if m and len(m.group(2)) <= 3:  # top-level imports only
            rows.append((int(m.group(1)) / 1e6, m.group(3)))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per command")
    parser.add_argument("--only", nargs="*", default=None, help="commands to measure")
    args = parser.parse_args()
    commands = args.only or ["", *COMMANDS, *SUBCOMMANDS]
    print(f"{'command':<22}{'median s':>10}{'max s':>8}  under {TARGET_S:.0f} s")
    slow = []
    for command in commands:
        help_time(command)  # warm-up
        times = [help_time(command) for _ in range(args.repeat)]
        median, worst = statistics.median(times), max(times)
        ok = worst < TARGET_S
        print(f"{(command or '(none)') + ' --help':<22}{median:>10.2f}{worst:>8.2f}  "
              f"{'yes' if ok else 'NO'}", flush=True)
        if not ok:
            slow.append(command)
    for command in slow:
        heavy = ", ".join(f"{name} {s:.2f} s" for s, name in heaviest_imports(command))
        print(f"{command}: imports {heavy}")


if __name__ == "__main__":
    main()
