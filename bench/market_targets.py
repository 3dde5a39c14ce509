"""Issue 11's targets, read off `crowdlearning demo --json` reports of 10-round markets.

Usage: `.venv/bin/python bench/market_targets.py docs/img/market-issue11-s7-J*.json [--rounds]`

Per report: promotions, how many were slower than the champion they replaced on the laps both
finish (and the worst), rounds in which the honest expert / the human-like player (150 ms, 20%
noise) earned more than 0 a run, honest runs judged worse, rounds in which the random player
was paid, and the last champion's lap completion on the learning curve's easy suite, on every
unlocked family and on the mastered ones (and the mastered ones' lowest in any round).
`--rounds` adds one line per round. With several reports, a last line totals them (the
comparison of two settings over the same seeds) with each honest persona's mean HBAR a run.

Totals only mean something over reports of one program: the same code and the same settings,
seeds aside. Reports record theirs (`config.provenance`, `crowdlearning.provenance`); reports of
different programs are not totalled unless `--mixed` is given (reports written before it
existed have none and count as one unknown program). Each report's line ends with its code's
digest (12 characters), the settings it ran with, and the kind of CPU it ran on (numpy's and
torch's SIMD level): a rerun reproduces a report only on the same kind, but reports of one
program from different kinds are totalled (they are equally valid samples).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HONEST = ("expert", "human-150-0.2", "noisy-0.1", "gamepad-200", "keyboard-200")


def summary(report: dict) -> dict:
    """The targets' figures of one report (see the module docstring)."""
    rounds = report["learning_curve"][1:]
    promoted = [r for r in rounds if r.get("promoted")]
    slower = []
    for r in promoted:
        p = r["promotion"]
        champion, candidate = p["champion_common_lap_s"], p["candidate_common_lap_s"]
        if champion and candidate and candidate > champion:
            slower.append(candidate / champion - 1.0)

    def paid(persona: str) -> int:
        return sum(1 for r in rounds if r["hbar_per_run"].get(persona, 0) > 0)

    last = report["learning_curve"][-1]
    return {
        "promotions": len(promoted),
        "slower": len(slower),
        "worst_slower_pct": 100 * max(slower, default=0.0),
        "expert_paid_rounds": paid("expert"),
        "human_paid_rounds": paid("human-150-0.2"),
        "honest_worse": sum(r["decisions"].get(p, {}).get("worse", 0)
                            for r in rounds for p in HONEST),
        "honest_runs": sum(sum(r["decisions"].get(p, {}).values())
                           for r in rounds for p in HONEST),
        "random_paid_rounds": paid("random"),
        "last_easy": last["lap_completion"],
        "last_unlocked": last["unlocked_lap_completion"],
        "last_mastered": last.get("mastered_lap_completion"),
        # the mastered families' laps at their worst round: what the model kept while it
        # learned the frontier
        "min_mastered": min((r["mastered_lap_completion"] for r in rounds
                             if r.get("mastered_lap_completion") is not None), default=None),
        "families": len(last.get("unlocked") or ["easy"]),
        "frontier": (last.get("unlocked") or ["easy"])[-1],
        "rounds": len(rounds),
        "hbar_per_run": _hbar_per_run(report),
    }


def _hbar_per_run(report: dict) -> dict[str, float]:
    """Each persona's net HBAR per contribution over the whole run."""
    out = {}
    for persona, p in report.get("personas", {}).items():
        if p.get("contributions"):
            out[persona] = p["net_tinybar"] / p["contributions"] / 1e8
    return out


def totals(summaries: list[dict]) -> str:
    """One line summing ``summaries`` (several seeds of one setting)."""
    def total(key: str) -> int:
        return sum(s[key] for s in summaries)

    rounds = total("rounds")
    hbar = " / ".join(
        f"{sum(s['hbar_per_run'].get(p, 0.0) for s in summaries) / len(summaries):+.3f}"
        for p in HONEST)
    return (f"total of {len(summaries)}: promotions {total('promotions')}, slower "
            f"{total('slower')}, expert paid {total('expert_paid_rounds')}/{rounds}, human-like "
            f"paid {total('human_paid_rounds')}/{rounds}, honest worse {total('honest_worse')}/"
            f"{total('honest_runs')}, random paid {total('random_paid_rounds')}, families "
            f"unlocked {total('families')}; HBAR a run {' / '.join(HONEST)}: {hbar}")


def program(report: dict) -> str:
    """The program a report ran: its code digest and settings ("unknown" before reports
    recorded them)."""
    prov = report.get("config", {}).get("provenance")
    if not prov:
        return "unknown"
    settings = " ".join(f"{k}={v}" for k, v in sorted(prov["settings"].items()))
    return f"code {prov['code']['source_sha256'][:12]} {settings or '(defaults)'}"


def machine(report: dict) -> str:
    """The kind of CPU a report ran on (a rerun reproduces it only on the same kind)."""
    m = report.get("config", {}).get("provenance", {}).get("machine")
    if not m:
        return "machine unknown"
    found = m.get("numpy_simd")
    simd = "unknown" if found is None else ("+".join(found) or "baseline")
    return f"on {m.get('arch')} numpy {simd} torch {m.get('torch_cpu') or '-'}"


def _round_line(r: dict) -> str:
    p = r.get("promotion") or {}
    pace = (f"{p['candidate_common_lap_s']:.1f} vs {p['champion_common_lap_s']:.1f} s"
            if p.get("champion_common_lap_s") else "-")
    laps = (f"{p['candidate_lap_completion']:.0%} vs {p['champion_lap_completion']:.0%}"
            if p else "-")
    return (f"  round {r['round']:2d}: champion v{r['version']} promoted={bool(r.get('promoted'))}"
            f" merged={r.get('merged')} frontier={(r.get('unlocked') or ['easy'])[-1]}"
            f" laps {laps} pace {pace} throttle+{p.get('throttle_bias') or 0}"
            f" {r.get('why_not', '')[:70]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--rounds", action="store_true", help="one line per round too")
    parser.add_argument("--mixed", action="store_true",
                        help="total reports of different programs (code or settings) anyway")
    args = parser.parse_args()
    summaries, programs = [], {}
    for path in args.reports:
        report = json.loads(path.read_text())
        s = summary(report)
        summaries.append(s)
        mastered = "-" if s["last_mastered"] is None else f"{s['last_mastered']:.0%}"
        print(f"{path.name}: promotions {s['promotions']}, slower {s['slower']} (worst "
              f"+{s['worst_slower_pct']:.1f}%), expert paid {s['expert_paid_rounds']}/"
              f"{s['rounds']}, human-like paid {s['human_paid_rounds']}/{s['rounds']}, honest "
              f"worse {s['honest_worse']}/{s['honest_runs']}, random paid "
              f"{s['random_paid_rounds']}, last champion: easy {s['last_easy']:.0%} unlocked "
              f"{s['last_unlocked']:.0%} mastered {mastered} (lowest in any round "
              f"{'-' if s['min_mastered'] is None else format(s['min_mastered'], '.0%')}), "
              f"frontier {s['frontier']} ({s['families']} families unlocked); "
              f"{program(report)}; {machine(report)}")
        programs.setdefault(program(report), []).append(path.name)
        if args.rounds:
            for r in report["learning_curve"][1:]:
                print(_round_line(r))
    if len(summaries) > 1:
        if len(programs) > 1 and not args.mixed:
            print(f"not totalled: {len(programs)} programs (pass --mixed to total anyway):")
            for name, paths in programs.items():
                print(f"  {name}: {', '.join(paths)}")
            raise SystemExit(2)
        print(totals(summaries))


if __name__ == "__main__":
    main()
