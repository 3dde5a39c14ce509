"""One embedded runtime per test session (local Hedera network, SQLite, initial model)."""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.server.app import create_app
from crowdlearning.server.game_loop import FinishedRun, Outbox, RunSpec
from crowdlearning.server.runtime import Runtime, open_runtime

with warnings.catch_warnings():
    # starlette wants the httpx2 package for its test client; httpx (a dependency) works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

__all__ = ["TestClient", "played_run", "server_settings", "signup"]


def server_settings(root: Path, **overrides: object) -> Settings:
    return Settings(
        environment="test", data_dir=root, database_url=f"sqlite:///{root / 'ledger.db'}",
        server_database_url=f"sqlite:///{root / 'server.db'}", hedera_local_port=0,
        hedera_local_mirror_port=0,
        server_max_players=8, server_run_ticks=200, server_settle_interval_s=0.2,
        server_ws_max_errors=6, server_auth_per_ip_per_min=100_000, server_play_tracks=3,
        server_frontier_play_tracks=0, server_eval_tracks=2, verdict_null_runs=4,
        server_random_starts=False,
        ledger_stake_minimum_tinybar=100_000_000, server_judge_process=False, **overrides)


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with open_runtime(server_settings(tmp_path_factory.mktemp("server"))) as rt:
        yield rt


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime.settings, runtime)) as c:
        yield c


_counter = iter(range(1_000_000))


def signup(client: TestClient, name: str | None = None) -> dict:
    """A new user, signed in (the client keeps the cookie); returns the session body."""
    name = name or f"player{next(_counter)}"
    r = client.post("/api/auth/signup", json={"username": name, "password": "correct horse"})
    assert r.status_code == 201, r.text
    return r.json()


def played_run(runtime: Runtime, name: str) -> FinishedRun:
    """A user plays a short labelled run on the runtime's own game loop (stepped by hand)."""
    user = runtime.store.add_user(name, "not-a-real-hash")
    assert user is not None
    runtime.ledger.open_player(user.player_id)
    finished: list[FinishedRun] = []
    runtime.game.on_finish = finished.append
    spec = RunSpec(f"run-{name}", user.player_id, name, runtime.game.seeds[0], "label")
    slot = runtime.game.join(spec, Outbox(1000))
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # each player steers their own way
    for tick in range(40):
        runtime.game.step()
        runtime.game.set_input(slot, tick, float(rng.uniform(-0.5, 0.5)), None, False)
    runtime.game.stop(slot)
    runtime.game.step()
    assert len(finished) == 1
    return finished[0]
