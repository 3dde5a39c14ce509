"""The verdict service: contribution -> screen -> judge -> price -> ledger -> Hedera -> next model.

One object ties the domains together; the web server and the demo both drive it.

``submit`` (one contribution, almost real time; ``submit_many`` for a batch, whose verdicts the
judge pool computes together: in parallel on a Ray cluster, see ``evaluation.judge_pool``):
refuse it if screening says so (a rejected paid contribution releases its hold and costs
nothing; only paid contributions are remembered by the screen, so practice never makes a paid run
a duplicate); otherwise mark what of it was already accepted this round
(``evaluation.coverage``: the same information is paid once per round), estimate the run's own
reaction delay
(``learning.reaction``) and keyboard gain (``learning.device``), judge it
against the current champion (``evaluation.verdict``), apply the price through the ledger
(penalty from the stake held behind it, reward from the reward budget, never more penalty than
was held), request a payout of the reward to the player's Hedera account, and journal the
verdict for the audit topic (``audit``: one cheap insert; the audit publisher, a thread of its
own, puts it in a block published on the topic).

``close_round``: merge the contributions judged *improved* since the last round into a candidate
version; the candidate becomes champion only if it is not worse than the champion on the hidden
suite. Every verdict of a round was judged against the same champion, so verdicts are fair and
can run in parallel. A promoted champion then drives its frontier family's mastery suite and may
unlock the next track family (``evaluation.curriculum``, kept beside the model registry); the
hidden suites (the verdict's and the promotion's) are drawn within the unlocked families, and the
round's result says which those are.

``settle``: one run of the exactly-once settlement job (pending payouts -> Hedera); the
transactions found settled are journaled for the audit topic.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.records import verdict_record
from crowdlearning.errors import CrowdLearningError
from crowdlearning.evaluation.coverage import Coverage
from crowdlearning.evaluation.curriculum import Curriculum, MasteryCheck, play_tracks
from crowdlearning.evaluation.judge_pool import InlineJudgePool, JudgePool, JudgeSpec, judge_key
from crowdlearning.evaluation.pace import (
    CALIBRATION_ROTATION,
    calibrate_pace,
    calibration_suite,
    is_slower_but_safe,
)
from crowdlearning.evaluation.pooled import PoolMember, PoolResult, judge_pool, may_join
from crowdlearning.evaluation.promotion import Promotion, promotion
from crowdlearning.evaluation.screening import Screener
from crowdlearning.evaluation.suite import EvalResult, EvalSuite, evaluate
from crowdlearning.evaluation.verdict import (
    Decision,
    Judge,
    PriceSchedule,
    Verdict,
    VerdictConfig,
)
from crowdlearning.hedera.transport import HederaTransport
from crowdlearning.learning.anchors import ANCHOR_TRACKS_PER_FAMILY
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.device import check_device, with_estimated_gain
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.learning.reaction import with_estimated_delay
from crowdlearning.ledger import (
    IdempotencyConflictError,
    Ledger,
    RewardBudgetExhaustedError,
    player_account,
)
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.payments.settlement import SettlementReport, Settler
from crowdlearning.platform.round_state import RoundState
from crowdlearning.policy.checkpoint import ModelMeta
from crowdlearning.policy.network import Policy, PolicyNet
from crowdlearning.sim.track import Track

__all__ = ["Outcome", "RoundResult", "VerdictService", "archive_contribution", "archived_path"]

log = logging.getLogger(__name__)
DECIDED_KEPT = 100_000  # outcomes remembered for answering retries


@dataclass(frozen=True)
class Outcome:
    """A verdict and what it moved: the money actually booked (tinybars)."""

    verdict: Verdict
    paid_mode: bool
    reward_tinybar: int = 0
    penalty_tinybar: int = 0
    payout_id: str | None = None
    note: str = ""
    # the verdict's audit journal entry, ``audit:<entry id>`` (before issue 14: the HCS
    # transaction id); ``crowdlearning audit verify --contribution <id>`` proves it on the topic
    audit_transaction_id: str | None = None


@dataclass(frozen=True)
class RoundResult:
    merged: list[str]
    candidate_version: int | None
    promoted: bool
    champion_version: int
    champion_metrics: dict
    candidate_metrics: dict | None = None
    why_not: str = ""  # why the candidate was not promoted (``evaluation.promotion``)
    # the track families unlocked after this round (``evaluation.curriculum``), easiest first
    unlocked_families: tuple[str, ...] = ("easy",)
    unlocked_now: str | None = None  # the family this round unlocked, if any
    mastery: dict | None = None  # the mastery check made this round (``MasteryCheck.to_dict``)
    # the round's pool (``evaluation.pooled``; ``VerdictService._finish_pool``), None when none
    # was judged
    pool: dict | None = None


@dataclass
class VerdictService:
    """See the module docstring. ``ledger``/``settler``/``transport`` may be None (practice)."""

    trainer: DaggerTrainer
    screener: Screener
    verdict_config: VerdictConfig = field(default_factory=VerdictConfig)
    prices: PriceSchedule = field(default_factory=PriceSchedule)
    labels: LabelConfig = field(default_factory=LabelConfig)
    champion_suite: EvalSuite = field(default_factory=lambda: EvalSuite.hidden(24))
    ledger: Ledger | None = None
    settler: Settler | None = None
    transport: HederaTransport | None = None  # the settler's network (the audit: ``audit``)
    hedera_account_of: Callable[[str], str | None] = lambda player_id: None
    verdict_log: Path | None = None
    state: RoundState | None = None  # where the round and the screen's memory survive restarts
    pool: JudgePool = field(default_factory=InlineJudgePool)
    coverage: Coverage = field(default_factory=Coverage)  # what is new this round
    audit: AuditJournal | None = None  # verdicts and settled transactions, for the audit topic
    # which track families are unlocked (None: the one kept beside the model registry, at the
    # default mastery rule)
    curriculum: Curriculum | None = None
    # a slower but safer candidate's throttle is tuned to the champion's pace (evaluation/pace)
    pace_calibration: bool = False
    # the round's "no effect" runs that pointed the right way are judged together at its close
    # (``evaluation.pooled``); a pool needs ``pooled_min_members`` runs
    pooled_verdict: bool = False
    pooled_min_members: int = 2
    # how a pool is judged and shared (``evaluation.pooled.judge_pool``; replaced in tests)
    judge_pooled: Callable[[Judge, Sequence[PoolMember]], PoolResult] = judge_pool
    _spec: JudgeSpec | None = field(default=None, init=False)
    _spec_families: tuple[str, ...] = field(default=(), init=False)
    _accepted: list[Contribution] = field(default_factory=list, init=False)
    _judged: int = field(default=0, init=False)  # judged on their merits this round
    _pool_candidates: list[Contribution] = field(default_factory=list, init=False)
    _own_judge: tuple[tuple, Judge] | None = field(default=None, init=False)  # ``_pool_judge``
    # contribution id -> its outcome (the most recent DECIDED_KEPT): a retry is answered, never
    # judged or booked again (older retries are answered from the game server's run records)
    _decided: OrderedDict[str, Outcome] = field(default_factory=OrderedDict, init=False)

    def __post_init__(self) -> None:
        if self.curriculum is None:
            self.curriculum = Curriculum.in_registry(self.trainer.registry.root)
        self._decided = _outcomes_in(self.verdict_log)
        if self.state is not None:
            for digest, prints in self.state.screened():
                self.screener.remember(digest, prints)
            pending = self.state.pending()
            # a crash between registering a merge and forgetting its contributions
            registry = self.trainer.registry
            merged = {c.contribution_id for c in pending
                      if registry.version_of_contribution(c.contribution_id) is not None}
            self.state.drop_pending(merged)
            self._accepted = [c for c in pending if c.contribution_id not in merged]
            candidates = self.state.pool_candidates()
            saved = self.state.pool_decision()  # an improved pool stopped while being paid
            decided_round: set[str] = set()
            if saved is not None:  # its members are merged like accepted runs, once
                taken = merged | {c.contribution_id for c in pending}
                for c in candidates:
                    if c.contribution_id in saved["members"] and c.contribution_id not in taken:
                        self.state.add_pending(c)
                        self._accepted.append(c)
                # that round is over for the candidates that did not join too
                decided_round = set(saved.get("candidates", saved["members"]))
            # a pool's members are made pending before their candidates are forgotten: a crash
            # in between leaves both, and they are accepted ones now
            taken = merged | {c.contribution_id for c in self._accepted} | decided_round
            self.state.drop_pool_candidates(c.contribution_id for c in candidates
                                            if c.contribution_id in taken)
            self._pool_candidates = [c for c in candidates if c.contribution_id not in taken]
            if saved is not None:
                self._finish_pool(saved)
        self._audit_decided()

    # ------------------------------------------------------------------ judging
    def judge_spec(self) -> JudgeSpec:
        """What the current champion's judge is built from (rebuilt once per champion version).

        The hidden verdict suite rotates with every new champion (``rotation`` + version), so
        nobody can tune data to one fixed set of hidden tracks, and is drawn within the unlocked
        track families (``evaluation.curriculum``).
        """
        net, meta = self.trainer.champion
        families = self.unlocked_families
        if (self._spec is None or self._spec.champion_version != meta.version
                or self._spec_families != families):
            ids = self.trainer.registry.contributions_in(meta.version)
            data = self.trainer.dataset.load(ids)
            config = self._verdict_config_within(
                replace(self.verdict_config,
                        rotation=self.verdict_config.rotation + meta.version), families)
            self._spec = JudgeSpec.of(net, meta.version, data, config=config,
                                      prices=self.prices, labels=self.labels).with_null()
            self._spec_families = families
        return self._spec

    @property
    def unlocked_families(self) -> tuple[str, ...]:
        """The track families the hidden suites are drawn within, easiest first."""
        assert self.curriculum is not None
        return self.curriculum.unlocked

    @property
    def mastered_families(self) -> tuple[str, ...]:
        """The unlocked families but the frontier: a candidate may not lose a lap in any of
        them (``evaluation.promotion``, ``protected``)."""
        return self.unlocked_families[:-1]

    def anchor_tracks(self) -> list[Track]:
        """Where the champion's own driving anchors a merge (``learning.anchors``): the play
        tracks of the mastered families; none while the frontier is the only family."""
        mastered = self.mastered_families
        if not mastered or self.trainer.anchor_share <= 0:
            return []
        return list(play_tracks(ANCHOR_TRACKS_PER_FAMILY, mastered).values())

    @staticmethod
    def _verdict_config_within(config: VerdictConfig, families: tuple[str, ...]
                               ) -> VerdictConfig:
        """``config`` drawing its hidden suite within ``families`` (``VerdictConfig.families``).

        Only ``easy``: ``config`` unchanged (today's suite and judge configuration). A
        ``VerdictConfig`` without a ``families`` field (evaluation/verdict.py before the
        curriculum) keeps judging on ``easy`` tracks, with a warning when the judge is built.
        """
        if families == ("easy",):
            return config
        if "families" not in {f.name for f in fields(config)}:
            log.warning("VerdictConfig has no 'families': the verdict suite stays on easy tracks "
                        "although %s are unlocked", ", ".join(families))
            return config
        return replace(config, families=families)  # type: ignore[call-arg]

    def promotion_suite(self) -> EvalSuite:
        """The hidden suite candidates are promoted on: ``champion_suite`` while only ``easy`` is
        unlocked; then as many tracks, with its rollout rules, drawn within the unlocked
        families (``EvalSuite.hidden``, rotation 0: fixed, like ``champion_suite``)."""
        families, base = self.unlocked_families, self.champion_suite
        if families == ("easy",):
            return base
        return EvalSuite.hidden(max(len(base.track_seeds), len(families)), rotation=0,
                                families=families, starts_per_track=base.starts_per_track,
                                start_speed_mps=base.start_speed_mps, laps=base.laps,
                                max_steps=base.max_steps)

    def hold(self, contribution: Contribution) -> bool:
        """Whether a contribution offered as paid is judged for money; False means practice.

        A paid run holds its stake from the moment it starts (the game server opens the hold
        ``hold:<contribution id>``): that open hold is the run's, and the run stays paid
        whatever the player's free stake is now. A hold voided meanwhile (the run was given up)
        makes it practice. Without a hold (a contribution from elsewhere, e.g. the demo), one is
        opened now if the stake allows, else practice mode.
        """
        if self.ledger is None:
            return False
        cid, player = contribution.contribution_id, contribution.contributor_id
        held = self.ledger.hold_of(cid)
        if held is not None:
            if held.player_id != player:
                raise IdempotencyConflictError(
                    f"contribution {cid!r} is held for {held.player_id}, not {player}")
            if held.state == "voided":
                log.warning("the hold of %s was voided before its verdict: judged as practice",
                            cid)
                return False
            return True
        if not self.ledger.is_paid_mode(player):
            return False
        self.ledger.hold_for_contribution(player, cid)
        return True

    def submit(self, contribution: Contribution, *, paid: bool | None = None) -> Outcome:
        """Screen, judge, price and book one contribution."""
        [result] = self.submit_many([(contribution, paid)])
        if isinstance(result, Exception):
            raise result
        return result

    def submit_many(self, items: Sequence[tuple[Contribution, bool | None]]
                    ) -> list[Outcome | CrowdLearningError]:
        """Screen, judge, price and book a batch, in order; the verdicts are computed together
        by the pool (in parallel on Ray). ``paid``: None = paid mode if the player's stake
        allows, False = practice.

        - One item's failure (a stake that cannot be held, a booking error) is that item's
          result; the others go on. If the pool fails, the whole call raises.
        - Idempotent per contribution id: a contribution decided before (a retry after a lost
          answer) gets its recorded outcome; nothing is judged or booked twice.
        - The screen learns a contribution only once its outcome is booked: a failure leaves
          nothing behind, so a retry is judged, not refused as a duplicate. It sees the batch in
          order, so the second of two near-duplicates in one batch is refused as it would be one
          at a time.
        - The screen learns paid contributions only. Practice ones are checked (forged, rate
          limited, copies of paid data are refused) but never remembered: a practice run costs
          nothing, so it must not make a later paid run with the same data a "duplicate".
        """
        spec = self.judge_spec()
        results: list[Outcome | CrowdLearningError | None] = [None] * len(items)
        screened: list[tuple[int, Contribution, bool, str]] = []
        # item -> (digest, all its fingerprints, those it added): what the screen learnt from it
        learnt: dict[int, tuple[str, set[int], set[int]]] = {}
        try:
            for i, (contribution, paid) in enumerate(items):
                decided = self._decided.get(contribution.contribution_id)
                if decided is not None:
                    results[i] = decided
                    continue
                try:
                    paid_mode = self.hold(contribution) if paid is None else paid
                except CrowdLearningError as exc:
                    results[i] = exc
                    continue
                reason = self.screener.check(contribution)
                if not reason:
                    contribution, reason = self._prepare(contribution)
                if not reason and paid_mode:  # practice is checked, never learnt: it blocks
                    learnt[i] = (contribution.digest, *self.screener.accept(contribution))
                screened.append((i, contribution, paid_mode, reason))
            verdicts = iter(self.pool.judge(spec, [c for _, c, _, r in screened if not r]))
            for i, contribution, paid_mode, reason in screened:
                verdict = (self.pool.rejected(spec, contribution, reason) if reason
                           else next(verdicts))
                try:
                    results[i] = self._decide(contribution, verdict, paid_mode, learnt.get(i))
                    learnt.pop(i, None)  # booked: the screen keeps it
                except CrowdLearningError as exc:  # e.g. the ledger refused: this item alone
                    log.exception("booking the verdict of %s failed",
                                  contribution.contribution_id)
                    self._unlearn(learnt, i)
                    results[i] = exc
        except BaseException:
            for i in list(learnt):  # nothing booked for these: a retry is judged afresh
                self._unlearn(learnt, i)
            raise
        return [r for r in results if r is not None]

    def _unlearn(self, learnt: dict[int, tuple[str, set[int], set[int]]], i: int) -> None:
        """Take back what the screen learnt from item ``i`` (not what other items of the batch,
        still accepted, also hold)."""
        digest, _, added = learnt.pop(i)
        keep: set[int] = set()
        for _, prints, _ in learnt.values():
            keep |= prints
        self.screener.forget(digest, added, keep)

    def _decide(self, contribution: Contribution, verdict: Verdict, paid_mode: bool,
                learnt: tuple[str, set[int], set[int]] | None) -> Outcome:
        """Book one verdict; then make it permanent (round, screen journal, decided, log)."""
        if verdict.decision is not Decision.REJECTED and self.verdict_log is not None:
            archive_contribution(self.verdict_log.parent, contribution)  # to re-judge it later
        if verdict.decision is Decision.IMPROVED and self.state is not None:
            self.state.add_pending(contribution)  # kept before any money moves for it
        may_pool = self.pooled_verdict and may_join(verdict)
        if may_pool and self.state is not None:
            self.state.add_pool_candidate(contribution)
        try:
            outcome = (self._book(verdict, paid_mode) if paid_mode
                       else Outcome(verdict, False))
        except Exception:  # nothing was settled for it
            if verdict.decision is Decision.IMPROVED and self.state is not None:
                self.state.drop_pending([contribution.contribution_id])
            if may_pool and self.state is not None:
                self.state.drop_pool_candidates([contribution.contribution_id])
            if paid_mode and self.ledger is not None:  # release the stake held behind it
                try:
                    self.ledger.settle_contribution(contribution.contribution_id,
                                                    reward_tinybar=0, penalty_tinybar=0)
                except CrowdLearningError:
                    log.exception("releasing the hold of %s failed",
                                  contribution.contribution_id)
            raise
        if verdict.decision is Decision.IMPROVED:
            self._accepted.append(contribution)
        if may_pool and all(c.contribution_id != contribution.contribution_id
                            for c in self._pool_candidates):
            self._pool_candidates.append(contribution)
        if verdict.decision is not Decision.REJECTED:
            self._judged += 1
        if learnt is not None and self.state is not None:
            self.state.add_screened(learnt[0], learnt[1])
        outcome = replace(outcome, audit_transaction_id=self._publish(outcome))
        self._decided[contribution.contribution_id] = outcome
        while len(self._decided) > DECIDED_KEPT:
            self._decided.popitem(last=False)
        self._log(outcome)
        return outcome

    def _was_paid(self, contribution_id: str) -> bool:
        """Whether an accepted contribution was judged in paid mode (unknown, e.g. decided long
        before a restart: counted as paid, so nothing is paid twice)."""
        outcome = self._decided.get(contribution_id)
        return outcome is None or outcome.paid_mode

    def _prepare(self, contribution: Contribution) -> tuple[Contribution, str]:
        """What is judged of a screened contribution, or why it is refused: its keyboard input
        must follow from its recorded keys (``learning.device``); ticks already accepted this
        round by a *paid* run are marked covered (``evaluation.coverage``: paid once per round; a
        practice run, paid nothing, never makes a later run a near duplicate); then the run's own
        reaction delay and keyboard gain are estimated on its (known) track."""
        reason = check_device(contribution)
        if reason:
            return contribution, f"device input mismatch: {reason}"
        paid = [c for c in self._accepted if self._was_paid(c.contribution_id)]
        contribution, reason = self.coverage.mark(contribution, paid)
        if reason:
            return contribution, reason
        track = self.screener.tracks(contribution.start.track_digest)
        if self.labels.estimate_delay:
            contribution = with_estimated_delay(contribution, track,
                                                max_delay=self.labels.max_delay_ticks)
        return with_estimated_gain(contribution, track,
                                   delay=self.labels.delay_of(contribution)), ""

    def close(self) -> None:
        """Release the judge pool (its Ray actors, if any)."""
        self.pool.close()

    # ------------------------------------------------------------------ money
    def _book(self, verdict: Verdict, paid_mode: bool) -> Outcome:
        assert self.ledger is not None
        price = verdict.price_tinybar
        hold = self.ledger.hold_of(verdict.contribution_id)  # never more than this run's hold
        penalty = min(max(-price, 0), hold.amount_tinybar if hold is not None else 0)
        reward, note = max(price, 0), ""
        try:
            self.ledger.settle_contribution(verdict.contribution_id, reward_tinybar=reward,
                                            penalty_tinybar=penalty)
        except RewardBudgetExhaustedError as exc:
            note, reward = f"reward not paid: {exc}", 0
            self.ledger.settle_contribution(verdict.contribution_id, reward_tinybar=0,
                                            penalty_tinybar=penalty)
        try:
            payout_id = self._request_payout(verdict, reward)
        except CrowdLearningError as exc:  # the reward is in the player's wallet all the same
            log.exception("payout request for %s failed", verdict.contribution_id)
            payout_id, note = None, f"reward kept in your wallet (payout not requested: {exc})"
        return Outcome(verdict, paid_mode, reward, penalty, payout_id, note)

    def _request_payout(self, verdict: Verdict, reward: int) -> str | None:
        destination = self.hedera_account_of(verdict.contributor_id)
        if reward <= 0 or destination is None or self.ledger is None:
            return None
        payout_id = f"reward:{verdict.contribution_id}"
        source = player_account(verdict.contributor_id, AccountKind.AVAILABLE)
        self.ledger.request_payout(payout_id, source, destination, reward)
        return payout_id

    def settle(self) -> SettlementReport | None:
        """One settlement run: pending payouts go to Hedera (exactly once); the transactions
        found settled are then journaled for the audit topic (``_publish_settled``)."""
        if self.settler is None:
            return None
        report = self.settler.run_once()
        self._publish_settled()
        return report

    def _publish_settled(self) -> None:
        """Journal the settlement transactions that succeeded since the last call: a cursor
        over all of them, kept in the database (``AuditJournal.collect_settled``); publishing
        is the audit publisher's (its own thread), never this call's."""
        if self.audit is None:
            return
        try:
            self.audit.collect_settled()
        except (CrowdLearningError, SQLAlchemyError):  # the cursor stays: the next run goes on
            log.exception("journaling settled transactions for the audit failed")

    def _publish(self, outcome: Outcome) -> str | None:
        # the hash of exactly the decision's inputs and outputs (``Verdict.record``): anyone
        # holding the record re-derives it, ``crowdlearning verify-verdict`` re-judges it
        v = outcome.verdict
        return self._audit(v.contribution_id, verdict_record(
            v.contribution_id, v.sha256, outcome.reward_tinybar, outcome.penalty_tinybar,
            outcome.payout_id))

    def _audit(self, subject: str, record: dict) -> str | None:
        """Journal a verdict's audit record (idempotent); its reference ``audit:<entry id>``,
        or None when there is no journal or it failed (re-journaled at the next start)."""
        if self.audit is None:
            return None
        try:
            return self.audit.append("verdict", subject, record).reference
        except (CrowdLearningError, SQLAlchemyError):  # the books are right; journaled later
            log.exception("journaling the verdict of %s for the audit failed", subject)
            return None

    def _audit_decided(self) -> None:
        """At start: journal the verdicts in the verdict log that have no audit entry (a
        journaling failure, or verdicts published one message each before the journal)."""
        if self.audit is None:
            return
        candidates = {cid: o for cid, o in self._decided.items()
                      if not (o.audit_transaction_id or "").startswith("audit:")}
        if not candidates:
            return
        try:
            missing = self.audit.missing("verdict", candidates)
            added = self.audit.append_many(
                ("verdict", cid, verdict_record(cid, o.verdict.sha256, o.reward_tinybar,
                                                o.penalty_tinybar, o.payout_id))
                for cid, o in candidates.items() if cid in missing)
        except (CrowdLearningError, SQLAlchemyError):
            log.exception("journaling earlier verdicts for the audit failed")
            return
        if added:
            log.warning("journaled %d earlier verdicts for the audit topic", added)

    def _log(self, outcome: Outcome) -> None:
        if self.verdict_log is None:
            return
        self.verdict_log.parent.mkdir(parents=True, exist_ok=True)
        record = {"verdict": json.loads(outcome.verdict.to_json()),
                  "sha256": outcome.verdict.sha256, "paid_mode": outcome.paid_mode,
                  "reward_tinybar": outcome.reward_tinybar,
                  "penalty_tinybar": outcome.penalty_tinybar, "payout_id": outcome.payout_id,
                  "note": outcome.note, "audit": outcome.audit_transaction_id}
        with self.verdict_log.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    # ------------------------------------------------------------------ rounds
    def close_round(self) -> RoundResult:
        """Merge this round's improving contributions; promote the result if it is not less
        safe and not slower (``evaluation.promotion``); a promoted champion's mastery of the
        frontier family may unlock the next one (``evaluation.curriculum``)."""
        assert self.curriculum is not None
        _, champion_meta = self.trainer.champion
        check = None
        if (champion_meta.parent_version is not None
                and self.curriculum.check_of(champion_meta.version) is None):
            # a champion promoted but not measured yet (a restart in between): measured now
            check = self.curriculum.observe(self.trainer.policy(), champion_meta.version)
        suite = self.promotion_suite()
        champion_result = evaluate(self.trainer.policy(), suite)
        champion_metrics = champion_result.summary()
        saved = self.state.pool_decision() if self.state is not None else None
        if saved is not None:  # an earlier close stopped while paying its pool: finished first
            self._finish_pool(saved)
        pool = self._pooled()
        record = self._pool_record(pool) if pool is not None else None
        accepted, self._accepted = self._accepted, []
        try:
            if pool is not None and pool.improved and record is not None:
                # the decision first: a stop from here on pays the same shares and merges the
                # same members (next close, or next start), never a pool judged again
                if self.state is not None:
                    self.state.save_pool_decision(record)
                members = set(pool.members)
                joined = [c for c in self._pool_candidates if c.contribution_id in members]
                if self.state is not None:  # merged as accepted ones are, kept until registered
                    for c in joined:
                        self.state.add_pending(c)
                accepted += joined
            self._forget_pool_candidates()
            pooled = self._finish_pool(record) if record is not None else None
        except Exception:
            self._accepted = accepted + self._accepted  # merged at the next close
            raise
        judged, self._judged = self._judged, 0
        if not accepted:
            if judged:  # the crowd played and moved nothing (an idle round counts for nothing)
                check = self._stalled(champion_meta.version) or check
            return self._round_result([], None, False, champion_meta.version, champion_metrics,
                                      check=check, pool=pooled)
        # labels already appended by a merge that then failed are in the dataset: that merge's
        # retry picks them up from there (``DaggerTrainer.merge`` trains on all unseen data)
        in_dataset = set(self.trainer.dataset.contribution_ids)
        try:
            meta = self.trainer.merge([c for c in accepted if c.contribution_id not in in_dataset],
                                      promote=False, anchor_tracks=self.anchor_tracks())
        except Exception:
            self._accepted = accepted + self._accepted  # the next round tries again
            raise
        if self.state is not None:
            self.state.drop_pending(c.contribution_id for c in accepted)
        candidate_net, _ = self.trainer.registry.load(meta.version)
        candidate_result = evaluate(Policy(candidate_net), suite)
        decision = promotion(candidate_result, champion_result,
                             protected=self.mastered_families)
        calibration = None
        if self.pace_calibration and is_slower_but_safe(candidate_result, champion_result):
            # as fast as the champion where the throttle allows it; else the tolerance decides
            calibrated, calibration = self._calibrated(meta, candidate_net, suite,
                                                       champion_result)
            if calibrated is not None:
                meta, candidate_net, candidate_result, decision = calibrated
        metrics = candidate_result.summary()
        metrics.update(decision.to_dict())
        if calibration is not None:
            metrics["pace_calibration"] = calibration
        if decision.promoted:
            self.trainer.registry.set_champion(meta.version)
            check = self.curriculum.observe(Policy(candidate_net), meta.version)
        else:
            log.info("candidate v%d not promoted: %s", meta.version, decision.reason)
            check = self._stalled(champion_meta.version)
        return self._round_result([c.contribution_id for c in accepted], meta.version,
                                  decision.promoted,
                                  meta.version if decision.promoted else champion_meta.version,
                                  champion_metrics, metrics, decision.reason, check=check,
                                  pool=pooled)

    # ------------------------------------------------------------------ the round's pool
    def _pooled(self) -> PoolResult | None:
        """Judge this round's pool (``evaluation.pooled``); None when pooling is off or too
        few runs may join. A candidate refused by the round's coverage against the paid
        accepted runs and the candidates before it (a near replay of data already in) does
        not join: the pool is paid once per information, as runs are."""
        if not self.pooled_verdict:
            return None
        version = self.trainer.champion[1].version
        members: list[PoolMember] = []
        paid = [c for c in self._accepted if self._was_paid(c.contribution_id)]
        for c in self._pool_candidates:
            outcome = self._decided.get(c.contribution_id)
            if (outcome is None or outcome.verdict.champion_version != version
                    or not may_join(outcome.verdict)
                    or any(m.contribution.contribution_id == c.contribution_id for m in members)):
                continue
            # as in ``_prepare``: only paid data makes a later run a near duplicate
            _, reason = self.coverage.mark(
                c, paid + [m.contribution for m in members if m.paid_mode])
            if reason:
                log.info("%s does not join the round's pool: %s", c.contribution_id, reason)
                continue
            members.append(PoolMember(c, outcome.verdict, outcome.paid_mode))
        if len(members) < self.pooled_min_members:
            return None
        result = self.judge_pooled(self._pool_judge(), members)
        v = result.verdict
        log.info("pool %s of %d runs: %s (%+.1f m, null up to %+.1f m)", v.contribution_id,
                 len(members), v.decision.value, v.mean_diff_m, v.null_high_m)
        return result

    def _pool_judge(self) -> Judge:
        """The current champion's judge in this process, for its pools: the inline pool's, or
        (a Ray pool judges elsewhere) one built here and kept while the champion and the
        judge's configuration stay (with its pooled judges, one per pool size)."""
        spec = self.judge_spec()
        if isinstance(self.pool, InlineJudgePool):
            return self.pool.judge_for(spec)
        key = judge_key(spec)
        if self._own_judge is None or self._own_judge[0] != key:
            self._own_judge = (key, spec.build())
        return self._own_judge[1]

    def _pool_record(self, result: PoolResult) -> dict:
        """What a pool's close keeps and pays from: its verdict, members and shares, and each
        paid member's player."""
        players = {c.contribution_id: c.contributor_id for c in self._pool_candidates}
        return {"verdict": json.loads(result.verdict.to_json()),
                "sha256": result.verdict.sha256, "members": list(result.members),
                "candidates": list(players),
                "shares": dict(result.shares),
                "players": {cid: players[cid] for cid in result.shares}}

    def _finish_pool(self, record: dict) -> dict:
        """Pay a decided pool's shares (idempotent), keep its record (``pools.jsonl``), journal
        it for the audit, forget the saved decision; the pool as ``RoundResult.pool`` has it."""
        paid = self._pay_pool(record["shares"], record["players"])
        v = record["verdict"]
        self._audit(v["contribution_id"], verdict_record(
            v["contribution_id"], record["sha256"], sum(paid.values()), 0, None))
        self._log_pool(record, paid)
        if self.state is not None:
            self.state.clear_pool_decision()
        return {"pool_id": v["contribution_id"], "decision": v["decision"],
                "members": record["members"], "labels": v["labels"],
                "mean_diff_m": v["mean_diff_m"], "ci_low_m": v["ci_low_m"],
                "null_high_m": v["null_high_m"], "effect_bp": v["effect_bp"],
                "price_tinybar": v["price_tinybar"], "shares": paid}

    def _pay_pool(self, shares: dict[str, int], players: dict[str, str]) -> dict[str, int]:
        """Book each share from the reward budget to its player and request its payout; what
        was booked, per run. One transfer per run, ``pool-reward:<run id>``, of the decided
        amount: booking it again (a restart in the middle) books nothing twice."""
        if self.ledger is None:
            return {}
        paid: dict[str, int] = {}
        for cid, amount in shares.items():
            player = players[cid]
            account = player_account(player, AccountKind.AVAILABLE)
            try:
                self.ledger.move(f"pool-reward:{cid}", AccountKind.REWARD_BUDGET.value, account,
                                 amount, memo=f"share of the round's pool (run {cid})")
            except CrowdLearningError:  # e.g. the reward budget is spent: logged, not paid
                log.exception("the pool share of %s was not booked", cid)
                continue
            paid[cid] = amount
            destination = self.hedera_account_of(player)
            if destination is not None:
                try:
                    self.ledger.request_payout(f"reward:{cid}:pool", account, destination, amount)
                except CrowdLearningError:  # the share is in the player's wallet all the same
                    log.exception("payout request for the pool share of %s failed", cid)
        return paid

    def _forget_pool_candidates(self) -> None:
        """The round's pool is decided (and paid): its candidates go."""
        candidates, self._pool_candidates = self._pool_candidates, []
        if self.state is not None:
            self.state.drop_pool_candidates(c.contribution_id for c in candidates)

    def _log_pool(self, record: dict, paid: dict[str, int]) -> None:
        """The pool's verdict and what was booked, in ``pools.jsonl`` beside the verdict log."""
        if self.verdict_log is None:
            return
        path = self.verdict_log.parent / "pools.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        line = {"verdict": record["verdict"], "sha256": record["sha256"],
                "members": record["members"], "paid_tinybar": paid}
        with path.open("a") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")

    def _calibrated(self, meta: ModelMeta, net: PolicyNet, suite: EvalSuite,
                    champion_result: EvalResult
                    ) -> tuple[tuple[ModelMeta, PolicyNet, EvalResult, Promotion] | None, dict]:
        """A candidate as safe as the champion but slower, throttle-calibrated to the
        champion's pace (``evaluation.pace``): when the calibrated model is not slower and not
        less safe on the promotion suite too, it is registered as its own version and returned
        with its result and decision; else None (the candidate is judged as it is, with the
        pace tolerance). Second: what was found, for the round's metrics."""
        found_net, found = calibrate_pace(
            net, self.trainer.policy(),
            calibration_suite(self.unlocked_families, meta.version, like=suite))
        record = found.to_dict()
        if not found.throttle_bias:
            return None, record
        result = evaluate(Policy(found_net), suite)
        decision = promotion(result, champion_result, pace_tolerance=0.0,
                             protected=self.mastered_families)
        if not decision.promoted:
            return None, {**record, "refused": decision.reason}
        tuned = self.trainer.registry.register(
            found_net, parent_version=meta.version, contributions=[],
            dataset_digest=meta.dataset_digest,
            training={"kind": "pace", "throttle_bias": found.throttle_bias,
                      "calibration_rotation": CALIBRATION_ROTATION + meta.version})
        log.info("candidate v%d throttle-calibrated by %+.3f as v%d", meta.version,
                 found.throttle_bias, tuned.version)
        return ((tuned, found_net, result, decision),
                {**record, "calibrated_version": tuned.version, "from_version": meta.version})

    def _stalled(self, version: int) -> MasteryCheck | None:
        """The champion stays another round: the curriculum counts it, and may unlock the next
        family (``Curriculum.stalled``); the check that did."""
        assert self.curriculum is not None
        check = self.curriculum.stalled(self.trainer.policy(), version)
        if check is not None:
            pooled = (check.lap_completion if check.pooled_completion is None
                      else check.pooled_completion)
            log.info("champion v%d not replaced for %d rounds at %.0f%% of the %s laps (every "
                     "mastery suite it drove there): %s unlocked", version,
                     self.curriculum.stall_rounds, 100 * pooled, check.frontier, check.unlocked)
        return check

    def _round_result(self, merged: list[str], candidate_version: int | None, promoted: bool,
                      champion_version: int, champion_metrics: dict,
                      candidate_metrics: dict | None = None, why_not: str = "", *,
                      check: MasteryCheck | None, pool: dict | None = None) -> RoundResult:
        """The round's result, with the unlocked families (and what this round unlocked)."""
        if check is not None and check.unlocked:
            log.info("champion v%d mastered %s (%.0f%% of laps): %s unlocked", check.version,
                     check.frontier, 100 * check.lap_completion, check.unlocked)
        return RoundResult(merged, candidate_version, promoted, champion_version,
                           champion_metrics, candidate_metrics, why_not,
                           unlocked_families=self.unlocked_families,
                           unlocked_now=check.unlocked if check is not None else None,
                           mastery=check.to_dict() if check is not None else None, pool=pool)


