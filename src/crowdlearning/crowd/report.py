"""The demo's report: a learning-curve picture and a markdown summary."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["learning_curve_png", "markdown_report"]


def learning_curve_png(report: dict, path: Path) -> Path:
    """Lap completion on hidden tracks against labels: DAgger crowd vs behaviour cloning."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        dagger = report.get("dagger") or report["learning_curve"]
        label = ("crowd DAgger (model versions)" if "dagger" in report
                 else "champion (merged after verdicts)")
        ax.plot([p["labels"] for p in dagger], [100 * p["lap_completion"] for p in dagger],
                marker="o", label=label)
        bc = report.get("behaviour_cloning") or []
        if bc:
            ax.plot([p["labels"] for p in bc], [100 * p["lap_completion"] for p in bc],
                    marker="s", linestyle="--", label="behaviour cloning, same label budget")
        ax.axhline(90, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("labels")
        ax.set_ylabel("lap completion on hidden tracks [%]")
        ax.set_ylim(0, 102)
        ax.set_title("Learning curve")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.savefig(path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown_report(report: dict) -> str:
    return _market_md(report) if "learning_curve" in report else _dagger_md(report)


def _market_md(report: dict) -> str:
    cfg = report["config"]
    lines = [
        "# CrowdLearning demo report: play, verdicts, payments", "",
        f"Crowd: {cfg['crowd']}; {cfg['rounds']} rounds of {cfg['session_ticks']}-tick "
        f"sessions; verdicts at {cfg['verdict']['confidence']:.0%} confidence with a "
        f"{cfg['verdict']['margin_pct']}% margin on {cfg['verdict']['suite_size']} hidden "
        f"tracks; seed {cfg['seed']}.", "",
        "![learning curve](learning_curve.png)", "",
        "| persona | contributions | paid (of them from the round's pool) | penalized | "
        "no effect | rejected | net HBAR |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, b in report["personas"].items():
        lines.append(f"| {name} | {b['contributions']} | {b['paid']} ({b.get('pooled', 0)}) | "
                     f"{b['penalized']} | {b['no_effect']} | {b['rejected']} | "
                     f"{b['net_tinybar'] / 1e8:+.4f} |")
    lines += ["", "| round | champion | labels | lap completion | mean progress | "
              "mean lap time [s] | laps, unlocked families | lap time, unlocked [s] | "
              "merged | promoted (common laps [s]: champion -> candidate) | "
              "unlocked families |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for p in report["learning_curve"]:
        promo = p.get("promotion")
        promoted = str(p.get("promoted", "-"))
        if promo and promo.get("candidate_common_lap_s") is not None:
            promoted += (f" ({promo['champion_common_lap_s']:.1f} -> "
                         f"{promo['candidate_common_lap_s']:.1f})")
        by_family = ", ".join(f"{k} {_pct(v)}"
                              for k, v in p.get("lap_completion_by_family", {}).items())
        lines.append(f"| {p['round']} | v{p['version']} | {p['labels']} | "
                     f"{_pct(p['lap_completion'])} | {_pct(p['mean_progress'])} | "
                     f"{_seconds(p['mean_lap_time_s'])} | "
                     f"{_pct(p.get('unlocked_lap_completion', p['lap_completion']))}"
                     f"{f' ({by_family})' if by_family else ''} | "
                     f"{_seconds(p.get('unlocked_mean_lap_time_s'))} | {p.get('merged', '-')} | "
                     f"{promoted} | {', '.join(p.get('unlocked', [])) or '-'} |")
    checks = [p["aa"] for p in report["learning_curve"] if p.get("aa")]
    if checks:
        lines += ["", "A/A check (fresh placebos judged against each champion):", "",
                  "| champion | placebos | improved | worse |", "|---:|---:|---:|---:|"]
        lines += [f"| v{a['version']} | {a['placebos']} | {a['improved']} | {a['worse']} |"
                  for a in checks]
    rounds = [p for p in report["learning_curve"] if "hbar_per_run" in p]
    personas = sorted({name for p in rounds for name in p["hbar_per_run"]})
    if rounds:
        lines += ["", "Earnings per run by round (HBAR; the champion the round was played "
                  "against), and why a candidate was not promoted:", "",
                  "| round | played on | " + " | ".join(personas) + " | the round's pool | "
                  "not promoted because |",
                  "|---:|---:|" + "---:|" * len(personas) + "---|---|"]
        for p in rounds:
            cells = " | ".join(f"{p['hbar_per_run'].get(name, 0.0):+.4f}" for name in personas)
            lines.append(f"| {p['round']} | v{p['played_on']} | {cells} | {_pool(p.get('pool'))} "
                         f"| {p.get('why_not') or '-'} |")
    lat, st = report["verdict_latency_s"], report["settlement"]
    lines += ["", f"Verdict latency: median {lat['median']:.2f} s, p95 {lat['p95']:.2f} s "
              f"over {lat['count']} contributions.", "",
              f"Settlement: {st['paid_on_chain_tinybar'] / 1e8:.4f} HBAR on the players' Hedera "
              f"accounts; transactions still live: {st['live_after']}; books: {st['books']}; "
              f"reconciliation: {st['reconciliation']}."]
    return "\n".join(lines) + "\n"


def _pool(pool: dict | None) -> str:
    """A round's pool in a table cell: its decision, its runs and what it paid."""
    if not pool:
        return "-"
    paid = sum(pool.get("shares", {}).values()) / 1e8
    return (f"{pool['decision'].replace('_', ' ')}, {len(pool['members'])} runs"
            f"{f', {paid:.4f} HBAR shared' if paid else ''}")


def _dagger_md(report: dict) -> str:
    cfg = report["config"]
    lines = [
        "# CrowdLearning demo report", "",
        f"Crowd: {cfg['crowd']}; {cfg['rounds']} rounds of {cfg['session_ticks']}-tick sessions; "
        f"hidden suite: {cfg['eval_tracks']} tracks x 2 starts ({cfg['eval_runs']} runs); "
        f"seed {cfg['seed']}.", "",
        "![learning curve](learning_curve.png)", "",
        "| version | labels | lap completion | mean progress | exits | mean lap time [s] |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for p in report["dagger"]:
        lines.append(f"| {p['version']} | {p['labels']} | {_pct(p['lap_completion'])} | "
                     f"{_pct(p['mean_progress'])} | {_pct(p['exit_rate'])} | "
                     f"{_seconds(p['mean_lap_time_s'])} |")
    bc = report.get("behaviour_cloning") or []
    if bc:
        lines += ["", "Behaviour cloning on the same number of expert-driven labels "
                  f"(mean of {cfg.get('bc_seeds', 1)} training seeds):", "",
                  "| labels | lap completion | mean progress | exits |", "|---:|---:|---:|---:|"]
        for p in bc:
            lines.append(f"| {p['labels']} | {_pct(p['lap_completion'])} | "
                         f"{_pct(p['mean_progress'])} | {_pct(p['exit_rate'])} |")
    lines += ["", "Labels per persona:", "", "| persona | contributions | labels |",
              "|---|---:|---:|"]
    for name, s in report["personas"].items():
        lines.append(f"| {name} | {s['contributions']} | {s['labels']} |")
    return "\n".join(lines) + "\n"
