"""The judge called directly: verdicts, settlement and rounds on this process's own stack.

``LocalJudge`` wraps the verdict service, the ledger and the run store. It serves a small
installation in-thread, the judge process (``judging.process``) in its child and the shared
judge of several game servers (``judging.remote``). Callers use it from one thread, one request
at a time.

Requests: ``submit(spec, contribution bytes)`` -> the ``verdict`` message; ``submit_many(runs)``
-> one ``verdict`` (or ``error``) message per run, judged together by the service's judge pool
(in parallel when it is a Ray pool: ``evaluation.judge_pool``); ``settle(payout ids)``
-> ``settled`` messages for those that reached a final state; ``close_round()`` -> the new
champion version if one was promoted, else None; ``champion_curve(tracks)`` -> the champion's
versions on the hidden suite (evaluations are CPU-bound too). Each judged run is recorded in the
run store (``server.store.RunRecord``), so a retried run gets its recorded verdict.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from crowdlearning.evaluation.explain import explain
from crowdlearning.evaluation.suite import EvalSuite, evaluate
from crowdlearning.learning.contribution import Contribution
from crowdlearning.ledger import Ledger, PayoutState
from crowdlearning.platform.service import Outcome, VerdictService
from crowdlearning.policy.network import Policy
from crowdlearning.server.game_loop import RunSpec
from crowdlearning.server.store import RunRecord, Store

__all__ = ["LocalJudge", "verdict_message"]

log = logging.getLogger(__name__)


@dataclass
class LocalJudge:
    """The verdict service, the ledger and the run store, called directly."""

    service: VerdictService
    ledger: Ledger
    store: Store
    curve_cache: dict[tuple[int, int], dict] = field(default_factory=dict)

    def submit(self, spec: RunSpec, contribution_bytes: bytes) -> dict:
        """One run's ``verdict`` message (``submit_many`` of one); its failure raises."""
        [message] = self.submit_many([(spec, contribution_bytes)])
        if message["type"] == "error":
            raise RuntimeError(message["message"])
        return message

    def submit_many(self, runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
        """Judge a batch together (in parallel on a Ray pool); one message per run, in order:
        its ``verdict``, or an ``error`` (``verdict_failed``) if that run alone failed. A run
        judged before (a retry after a lost answer or a restart) gets its recorded verdict, and
        nothing is judged or booked again."""
        messages: list[dict | None] = [None] * len(runs)
        decoded: list[tuple[int, RunSpec, Contribution]] = []
        for i, (spec, data) in enumerate(runs):
            recorded = self.store.run(spec.run_id)
            if recorded is not None:  # a retry (lost answer, restart): judged once, told again
                messages[i] = self._recorded(spec, recorded)
                continue
            try:
                decoded.append((i, spec, Contribution.from_bytes(data)))
            except Exception as exc:  # a malformed recording fails alone
                messages[i] = _failed(exc)
        results = self.service.submit_many(
            [(c, None if spec.paid else False) for _, spec, c in decoded])
        for (i, spec, contribution), result in zip(decoded, results, strict=True):
            messages[i] = (_failed(result) if isinstance(result, Exception)
                           else self._message(spec, contribution, result))
        return [m for m in messages if m is not None]

    def _recorded(self, spec: RunSpec, r: RunRecord) -> dict:
        balances = self.ledger.player_balances(spec.player_id)
        return {"type": "verdict", "contribution_id": r.run_id, "decision": r.decision,
                "effect_pct": round(r.effect_bp / 100, 1),
                "price_tinybar": r.reward_tinybar - r.penalty_tinybar, "champion_version": None,
                "label_precision": None,
                "reason": "", "ticks": r.ticks, "paid_mode": r.paid,
                "reward_tinybar": r.reward_tinybar, "penalty_tinybar": r.penalty_tinybar,
                "payout_id": r.payout_id, "audit_transaction_id": r.audit_tx,
                "note": "judged before (this is a retry): its recorded verdict",
                "explanation": r.explanation,
                "balance_tinybar": balances.available_tinybar,
                "stake_tinybar": balances.stake_tinybar}

    def _message(self, spec: RunSpec, contribution: Contribution, outcome: Outcome) -> dict:
        explanation = explain(outcome.verdict, contribution, paid_mode=outcome.paid_mode,
                              reward_tinybar=outcome.reward_tinybar,
                              penalty_tinybar=outcome.penalty_tinybar, note=outcome.note,
                              pooled=self.service.pooled_verdict)
        self.store.add_run(_record(spec, contribution, outcome, explanation))
        balances = self.ledger.player_balances(spec.player_id)
        return verdict_message(outcome, contribution.num_ticks, explanation) | {
            "balance_tinybar": balances.available_tinybar,
            "stake_tinybar": balances.stake_tinybar}

    def settle(self, payout_ids: list[str]) -> list[dict]:
        self.service.settle()
        done = []
        for payout_id in payout_ids:
            payout = self.ledger.get_payout(payout_id)
            if payout.state is not PayoutState.PENDING:
                done.append({"type": "settled", "payout_id": payout_id,
                             "state": payout.state.value,
                             "transaction_id": payout.settlement_tx_id,
                             "amount_tinybar": payout.amount_tinybar})
        return done

    def close_round(self) -> int | None:
        result = self.service.close_round()
        log.info("round closed: merged %d, promoted=%s", len(result.merged), result.promoted)
        if result.promoted:
            self.export_champion()
            self.warm()
        return result.champion_version if result.promoted else None

    def warm(self) -> None:
        """Measure the champion's verdict null (``evaluation.verdict``: placebo fine-tunes, tens
        of seconds of CPU) now, before players' runs wait for it."""
        try:
            self.service.judge_spec()
        except Exception:  # the first verdict measures it instead
            log.exception("warming the judge of v%s failed",
                          self.service.trainer.registry.champion)

    def export_champion(self) -> None:
        """The champion's ONNX file, made here (at idle priority in the judge process) so that
        the Model page's download never makes the game server export it (seconds of CPU)."""
        registry = self.service.trainer.registry
        if registry.champion is None:
            return
        try:
            registry.onnx_path(registry.champion)
        except Exception:  # a missing export is made on first download instead
            log.exception("ONNX export of v%s failed", registry.champion)

    def champion_curve(self, suite_tracks: int) -> list[dict]:
        """Each champion version (oldest first) on ``suite_tracks`` hidden tracks (cached)."""
        registry = self.service.trainer.registry
        if registry.champion is None:
            return []
        suite = EvalSuite.hidden(suite_tracks)
        out = []
        for meta in reversed(registry.lineage(registry.champion)):
            key = (meta.version, suite_tracks)
            if key not in self.curve_cache:
                net, _ = registry.load(meta.version)
                self.curve_cache[key] = evaluate(Policy(net), suite).summary()
            out.append({"version": meta.version, "created_at": meta.created_at,
                        **self.curve_cache[key]})
        return out

    def close(self) -> None:
        self.service.close()


def _failed(exc: BaseException) -> dict:
    return {"type": "error", "code": "verdict_failed",
            "message": f"the verdict could not be computed: {exc}"}


def verdict_message(outcome: Outcome, ticks: int, explanation: dict | None = None) -> dict:
    """The ``verdict`` message a player is sent. ``audit_transaction_id`` names the verdict's
    audit journal entry (``audit:<n>``; it reaches the topic in a block, published by the audit
    publisher moments later: ``crowdlearning audit verify --contribution <id>`` proves it);
    ``explanation`` is the verdict in words and figures (``evaluation.explain``)."""
    return {"type": "verdict", **outcome.verdict.public(), "ticks": ticks,
            "paid_mode": outcome.paid_mode, "reward_tinybar": outcome.reward_tinybar,
            "penalty_tinybar": outcome.penalty_tinybar, "payout_id": outcome.payout_id,
            "audit_transaction_id": outcome.audit_transaction_id, "note": outcome.note,
            "explanation": explanation}


def _record(spec: RunSpec, contribution: Contribution, outcome: Outcome,
            explanation: dict | None = None) -> RunRecord:
    v = outcome.verdict
    return RunRecord(
        run_id=spec.run_id, user_id=int(spec.player_id[1:]), track_seed=spec.track_seed,
        mode=spec.mode, paid=outcome.paid_mode, ticks=contribution.num_ticks,
        decision=v.decision.value, effect_bp=v.effect_bp, reward_tinybar=outcome.reward_tinybar,
        penalty_tinybar=outcome.penalty_tinybar, payout_id=outcome.payout_id,
        audit_tx=outcome.audit_transaction_id, created_at=time.time(), explanation=explanation)
