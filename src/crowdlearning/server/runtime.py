"""Everything the web server runs on, wired once: the embedded stack and the game.

``open_runtime(settings)`` starts, in order: the local Hedera network (in-process, state in
``data_dir``, with its mirror REST view) or the configured network, the SQLite ledger (reward
budget funded at first start), the model registry (the initial model trained if it is empty), the
store of users and runs, the judge (``judging``: the verdict service, in a child process unless
``server_judge_process`` is off), the game loop on the play tracks (``server_play_tracks`` of
each unlocked family, ``server_frontier_play_tracks`` of the hardest), the holds behind paid
runs (``run_holds.py``) and the deposit reader (``payments.deposits.ServiceDepositReader``
over a ``DepositWatcher`` on the network's mirror node: its position is the ledger's, shared
with the payments service and other game servers on the same ledger, so it resumes where any of
them got to).

Threads: the game loop runs on the event loop; ONE worker thread (``worker``) hands everything
slow behind it to the judge, in order: verdicts, settlement runs, round closing, the league's
evaluations; it also reads deposits. The verdict service is never used from two threads at
once, and the tick loop never waits. The process that judges and settles (this one without a
judge process, else the judge) also runs the audit publisher, a thread of its own
(``audit.publisher``, started by ``judging.stack.start_audit_publisher``): verdicts and
settlements only journal their entries.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from crowdlearning.audit.publisher import AuditPublisher
from crowdlearning.config import Settings
from crowdlearning.errors import ConfigurationError
from crowdlearning.evaluation.curriculum import play_tracks, unlocked_families
from crowdlearning.evaluation.judge_pool import make_judge_pool
from crowdlearning.hedera.transport import HederaTransport
from crowdlearning.judging.local import LocalJudge
from crowdlearning.judging.process import JudgeProcess
from crowdlearning.judging.remote import RemoteJudge
from crowdlearning.judging.stack import open_trainer, start_audit_publisher, verdict_service
from crowdlearning.learning.dagger import DaggerTrainer
from crowdlearning.ledger import InsufficientFundsError, Ledger, open_ledger
from crowdlearning.payments.deposits import DepositWatcher, ServiceDepositReader
from crowdlearning.payments.local_network.server import LocalNetworkInfo, running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport
from crowdlearning.platform.service import VerdictService
from crowdlearning.server.game_loop import GameLoop
from crowdlearning.server.missions import MissionBoard, champion_record
from crowdlearning.server.run_holds import RunHolds, paid_runs_dir
from crowdlearning.server.store import Store
from crowdlearning.sim.params import CONTROL_RATE_HZ
from crowdlearning.sim.track import Track

__all__ = ["Runtime", "open_runtime"]

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The server's collaborators (see the module docstring)."""

    settings: Settings
    store: Store
    ledger: Ledger
    transport: HederaTransport
    trainer: DaggerTrainer
    service: VerdictService
    game: GameLoop
    tracks: dict[int, Track]
    judge: LocalJudge | JudgeProcess | RemoteJudge
    holds: RunHolds  # stake held behind this server's paid runs, from start to verdict
    deposits: DepositWatcher | None = None  # None: no mirror node to read deposits from
    deposit_reader: ServiceDepositReader | None = None  # ``deposits`` with the ledger's position
    network: LocalNetworkInfo | None = None  # the embedded local network, if it runs
    audit_publisher: AuditPublisher | None = None  # where the judging service runs (here or not)
    missions: MissionBoard | None = None  # the runs offered where the champion needs help
    worker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="verdicts"))

    _track_json: dict[int, str] = field(default_factory=dict)

    def track_json(self, seed: int) -> str:
        """A play track's canonical JSON, encoded once."""
        if seed not in self._track_json:
            self._track_json[seed] = self.tracks[seed].to_json()
        return self._track_json[seed]


@contextlib.contextmanager
def open_runtime(settings: Settings, transport: HederaTransport | None = None
                 ) -> Iterator[Runtime]:
    """The runtime for the ``with`` block; ``transport`` overrides the embedded network."""
    with contextlib.ExitStack() as stack:
        network = None
        if transport is None:
            transport, network = stack.enter_context(_embedded_transport(settings))
        runtime = build_runtime(settings, transport)
        runtime.network = network
        runtime.deposits = _deposit_watcher(settings, runtime, network)
        if runtime.deposits is not None:
            runtime.deposit_reader = ServiceDepositReader(runtime.deposits)
            stack.callback(runtime.deposits.http.close)
        open_books(runtime)
        if settings.judge_url:  # one of several game servers sharing one judge
            runtime.judge = RemoteJudge(settings.judge_url,
                                        champion=runtime.trainer.registry.champion)
        elif settings.server_judge_process:
            runtime.judge = JudgeProcess(settings, network)
        else:  # this process judges and settles: it publishes the audit trail too
            runtime.audit_publisher = start_audit_publisher(settings, runtime.service, transport)
            if runtime.audit_publisher is not None:
                stack.callback(runtime.audit_publisher.stop)
        stack.callback(runtime.judge.close)
        if runtime.missions is not None:
            stack.callback(runtime.missions.close)
        stack.callback(runtime.worker.shutdown, wait=True, cancel_futures=True)
        yield runtime


@contextlib.contextmanager
def _embedded_transport(settings: Settings
                        ) -> Iterator[tuple[HederaTransport, LocalNetworkInfo | None]]:
    if settings.hedera_network != "local" or settings.hedera_operator_id:
        transport = SdkHederaTransport.from_settings(settings)
        try:
            yield transport, None
        finally:
            transport.close()
        return
    if settings.environment == "production":
        raise ConfigurationError("the embedded Hedera network is for development: set "
                                 "CROWDLEARNING_HEDERA_NETWORK and the operator for production")
    state = settings.hedera_local_state_file or settings.data_dir / "hedera-local.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    with running_local_network(host=settings.hedera_local_host,
                               port=settings.hedera_local_port, state_path=state,
                               mirror_port=settings.hedera_local_mirror_port) as info:
        transport = SdkHederaTransport.for_local_network(info)
        try:
            yield transport, info
        finally:
            transport.close()


