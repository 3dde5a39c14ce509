"""A judge's own service stack, built from ``Settings``.

``local_judge`` builds everything a judge needs on handles of its own (ledger, Hedera
transport, run store, model registry, judge pool, verdict service, audit publisher): the judge
process builds it in its child (``judging.process``), ``crowdlearning judge`` in the shared judge
(``judging.remote``). The game server (``server.runtime``) builds its verdict service and model
trainer with the same ``verdict_service`` and ``open_trainer``, and starts the audit publisher
with ``start_audit_publisher`` when it judges itself.

The process that judges and settles runs the audit publisher, a thread of its own
(``audit.publisher``): verdicts and settlements only journal their entries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from crowdlearning.audit.journal import AuditJournal
from crowdlearning.audit.network import AuditNetwork
from crowdlearning.audit.publisher import AuditPublisher
from crowdlearning.audit.topic import deployment_topic
from crowdlearning.config import Settings
from crowdlearning.evaluation.curriculum import Curriculum, unlocked_families
from crowdlearning.evaluation.judge_pool import InlineJudgePool, JudgePool, make_judge_pool
from crowdlearning.evaluation.screening import Screener, screen_config
from crowdlearning.evaluation.suite import EvalSuite
from crowdlearning.evaluation.verdict import PriceSchedule, VerdictConfig
from crowdlearning.hedera.transport import HederaTransport
from crowdlearning.judging.local import LocalJudge
from crowdlearning.judging.tracks import TrackCatalog
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.learning.dataset import AggregatedDataset
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.ledger import Ledger, open_ledger
from crowdlearning.payments.local_network.server import LocalNetworkInfo
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.payments.settlement import Settler
from crowdlearning.platform.round_state import RoundState
from crowdlearning.platform.service import VerdictService
from crowdlearning.server.store import Store

__all__ = ["audit_journal", "local_judge", "open_trainer", "start_audit_publisher",
           "verdict_service"]

log = logging.getLogger(__name__)


def local_judge(settings: Settings, network: LocalNetworkInfo | None
                ) -> tuple[LocalJudge, Callable[[], None]]:
    """A judge on its own ledger, transport, store and registry handles (the judge process's,
    the shared judge's), and what closes them; ``network``: the game server's embedded Hedera
    network (else the one the settings name)."""
    transport = (SdkHederaTransport.for_local_network(network) if network is not None
                 else SdkHederaTransport.from_settings(settings))
    ledger, trainer = open_ledger(settings), open_trainer(settings)
    store = Store(settings.server_database_url)
    pool = make_judge_pool(settings.judge_backend, settings.judge_workers, settings.ray_address)
    service = verdict_service(settings, ledger, transport, trainer, store, pool)
    publisher = start_audit_publisher(settings, service, transport)

    def close() -> None:
        if publisher is not None:
            publisher.stop()
        service.close()
        transport.close()

    return LocalJudge(service, ledger, store), close


def verdict_service(settings: Settings, ledger: Ledger, transport: HederaTransport,
                    trainer: DaggerTrainer, store: Store, pool: JudgePool | None = None, *,
                    judging: bool = True) -> VerdictService:
    """The verdict service on the configured verdict, price, label and screening settings;
    ``pool`` computes its verdicts (inline by default). Only the service that judges
    (``judging``) keeps the verdict log and the round's state in ``data_dir`` (one writer)."""
    catalog = TrackCatalog(settings.server_play_tracks, unlocked_families(trainer.registry.root),
                           settings.server_frontier_play_tracks)
    return VerdictService(
        trainer, Screener(catalog.__getitem__, config=screen_config(settings)),
        verdict_config=VerdictConfig.from_settings(settings),
        prices=PriceSchedule.from_settings(settings), labels=LabelConfig.from_settings(settings),
        pool=pool or InlineJudgePool(), ledger=ledger,
        settler=Settler.from_settings(ledger, transport, settings), transport=transport,
        audit=audit_journal(settings, ledger, transport),
        champion_suite=EvalSuite.hidden(settings.server_eval_tracks),
        curriculum=Curriculum.from_settings(settings, trainer.registry.root),
        pace_calibration=settings.promotion_pace_calibration,
        pooled_verdict=settings.verdict_pooled,
        pooled_min_members=settings.verdict_pooled_min_members,
        hedera_account_of=store.hedera_account_of_player,
        # only the judging service writes (and, at start, reads back) the verdicts and the round
        verdict_log=settings.data_dir / "verdicts.jsonl" if judging else None,
        state=RoundState(settings.data_dir / "round") if judging else None)


def audit_journal(settings: Settings, ledger: Ledger, transport: HederaTransport
                  ) -> AuditJournal:
    """The audit journal in the ledger database; the transport's own audit messages (the
    development faucet's) go to the deployment's one topic kept there too."""
    journal = AuditJournal(ledger.engine, scan_limit=settings.audit_scan_limit,
                           attempts=settings.ledger_transaction_attempts)
    if isinstance(transport, SdkHederaTransport):
        transport.use_audit_topic_from(
            lambda: deployment_topic(journal, transport, settings.hedera_audit_topic_id))
    return journal


def start_audit_publisher(settings: Settings, service: VerdictService,
                          transport: HederaTransport) -> AuditPublisher | None:
    """The audit publisher of the process that judges and settles, started (its own thread:
    never on the verdict or payout path); None when the transport cannot publish blocks."""
    if service.audit is None:
        return None
    if not isinstance(transport, AuditNetwork):
        log.warning("the transport cannot publish audit blocks: the journal is kept, unpublished")
        return None
    return AuditPublisher.from_settings(service.audit, transport, settings).start()


def open_trainer(settings: Settings) -> DaggerTrainer:
    """The model trainer on ``data_dir``'s registry and dataset; on an empty registry the
    initial model is trained first (``learning.bootstrap``)."""
    root = settings.data_dir
    trainer = DaggerTrainer(ModelRegistry(root / "models"), AggregatedDataset(root / "dataset"),
                            labels=LabelConfig.from_settings(settings),
                            precision_ref=settings.price_label_noise_ref,
                            anchor_share=settings.merge_anchor_share)
    if not trainer.registry.versions():
        net, training = train_initial_model(0)
        trainer.start(net, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS),
                      training)
    return trainer