def archived_path(root: Path, contribution_id: str) -> Path:
    """Where the judged contribution ``contribution_id`` is kept under ``root`` (the verdict
    log's folder): ``judged/<sha256 of the id, 32 hex>.npz``."""
    name = hashlib.sha256(contribution_id.encode()).hexdigest()[:32]
    return root / "judged" / f"{name}.npz"


def archive_contribution(root: Path, contribution: Contribution) -> Path:
    """Keep a judged contribution exactly as it was judged (with its label parameters), written
    atomically; the evidence ``crowdlearning verify-verdict`` re-judges."""
    path = archived_path(root, contribution.contribution_id)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(contribution.to_bytes())
        tmp.replace(path)
    return path


def _outcomes_in(verdict_log: Path | None) -> OrderedDict[str, Outcome]:
    """The last ``DECIDED_KEPT`` outcomes in the verdict log (``_log``), by contribution id;
    torn lines skipped."""
    found: OrderedDict[str, Outcome] = OrderedDict()
    if verdict_log is None or not verdict_log.is_file():
        return found
    with verdict_log.open() as fh:
        for line in fh:
            try:
                record = json.loads(line)
                v = record["verdict"]
                verdict = Verdict(**{**v, "decision": Decision(v["decision"])})
            except (ValueError, KeyError, TypeError):
                continue
            found[verdict.contribution_id] = Outcome(
                verdict, record.get("paid_mode", record.get("penalty_tinybar", 0) > 0
                                    or record.get("reward_tinybar", 0) > 0),
                record["reward_tinybar"], record["penalty_tinybar"], record.get("payout_id"),
                record.get("note", ""), record.get("audit"))
            if len(found) > DECIDED_KEPT:
                found.popitem(last=False)
    return found


