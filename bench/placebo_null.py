"""A market run's verdict null, placebo by placebo: how long the placebos are, how wide the
null is with placebos that end at the champion's first exit and with placebos as long as runs
(`verdict_null_full_runs`), and the A/A check (fresh placebos judged as contributions).

Usage (the market's verdict settings in the environment, as the run had them):

    CROWDLEARNING_VERDICT_FRONTIER_SHARE=0.75 CROWDLEARNING_VERDICT_FOCUS_STARTS=0.75 \\
    CROWDLEARNING_VERDICT_NULL_NOISE=0.15 CROWDLEARNING_VERDICT_NULL_FOLLOWS_SUITE=true \\
    .venv/bin/python bench/placebo_null.py RUN.json:ROUND [RUN.json:ROUND ...] \\
        [--aa 16] [--rejudge 9] [--null-ticks 600]

RUN.json is a `crowdlearning demo --json` report whose `--out` folder still exists; ROUND the
round whose judge is rebuilt (the champion and unlocked families after the round before).
`--rejudge N` rejudges the first N judged contributions of that champion from the run's archive
under both nulls. `--null-ticks` sets the placebos' run length (`VerdictConfig.null_ticks`, 1200
as the game's runs; the market's sessions are `session_ticks`, 600). Figures of 2026-11-30 in
docs/verdict.md ("placebos as long as runs").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import torch

from crowdlearning.config import get_settings
from crowdlearning.evaluation.verdict import Judge, VerdictConfig
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.platform.service import archived_path

torch.set_num_threads(1)


def _run_dir(report: dict) -> Path:
    work = Path(report["work_dir"])
    runs = sorted(work.glob("run-*")) if not (work / "models").exists() else [work]
    if not runs:
        raise SystemExit(f"no run folder under {work}: was the demo's --out kept?")
    return runs[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="RUN.json:ROUND")
    parser.add_argument("--aa", type=int, default=0, help="fresh placebos judged per null")
    parser.add_argument("--rejudge", type=int, default=0,
                        help="judged contributions of that champion rejudged per null")
    parser.add_argument("--null-ticks", type=int, default=0,
                        help="placebo run length [ticks] (0: the judge's, 1200)")
    args = parser.parse_args()
    aa_total: Counter = Counter()
    for spec in args.specs:
        path, _, rnd_text = spec.rpartition(":")
        report = json.loads(Path(path).read_text())
        rnd = int(rnd_text)
        before = report["learning_curve"][max(rnd - 1, 0)]
        version, families = before["version"], tuple(before.get("unlocked") or ["easy"])
        run = _run_dir(report)
        registry = ModelRegistry(run / "models")
        net, _ = registry.load(version)
        data = AggregatedDataset(run / "dataset").load(registry.contributions_in(version))
        config = VerdictConfig.from_settings(get_settings())
        config = replace(config, rotation=config.rotation + version)
        if args.null_ticks:
            config = replace(config, null_ticks=args.null_ticks)
        if families != ("easy",):
            config = replace(config, families=families)
        judged = [json.loads(line) for line in (run / "verdicts.jsonl").open()]
        judged = [v for v in judged if v["verdict"]["champion_version"] == version
                  and v["verdict"].get("runs")][:args.rejudge]
        print(f"{Path(path).name} round {rnd}: champion v{version}, frontier {families[-1]}")
        for full in (False, True):
            started = time.perf_counter()
            judge = Judge(net, version, data, config=replace(config, null_full_runs=full))
            means = judge.null_diffs_m.mean(axis=1)
            rows = [len(p) for p in judge.placebos(config.null_runs)]
            low, high = judge.null_interval(judge.suite.num_runs)
            print(f"  placebos {'as long as runs' if full else 'to the first exit'}: rows "
                  f"{min(rows)}-{max(rows)}, mean effects sd {means.std(ddof=1):.1f} m, null "
                  f"[{low:.1f}, {high:.1f}] m ({time.perf_counter() - started:.0f} s)")
            print(f"    placebo mean effects [m]: {np.round(np.sort(means), 1).tolist()}")
            for v in judged:
                cid = v["verdict"]["contribution_id"]
                c = Contribution.from_bytes(archived_path(run, cid).read_bytes())
                r = judge.judge(c)
                print(f"    {cid}: {r.decision} {r.mean_diff_m:+.1f} m [{r.ci_low_m:.1f}, "
                      f"{r.ci_high_m:.1f}] (in the run: {v['verdict']['decision']})")
            if args.aa:
                counts = Counter(str(d) for d, _ in judge.placebo_decisions(args.aa))
                aa_total.update({(full, k): n for k, n in counts.items()})
                print(f"    A/A: {dict(counts)}")
    if args.aa:
        for full in (False, True):
            kind = "as long as runs" if full else "to the first exit"
            print(f"A/A total, placebos {kind}: improved {aa_total[(full, 'improved')]}, worse "
                  f"{aa_total[(full, 'worse')]} of {args.aa * len(args.specs)}")


if __name__ == "__main__":
    main()