PUBLIC_MIRRORS = {"testnet": "https://testnet.mirrornode.hedera.com/api/v1",
                  "mainnet": "https://mainnet-public.mirrornode.hedera.com/api/v1"}
DEPOSIT_CURSOR = "deposits"


def mirror_url(settings: Settings, network: LocalNetworkInfo | None) -> str | None:
    """Where deposits are read: the configured mirror, the embedded network's own, the public
    mirror of testnet/mainnet, or (an external local node) its default mirror port."""
    if settings.hedera_mirror_url:
        return settings.hedera_mirror_url.rstrip("/")
    if network is not None:
        return network.mirror_rest_url
    if settings.hedera_network in PUBLIC_MIRRORS:
        return PUBLIC_MIRRORS[settings.hedera_network]
    return f"http://{settings.hedera_local_host}:{settings.hedera_local_mirror_port}/api/v1"


def _deposit_watcher(settings: Settings, runtime: Runtime, network: LocalNetworkInfo | None
                     ) -> DepositWatcher | None:
    url = mirror_url(settings, network)
    if url is None:
        return None
    return DepositWatcher(runtime.ledger, url, runtime.transport.treasury_account_id)


OPENING_BALANCE_ID = "treasury-opening-balance"


def open_books(runtime: Runtime) -> None:
    """First start of whoever reads this ledger's treasury first: the books open with the
    treasury's balance on chain, and the deposit reader starts from that moment, so that from
    then on every change of the treasury on chain is explained by the books (payouts, deposits,
    fees; ``reconcile`` shows what is not). The reward budget is funded from it. Later starts,
    and a game server started after the payments service opened the same ledger, find the books
    open and resume at the position stored in the ledger (``ServiceDepositReader.open``: the
    opening and that position are written in one database transaction).

    The server database keeps a copy of where this server read to (``DEPOSIT_CURSOR``, written
    after the ledger's): a server from before the shared position resumes from it (and its
    place becomes the ledger's), and a start resumes at the earlier of the two, reading again
    rather than skipping. Books open with neither position: refused (reading the history from
    the start would book it twice)."""
    ledger, settings = runtime.ledger, runtime.settings
    budget = settings.server_reward_budget_tinybar
    treasury = runtime.transport.treasury_account_id

    def opening_balance() -> int:
        opening = runtime.transport.account_balance(treasury)
        if opening < budget:
            raise ConfigurationError(
                f"the treasury {treasury} holds {opening} tinybar, less than the reward budget "
                f"of {budget}: fund it or lower CROWDLEARNING_SERVER_REWARD_BUDGET_TINYBAR")
        return opening

    reader = runtime.deposit_reader
    if reader is not None:
        reader.open(opening_balance, own_cursor=runtime.store.cursor(DEPOSIT_CURSOR),
                    unknown_position="refuse")
        runtime.store.set_cursor(DEPOSIT_CURSOR, reader.watcher.cursor)
    elif ledger.get_transfer(OPENING_BALANCE_ID) is None:  # no mirror: nothing to read after
        ledger.move(OPENING_BALANCE_ID, "world", "treasury", opening_balance(),
                    memo="opening balance")
    try:
        ledger.fund_reward_budget("server-reward-budget", budget)
    except InsufficientFundsError as exc:  # books opened by the payments service, since spent
        raise ConfigurationError(
            f"the treasury's books hold {ledger.balance('treasury')} tinybar, less than the "
            f"reward budget of {budget}: fund the treasury or lower "
            "CROWDLEARNING_SERVER_REWARD_BUDGET_TINYBAR") from exc


def build_runtime(settings: Settings, transport: HederaTransport) -> Runtime:
    """Wire the ledger, the model, the verdict service, the store and the game loop (the money
    is opened by ``open_books``)."""
    ledger = open_ledger(settings)
    trainer = open_trainer(settings)
    store = Store(settings.server_database_url)
    tracks = play_tracks(settings.server_play_tracks, unlocked_families(trainer.registry.root),
                         settings.server_frontier_play_tracks)
    # judging happens here only without a judge process; then the configured pool does it
    judging = not (settings.server_judge_process or settings.judge_url)
    pool = make_judge_pool(settings.judge_backend, settings.judge_workers,
                           settings.ray_address) if judging else None
    service = verdict_service(settings, ledger, transport, trainer, store, pool,
                              judging=judging)
    game = GameLoop(trainer.policy(), trainer.registry.champion or 0, tracks,
                    capacity=settings.server_max_players, run_ticks=settings.server_run_ticks,
                    random_starts=settings.server_random_starts,
                    disturbance=(settings.server_disturbance_low,
                                 settings.server_disturbance_high),
                    stall_ticks=round(settings.server_stall_seconds * settings.server_tick_hz))
    records = champion_record(trainer, members=settings.server_missions_ensemble,
                              max_rows=settings.server_missions_max_rows,
                              approach_ticks=round(settings.server_missions_approach_s
                                                   * CONTROL_RATE_HZ),  # simulator ticks
                              passing=settings.server_missions_passing)
    missions = MissionBoard(records, count=settings.server_missions,
                            per_family=settings.server_play_tracks,
                            approach=records.approach if settings.server_missions_approach
                            else None)
    return Runtime(settings, store, ledger, transport, trainer, service, game, tracks,
                   LocalJudge(service, ledger, store),
                   RunHolds(ledger, paid_runs_dir(settings)), missions=missions)
