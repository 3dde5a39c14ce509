"""Re-check a published verdict: recompute its hash, re-run the judgment, name what differs.

A verdict's audit message carries ``sha256`` of ``Verdict.record()``: the decision's inputs (the
contribution's digest and label parameters, the champion version, the seed, the hidden suite,
the judge's configuration) and its outputs (scores, intervals, decision, price), nothing about
timing. ``verify`` takes such a record, checks that its hash is what was published, loads the
contribution exactly as it was judged (kept by the verdict service under ``judged/``) and the
champion with the data it was trained on (model registry and dataset of the data directory),
judges it again and compares field by field. Judging is deterministic on a CPU, so an honest
record is reproduced bit for bit.

A round's pool (``evaluation.pooled``, contributor ``pool``) is judged again from its members,
kept the same way, in the order its record names, by the judge they were judged with alone.

``crowdlearning verify-verdict --data-dir DIR`` checks every verdict in ``DIR/verdicts.jsonl``
and every pool in ``DIR/pools.jsonl``
(or ``--contribution ID`` one of them, or ``--record FILE`` a record given as JSON).
Exit code 0 when all are reproduced, 1 when any differs, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from crowdlearning.cli_args import usage_error
from crowdlearning.evaluation.pooled import pool_digest, pooled_verdict
from crowdlearning.evaluation.verdict import POOL_CONTRIBUTOR, Decision, Judge, Verdict
from crowdlearning.evaluation.verify_cli import PROG, verify_main
from crowdlearning.learning.contribution import Contribution, ContributionError
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.registry import ModelRegistry

__all__ = ["Check", "Verifier", "run_from_args", "verify_main"]


@dataclass(frozen=True)
class Check:
    """The outcome of re-checking one verdict."""

    contribution_id: str
    reproduced: bool
    differences: list[str]

    def line(self) -> str:
        if self.reproduced:
            return f"OK       {self.contribution_id}"
        return f"DIFFERS  {self.contribution_id}: " + "; ".join(self.differences)


class Verifier:
    """Re-judges verdicts against the models, data and judged contributions of ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.registry = ModelRegistry(data_dir / "models")
        self.dataset = AggregatedDataset(data_dir / "dataset")
        self._judges: dict[str, Judge] = {}

    def check(self, record: dict, published_sha256: str | None = None) -> Check:
        """Re-check one verdict record (``Verdict.record()`` or ``to_json()`` as a dict)."""
        fields = {k: v for k, v in record.items() if k != "elapsed_s"}
        try:
            claimed = Verdict(**{**fields, "decision": Decision(fields["decision"])})
        except (KeyError, TypeError, ValueError) as exc:
            return Check(str(record.get("contribution_id", "?")), False,
                         [f"not a verdict record: {exc}"])
        cid, diffs = claimed.contribution_id, []
        if published_sha256 is not None and claimed.sha256 != published_sha256:
            diffs.append(f"sha256 of the record {claimed.sha256[:16]}... is not the published "
                         f"{published_sha256[:16]}...")
        if claimed.decision is Decision.REJECTED:
            return Check(cid, not diffs, diffs)  # screening's refusal: nothing was judged
        pool = claimed.contributor_id == POOL_CONTRIBUTOR
        try:
            members = ([self._archived(m) for m in claimed.label_params["members"]] if pool
                       else [self._archived(cid)])
        except (OSError, ContributionError, KeyError, TypeError) as exc:
            return Check(cid, False, [*diffs, f"judged contribution not found ({exc})"])
        digest = pool_digest(members) if pool else members[0].digest
        if digest != claimed.contribution_digest:
            diffs.append("the kept contribution's digest is not the one in the record")
        try:
            judge = self._judge(_as_judged_alone(claimed) if pool else claimed)
        except (KeyError, ValueError, TypeError, FileNotFoundError) as exc:
            return Check(cid, False, [*diffs, f"cannot rebuild the judge: {exc}"])
        again = pooled_verdict(judge, members) if pool else judge.judge(members[0])
        mine, theirs = again.record(), claimed.record()
        diffs += [f"{k}: recorded {_short(theirs.get(k))}, re-judged {_short(mine.get(k))}"
                  for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        return Check(cid, not diffs, diffs)

    def _archived(self, contribution_id: str) -> Contribution:
        from crowdlearning.platform.service import archived_path

        path = archived_path(self.data_dir, contribution_id)
        return Contribution.from_bytes(path.read_bytes())

    def _judge(self, claimed: Verdict) -> Judge:
        key = json.dumps([claimed.champion_version, claimed.seed, claimed.judge_config],
                         sort_keys=True)
        if key not in self._judges:
            version = claimed.champion_version
            net, _ = self.registry.load(version)
            data = self.dataset.load(self.registry.contributions_in(version))
            self._judges[key] = Judge.from_config_record(claimed.judge_config, net, version,
                                                         data, claimed.seed)
        return self._judges[key]


def _as_judged_alone(pool: Verdict) -> Verdict:
    """A pool's verdict with the judge its members were judged with alone (one contribution's
    share of a minibatch, their suite and seed): the judge ``Judge.judge_pooled`` started
    from."""
    params = pool.label_params
    config = json.loads(json.dumps(pool.judge_config))
    config["verdict"]["finetune"]["extra_batch"] = params["member_extra_batch"]
    config["verdict"]["rotation"] = params["member_rotation"]
    return replace(pool, judge_config=config, seed=params["member_seed"])


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def _log_records(log: Path) -> Iterator[tuple[dict, str | None]]:
    with log.open() as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if isinstance(entry, dict) and "verdict" in entry:
                yield entry["verdict"], entry.get("sha256")


def run_from_args(args: argparse.Namespace) -> int:
    """Check the verdicts ``evaluation.verify_cli`` asked for, once it has found its inputs."""
    data_dir = args.data_dir
    verifier = Verifier(data_dir)
    if args.record is not None:
        try:
            records = [(json.loads(args.record.read_text()), args.sha256)]
        except (OSError, ValueError) as exc:
            return usage_error(PROG, f"cannot read {args.record}: {exc}")
    else:
        log = data_dir / "verdicts.jsonl"
        pools = data_dir / "pools.jsonl"  # the rounds' pools (evaluation/pooled.py), if any
        found = [*_log_records(log), *(_log_records(pools) if pools.is_file() else [])]
        records = [(r, h) for r, h in found
                   if args.contribution is None or r.get("contribution_id") == args.contribution]
        if not records:
            which = f"of {args.contribution} " if args.contribution else "s "
            return usage_error(PROG, f"no verdict{which}in {log}")
    checks = [verifier.check(r, h) for r, h in tqdm(records, desc="verdicts", unit="verdict",
                                                     disable=len(records) < 5)]
    for check in checks:
        print(check.line())
    good = sum(c.reproduced for c in checks)
    print(f"{good} of {len(checks)} verdicts reproduced")
    return 0 if good == len(checks) else 1
