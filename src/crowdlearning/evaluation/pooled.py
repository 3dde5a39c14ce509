"""The round's pool: honest runs too small to prove alone, judged together.

Once a champion drives well, one 30-second run moves it by less than the training noise of a
fine-tune, so an honest run that pointed the right way is judged "no effect" and paid nothing
(docs/verdict.md, "Fragile champions"): in the issue 11 market the expert went unpaid in half
the rounds. Many such runs *together* are more data: an honest correction adds up across runs
where label noise averages out, so their pool can clear a null that each alone could not.

At the round's close (``platform.service``, ``pooled_verdict``) the round's runs that

- were judged on their merits (not refused, not "nothing to learn") and "no effect", and
- pointed the right way: a mean difference above 0 (a run that measured harm never joins),

are pooled (at least ``min_members``) and judged as one contribution against the same
champion (``Judge.judge_pooled``), with a null of placebos pooled the same way (each of the
null's placebos is as many placebos concatenated): a pool is held to the training noise of
data its size, not of one run. Judged improved, the pool is merged with the round's accepted
contributions and paid:

- its price is one contribution's price of the pool's effect, with the cap multiplied by the
  members (each run could have earned one cap);
- each *paid* member's share is the price times its own measured effect over the members'
  total (its part of the improvement, as its own verdict measured it), times its labels'
  precision (as a reward alone is): a lucky run of random labels that joins takes a small share
  of little, and a practice member's share stays in the budget.

A pool judged anything else moves no money and merges nothing: its members keep their "no
effect" verdicts and their stakes were already released. A pool is never penalized (nobody in
it was judged worse). Its verdict is kept and journaled like a contribution's, under
``pool_id_of`` (the champion's version and the members' ids: deterministic, so a retried round
close judges and pays the same pool once).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from crowdlearning.evaluation.verdict import Decision, Judge, PriceSchedule, Verdict
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.labels import LabelSet, extract_labels

PPM = 1_000_000  # a label precision in millionths (``pool_shares``)

__all__ = ["PoolMember", "PoolResult", "judge_pool", "may_join", "pool_digest", "pool_id_of",
           "pool_price", "pool_shares", "pooled_verdict"]


@dataclass(frozen=True)
class PoolMember:
    """A run that may join the round's pool: as it was judged (label parameters estimated),
    its verdict, and whether it was judged for money."""

    contribution: Contribution
    verdict: Verdict
    paid_mode: bool


@dataclass(frozen=True)
class PoolResult:
    verdict: Verdict  # the pool's, ``contribution_id`` = its pool id
    members: tuple[str, ...]  # contribution ids, in the round's order
    shares: dict[str, int]  # contribution id -> reward [tinybar], paid members only

    @property
    def improved(self) -> bool:
        return self.verdict.decision is Decision.IMPROVED


def may_join(verdict: Verdict) -> bool:
    """Judged on its merits, "no effect", and pointing the right way (module docstring)."""
    return (verdict.decision is Decision.NO_EFFECT and not verdict.reason
            and verdict.runs > 0 and verdict.mean_diff_m > 0)


def pool_id_of(champion_version: int, member_ids: Sequence[str]) -> str:
    """The pool's id: its champion and its members (any order), hashed."""
    body = "\n".join(sorted(member_ids)).encode()
    return f"pool:v{champion_version}:{hashlib.sha256(body).hexdigest()[:24]}"


def judge_pool(judge: Judge, members: Sequence[PoolMember]) -> PoolResult:
    """Judge ``members`` as one contribution against ``judge``'s champion and share its price
    (module docstring)."""
    verdict = pooled_verdict(judge, [m.contribution for m in members])
    return PoolResult(verdict, tuple(m.contribution.contribution_id for m in members),
                      pool_shares(verdict.price_tinybar, members))


def pooled_verdict(judge: Judge, contributions: Sequence[Contribution]) -> Verdict:
    """The pool of ``contributions`` (in this order: it decides which rows each minibatch
    draws) judged by ``judge`` and priced (``pool_price``). Its record names the members in
    order and one contribution's share of a minibatch, so that ``crowdlearning verify-verdict``
    can judge the same pool again (``evaluation.verify``)."""
    if not contributions:
        raise ValueError("a pool needs members")
    ids = [c.contribution_id for c in contributions]
    if len(set(ids)) != len(ids):
        raise ValueError("a run can join a pool once")
    labels = LabelSet.concat([extract_labels(c, judge.label_config) for c in contributions])
    verdict = judge.judge_pooled(labels, len(contributions),
                                 pool_id=pool_id_of(judge.champion_version, ids),
                                 digest=pool_digest(contributions))
    return replace(verdict, price_tinybar=pool_price(judge.prices, verdict, len(ids)),
                   label_params={**verdict.label_params, "members": ids})


def pool_digest(contributions: Sequence[Contribution]) -> str:
    """The pool's digest: its members' digests, in any order, hashed."""
    return hashlib.sha256("\n".join(sorted(c.digest for c in contributions)).encode()
                          ).hexdigest()


def pool_price(prices: PriceSchedule, verdict: Verdict, members: int) -> int:
    """The pool's reward [tinybar]: its effect at the reward rate, capped at ``members`` caps;
    0 unless improved."""
    if verdict.decision is not Decision.IMPROVED:
        return 0
    return min(members * prices.reward_cap_tinybar,
               max(verdict.effect_bp, 0) * prices.reward_tinybar_per_bp)


def pool_shares(total_tinybar: int, members: Sequence[PoolMember]) -> dict[str, int]:
    """Each paid member's share of ``total_tinybar``: its own effect over the members' total,
    times its labels' precision, rounded down (module docstring); practice members get none.
    In integers: effects in micrometres, precision in millionths."""
    weights = [max(round(m.verdict.mean_diff_m * 1_000_000), 0) for m in members]
    whole = sum(weights)
    if total_tinybar <= 0 or whole <= 0:
        return {}
    out = {}
    for m, w in zip(members, weights, strict=True):
        if not m.paid_mode or w <= 0:
            continue
        ppm = round(min(max(m.verdict.label_precision, 0.0), 1.0) * PPM)
        share = total_tinybar * w * ppm // (whole * PPM)
        if share > 0:
            out[m.contribution.contribution_id] = share
    return out
