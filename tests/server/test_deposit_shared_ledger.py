"""The payments service and a game server read ONE ledger's treasury together, in either start
order, through ``kill -9``: every deposit and every network fee is booked exactly once, and the
books equal the chain to the tinybar.

Against the project's local Hedera network over gRPC and its mirror REST view: the treasury is
an account of its own (funded by the network's development operator), the payments service is
``crowdlearning payments serve`` as a subprocess (killed with SIGKILL), the game server is
``open_runtime`` in this process (its crash is the state a ``kill -9`` leaves: deposits booked,
neither position moved). Both share one SQLite ledger file. The reader's position is the
ledger's (``payments_cursors``, ``deposits:<treasury>``), one per treasury account.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from hiero_sdk_python import AccountId, PrivateKey, ResponseCode, TransferTransaction

from crowdlearning.errors import ConfigurationError
from crowdlearning.ledger import Ledger, PayoutState, make_engine
from crowdlearning.ledger.clients import open_client
from crowdlearning.ledger.cursors import read_cursor
from crowdlearning.ledger.schema import payments_cursors
from crowdlearning.payments.deposits import (
    OPENING_BALANCE_ID,
    DepositWatcher,
    ServiceDepositReader,
    timestamp_key,
)
from crowdlearning.payments.local_network import LocalNetworkInfo, running_local_network
from crowdlearning.payments.sdk_transport import SdkHederaTransport, client_for_network
from crowdlearning.payments.settlement import reconcile
from crowdlearning.server.app import create_app
from crowdlearning.server.runtime import DEPOSIT_CURSOR, Runtime, open_runtime
from tests.ledger.factories import new_ledger
from tests.payments.test_payouts_kill import REPO, Service, _free_port, _service_env
from tests.server.conftest import TestClient, server_settings

pytestmark = pytest.mark.timeout(600)
HBAR = 100_000_000


@pytest.fixture
def network() -> Iterator[LocalNetworkInfo]:
    with running_local_network(mirror_port=0) as info:
        yield info


class World:
    """The treasury (a fresh account: its history starts empty), a depositor's wallet paying
    its own fees, the shared ledger file, and the two processes booking it."""

    def __init__(self, network: LocalNetworkInfo, root: Path) -> None:
        self.network, self.root = network, root
        self.bank = SdkHederaTransport.for_local_network(network, request_timeout_s=10)
        self.key = PrivateKey.generate_ed25519()
        self.treasury = self.bank.create_account(self.key.public_key(), 20_000 * HBAR)
        wallet_key = PrivateKey.generate_ed25519()
        self.wallet = self.bank.create_account(wallet_key.public_key(), 1_000 * HBAR)
        self.wallet_sdk = client_for_network("local", local_address=network.address)
        self.wallet_sdk.set_operator(AccountId.from_string(self.wallet), wallet_key)
        self.payee = self.bank.create_account(PrivateKey.generate_ed25519().public_key())
        self.url = f"sqlite:///{root / 'ledger.db'}"
        self.engine = make_engine(self.url)
        self.ledger: Ledger = new_ledger(self.engine)
        self.ledger.run(lambda c: open_client(c, "acme", now_ns=1))
        self.ledger.open_player("p1")
        self.sent: dict[str, int] = {"client:acme": 0, "player:p1:available": 0}
        self.deposit_ids: set[str] = set()
        self.payout_ids = []
        env = {**_service_env(network, self.url),
               "CROWDLEARNING_HEDERA_OPERATOR_ID": self.treasury,
               "CROWDLEARNING_HEDERA_OPERATOR_KEY": self.key.to_string_der(),
               "CROWDLEARNING_PAYMENTS_DEPOSIT_POLL_S": "0.05"}
        self.service = Service(env, _free_port(), root)
        self.settings = server_settings(root / "server").model_copy(update={
            "database_url": self.url, "hedera_mirror_url": network.mirror_rest_url,
            # the test polls the game server's reader by hand (``poll_deposits_once``)
            "server_deposit_poll_s": 600})
        (root / "server").mkdir()

    def send(self, amount: int, memo: str, account: str) -> None:
        """``amount`` from the wallet to the treasury with ``memo``, for ``account``."""
        tx = (TransferTransaction()
              .add_hbar_transfer(AccountId.from_string(self.wallet), -amount)
              .add_hbar_transfer(AccountId.from_string(self.treasury), amount))
        tx.set_transaction_memo(memo)
        assert tx.execute(self.wallet_sdk).status == ResponseCode.SUCCESS
        start = tx.transaction_id.valid_start
        self.deposit_ids.add(f"deposit:{self.wallet}-{start.seconds}-{start.nanos:09d}")
        self.sent[account] += amount

    def deposits(self, n: int) -> None:
        for i in range(n):
            if i % 2:
                self.send(HBAR + i, "deposit:p1", "player:p1:available")
            else:
                self.send(2 * HBAR + i, "client:acme", "client:acme")

    @contextlib.contextmanager
    def game_server(self) -> Iterator[tuple[Runtime, TestClient]]:
        transport = SdkHederaTransport(
            client=client_for_network("local", local_address=self.network.address)
            .set_operator(AccountId.from_string(self.treasury), self.key),
            operator_id=self.treasury, operator_key=self.key)
        try:
            with open_runtime(self.settings, transport=transport) as runtime, \
                    TestClient(create_app(runtime.settings, runtime)) as client:
                yield runtime, client
        finally:
            transport.close()

    def stored_cursor(self) -> str | None:
        return self.ledger.run(lambda c: read_cursor(c, f"deposits:{self.treasury}"))

    def wait_for(self, what: str, done: Callable[[], bool], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"{what}\n{self.service.tail()}"
            time.sleep(0.1)

    def credited(self) -> bool:
        return all(self.ledger.balance(account) == amount - self.paid(account)
                   for account, amount in self.sent.items())

    def paid(self, account: str) -> int:
        return self._payouts if account == "client:acme" else 0

    _payouts = 0

    def pay_out(self, payout_id: str, amount: int) -> None:
        """A client payout through the ledger: settled by whichever process settles first,
        its transaction's fee paid by the treasury (and booked from the mirror's record)."""
        self.ledger.request_payout(payout_id, "client:acme", self.payee, amount)
        self._payouts += amount
        self.payout_ids.append(payout_id)

    payout_ids: list[str]

    def all_settled(self) -> bool:
        return all(self.ledger.get_payout(p).state is PayoutState.POSTED
                   for p in self.payout_ids)

    def treasury_paid(self) -> set[str]:
        """``fee:<id>:<consensus time>`` of every transaction the treasury paid, from the
        mirror (the fee ids the books must hold exactly once)."""
        response = httpx.get(f"{self.network.mirror_rest_url}/transactions", params={
            "account.id": self.treasury, "order": "asc", "limit": 100})
        txs = response.json()["transactions"]
        assert len(txs) < 100  # one page holds this test's history
        return {f"fee:{tx['transaction_id']}:{tx['consensus_timestamp']}" for tx in txs
                if tx["transaction_id"].rsplit("-", 2)[0] == self.treasury}

    def booked_ids(self, prefix: str) -> set[str]:
        return set(self.ledger.run(lambda c: c.execute(
            sa.text("SELECT id FROM ledger_transfers WHERE id LIKE :p"),
            {"p": f"{prefix}%"}).scalars().all()))

    def check_books_equal_chain(self, poll: Callable[[], object] = lambda: None) -> None:
        """Every deposit credited once, every fee booked once, none unknown, books == chain;
        ``poll`` runs while waiting (the game server's reader, polled by hand)."""
        def polled(check: Callable[[], bool]) -> Callable[[], bool]:
            return lambda: bool(poll()) or check()

        self.wait_for("deposits credited", polled(self.credited))
        self.wait_for("payouts settled", polled(self.all_settled))
        self.wait_for("fees booked",
                      polled(lambda: self.booked_ids("fee:") == self.treasury_paid()))
        time.sleep(0.5)  # a few more polls of the service's reader: nothing more may come
        poll()
        assert self.booked_ids("deposit:") == self.deposit_ids
        assert self.booked_ids("fee:") == self.treasury_paid()
        assert self.credited()
        assert self.bank.account_balance(self.payee) == self._payouts
        treasury = self.bank_as_treasury()
        try:
            report = reconcile(self.ledger, treasury)
        finally:
            treasury.close()
        assert report.mismatches == () and report.fees_unbooked == ()
        assert report.drift_tinybar == 0, report

    def bank_as_treasury(self) -> SdkHederaTransport:
        return SdkHederaTransport(
            client=client_for_network("local", local_address=self.network.address)
            .set_operator(AccountId.from_string(self.treasury), self.key),
            operator_id=self.treasury, operator_key=self.key)

    def close(self) -> None:
        self.service.stop()
        self.wallet_sdk.close()
        self.bank.close()
        self.engine.dispose()


@pytest.fixture
def world(network: LocalNetworkInfo, tmp_path: Path) -> Iterator[World]:
    w = World(network, tmp_path)
    try:
        yield w
    finally:
        w.close()


def _crash_after_booking(runtime: Runtime) -> None:
    """What ``kill -9`` of the game server after a poll's ledger writes leaves: the deposits
    and fees booked, neither the ledger's position nor the server's copy moved."""
    assert runtime.deposits is not None
    runtime.deposits.poll()


def test_service_first_then_game_server(world: World) -> None:
    # GIVEN the payments service opened the books at its first start, was killed (-9) while
    # deposits arrived and restarted
    world.service.start()
    world.service.wait_ready()
    assert world.ledger.get_transfer(OPENING_BALANCE_ID) is not None
    opened_at = world.stored_cursor()
    assert opened_at is not None
    world.deposits(3)
    world.service.kill()
    world.deposits(2)
    world.service.start()
    world.service.wait_ready()
    world.wait_for("service credited", world.credited)
    # WHEN a game server starts on the same ledger (it refused to before)
    with world.game_server() as (runtime, client):
        # THEN it resumes at the ledger's position (its own database had none)
        assert runtime.deposit_reader is not None
        assert timestamp_key(runtime.deposit_reader.watcher.cursor) >= timestamp_key(opened_at)
        assert runtime.store.cursor(DEPOSIT_CURSOR) == runtime.deposit_reader.watcher.cursor
        # AND both read what arrives, the service killed (-9) again meanwhile
        world.deposits(2)
        world.pay_out("shared-1", 3 * HBAR)
        client.app.state.referee.poll_deposits_once()
        world.service.kill()
        world.deposits(2)
        client.app.state.referee.poll_deposits_once()
        _crash_after_booking(runtime)  # then the game server dies too
    world.deposits(1)
    world.service.start()
    world.service.wait_ready()
    with world.game_server() as (runtime, client):  # and comes back
        client.app.state.referee.poll_deposits_once()
        world.pay_out("shared-2", 2 * HBAR)
        world.check_books_equal_chain(client.app.state.referee.poll_deposits_once)
        # AND the ledger's position is where the readers got to, never behind the copy
        stored = world.stored_cursor()
        assert stored is not None
        assert timestamp_key(stored) >= timestamp_key(runtime.store.cursor(DEPOSIT_CURSOR))


def test_game_server_first_then_service(world: World) -> None:
    # GIVEN a game server opened the books at its first start and read deposits
    with world.game_server() as (runtime, client):
        assert world.ledger.get_transfer(OPENING_BALANCE_ID) is not None
        assert world.stored_cursor() == runtime.store.cursor(DEPOSIT_CURSOR)
        world.deposits(3)
        client.app.state.referee.poll_deposits_once()
        assert world.credited()
        # WHEN the payments service starts on the same ledger while the game server runs
        world.service.start()
        world.service.wait_ready()
        # THEN it did not open the books again (one opening) and both read what arrives
        world.deposits(2)
        world.pay_out("shared-1", 3 * HBAR)
        world.wait_for("service credited", world.credited)
        client.app.state.referee.poll_deposits_once()
        world.service.kill()  # the service killed (-9) ...
        world.deposits(2)
        _crash_after_booking(runtime)  # ... and the game server dying after booking
    # AND while the game server is down the restarted service reads on alone
    world.service.start()
    world.service.wait_ready()
    world.deposits(2)
    world.wait_for("service credited", world.credited)
    world.service.kill()
    world.deposits(1)  # the service dead: read by the game server when it returns
    with world.game_server() as (runtime, client):
        client.app.state.referee.poll_deposits_once()
        assert world.credited()
        world.service.start()
        world.service.wait_ready()
        world.pay_out("shared-2", 2 * HBAR)
        world.check_books_equal_chain(client.app.state.referee.poll_deposits_once)
    openings = world.booked_ids(OPENING_BALANCE_ID)
    assert openings == {OPENING_BALANCE_ID}


def test_a_game_server_from_before_the_shared_position_hands_over_its_own(
    world: World
) -> None:
    # GIVEN books a game server opened when its position lived only in its own database
    with world.game_server() as (runtime, client):
        world.deposits(1)
        client.app.state.referee.poll_deposits_once()
        own = runtime.store.cursor(DEPOSIT_CURSOR)
    world.ledger.run(lambda c: c.execute(sa.delete(payments_cursors).where(
        payments_cursors.c.name == f"deposits:{world.treasury}")))
    world.deposits(2)  # arriving while no reader runs
    # WHEN it starts again (upgraded)
    with world.game_server() as (runtime, client):
        # THEN it resumes at its own position, which becomes the ledger's, and misses nothing
        assert own is not None and world.stored_cursor() == own
        client.app.state.referee.poll_deposits_once()
        assert world.credited()
        world.check_books_equal_chain(client.app.state.referee.poll_deposits_once)
    # AND a server that lost both positions refuses to start (it would book everything twice)
    world.ledger.run(lambda c: c.execute(sa.delete(payments_cursors).where(
        payments_cursors.c.name == f"deposits:{world.treasury}")))
    os.remove(world.root / "server" / "server.db")
    with pytest.raises(ConfigurationError, match="position"), world.game_server():
        pass


def test_two_readers_opening_at_once_open_the_books_once(world: World) -> None:
    # GIVEN two readers of one empty ledger
    def reader() -> ServiceDepositReader:
        return ServiceDepositReader(DepositWatcher(world.ledger, world.network.mirror_rest_url,
                                                   world.treasury))

    first, second = reader(), reader()
    treasury = world.bank_as_treasury()

    def balance_while_the_other_opens() -> int:
        # the first opens between the second's check and the second's own opening
        assert first.open(lambda: treasury.account_balance(world.treasury)) is True
        world.deposits(1)  # and the treasury moves: the second's balance would be wrong
        return treasury.account_balance(world.treasury)

    # WHEN the second opens while the first does
    assert second.open(balance_while_the_other_opens) is False
    # THEN one opening, one position (the first's), which the second adopted
    assert world.booked_ids(OPENING_BALANCE_ID) == {OPENING_BALANCE_ID}
    assert second.watcher.cursor == first.watcher.cursor == world.stored_cursor()
    assert world.ledger.balance("treasury") == treasury.account_balance(world.treasury) - (
        world.sent["client:acme"] + world.sent["player:p1:available"])
    second.poll()
    assert world.credited()
    assert reconcile(world.ledger, treasury).drift_tinybar == 0
    treasury.close()
    first.close()
    second.close()


class GameServer(Service):
    """``crowdlearning serve`` as a subprocess on the world's ledger, killed by the test."""

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"game-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "crowdlearning"), "serve", "--port",
             str(self.port)], env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/api/game/stats", timeout=1).status_code == 200:
                    return
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.2)

    def tail(self) -> str:
        path = self.logs / f"game-{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _game_server_env(world: World) -> dict[str, str]:
    s = world.settings
    return {**world.service.env,
            "CROWDLEARNING_DATA_DIR": str(s.data_dir),
            "CROWDLEARNING_DATABASE_URL": world.url,
            "CROWDLEARNING_SERVER_DATABASE_URL": s.server_database_url,
            "CROWDLEARNING_SERVER_DEPOSIT_POLL_S": "0.05",
            "CROWDLEARNING_SERVER_JUDGE_PROCESS": "0",
            "CROWDLEARNING_SERVER_PLAY_TRACKS": str(s.server_play_tracks),
            "CROWDLEARNING_SERVER_EVAL_TRACKS": str(s.server_eval_tracks),
            "CROWDLEARNING_SERVER_RUN_TICKS": str(s.server_run_ticks),
            "CROWDLEARNING_VERDICT_NULL_RUNS": str(s.verdict_null_runs),
            "CROWDLEARNING_SERVER_RANDOM_STARTS": "0",
            "CROWDLEARNING_LEDGER_STAKE_MINIMUM_TINYBAR": str(s.ledger_stake_minimum_tinybar)}


def test_both_killed_9_in_turn_while_deposits_arrive(world: World) -> None:
    # GIVEN the service opened the books, and a game server's data directory holds its model
    # (trained once in this process, which also resumes at the service's position)
    world.service.start()
    world.service.wait_ready()
    with world.game_server():
        pass
    game = GameServer(_game_server_env(world), _free_port(), world.root)
    game.start()
    game.wait_ready()
    try:
        # WHEN deposits arrive while the two processes are killed (-9) in turn and restarted,
        # one of them always running
        for n in range(1, 13):
            world.deposits(1)
            if n % 3 == 0:
                victim = game if n % 6 == 0 else world.service
                victim.kill()
                world.deposits(1)  # arriving while it is dead
                victim.start()
                victim.wait_ready()
        world.pay_out("shared-1", 3 * HBAR)
        # THEN each deposit and each fee is booked exactly once and the books equal the chain
        world.check_books_equal_chain()
        assert (world.service.starts, game.starts) == (3, 3)
    finally:
        game.stop()
