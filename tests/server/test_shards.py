"""Two game servers, one shared judge, real processes: the scale-out path end to end.

Starts, as separate processes on loopback: a local Hedera node (`crowdlearning hedera-node`),
the shared judge (`crowdlearning judge`, Redis), and two game servers (`crowdlearning serve`)
sharing the data directory (models) and PostgreSQL (ledger, users; a fresh schema each). A player
signs up on the first server and plays a run there; another signs up on the second and plays
there. Both get their verdicts from the one judge; each server sees both players (one user
store), the shared ledger holds both, and spectators on either server see both servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import connect

from tests.server.test_e2e_browser import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    code = "import sys; from crowdlearning.cli import main; sys.exit(main(sys.argv[1:]))"
    with log.open("wb") as out:  # the child keeps its own handle
        return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait_for(predicate, proc: subprocess.Popen, log: Path, what: str,
              timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n"
                                 f"{log.read_text()[-3000:]}")
        try:
            if predicate():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what} did not come up in time:\n{log.read_text()[-3000:]}")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()  # and reap it: a live Popen collected later is a ResourceWarning
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_url: str,
            redis_url: str) -> Iterator[list[str]]:
    root = tmp_path_factory.mktemp("shards")
    schema = f"shards_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    db_url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    procs: list[subprocess.Popen] = []
    try:
        node_port, mirror_port = free_port(), free_port()
        base = {**os.environ, "CROWDLEARNING_LOG_LEVEL": "WARNING",
                "CROWDLEARNING_DATA_DIR": str(root / "shared"),
                "CROWDLEARNING_DATABASE_URL": db_url,
                "CROWDLEARNING_SERVER_DATABASE_URL": db_url,
                "CROWDLEARNING_JUDGE_URL": redis_url,
                "CROWDLEARNING_HEDERA_NETWORK": "local",
                "CROWDLEARNING_HEDERA_LOCAL_PORT": str(node_port),
                "CROWDLEARNING_HEDERA_MIRROR_URL": f"http://127.0.0.1:{mirror_port}/api/v1",
                "CROWDLEARNING_SERVER_RUN_TICKS": "300", "CROWDLEARNING_SERVER_PLAY_TRACKS": "2",
                "CROWDLEARNING_SERVER_EVAL_TRACKS": "2", "CROWDLEARNING_VERDICT_NULL_RUNS": "4",
                "CROWDLEARNING_SERVER_RANDOM_STARTS": "0"}
        node_log = root / "node.log"
        procs.append(_start(["hedera-node", "--port", str(node_port), "--mirror-port",
                             str(mirror_port), "--state", str(root / "hedera.json")],
                            base, node_log))
        _wait_for(lambda: "OPERATOR_KEY=" in node_log.read_text(), procs[-1], node_log,
                  "the Hedera node")
        creds = dict(line.split("export ", 1)[1].split("=", 1)
                     for line in node_log.read_text().splitlines()
                     if "export CROWDLEARNING_HEDERA_OPERATOR" in line)
        env = {**base, **{k: v.strip() for k, v in creds.items()}}
        judge_log = root / "judge.log"
        procs.append(_start(["judge"], env, judge_log))  # trains the first model
        _wait_for(lambda: "serving game servers" in judge_log.read_text(), procs[-1],
                  judge_log, "the judge")
        urls = []
        for name in ("east", "west"):  # one after the other: the first opens the books
            port, log = free_port(), root / f"{name}.log"
            procs.append(_start(["serve", "--port", str(port), "--data-dir",
                                 str(root / "shared")], env, log))
            url = f"http://127.0.0.1:{port}"
            _wait_for(lambda u=url: httpx.get(f"{u}/api/game/stats", timeout=1).status_code
                      == 200, procs[-1], log, f"game server {name}")
            urls.append(url)
        yield urls
    finally:
        _stop(procs)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


async def _play(url: str, token: str) -> dict:
    ws_url = url.replace("http://", "ws://") + "/ws/play"
    async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        hello = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "start", "mode": "label",
                                  "track_seed": hello["tracks"][0]}))
        frames = 0
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if msg["type"] == "frame":
                frames += 1
                await ws.send(json.dumps({"type": "input", "tick": msg["tick"],
                                          "steer": -msg["policy"][0]}))
                if frames == 60:
                    await ws.send(json.dumps({"type": "stop"}))
            elif msg["type"] in ("verdict", "error"):
                return msg


def test_two_servers_share_one_judge_one_ledger_and_one_user_store(cluster: list[str]) -> None:
    east, west = cluster
    players = {}
    for url, name in ((east, "east_player"), (west, "west_player")):
        r = httpx.post(f"{url}/api/auth/signup", json={"username": name,
                                                       "password": "correct horse"})
        assert r.status_code == 201, r.text
        players[name] = r.json()["token"]
    # WHEN each plays a run on their own server
    verdicts = {name: asyncio.run(_play(url, players[name]))
                for url, name in ((east, "east_player"), (west, "west_player"))}
    # THEN both runs were judged by the shared judge
    assert all(v["type"] == "verdict" for v in verdicts.values()), verdicts
    # AND spectators on either server hear from both servers
    for url in (east, west):
        assert httpx.get(f"{url}/api/watch").json()["servers"] == 2
    # AND either server knows both players and both runs (one store, one ledger)
    for url in (east, west):
        for name, token in players.items():
            me = httpx.get(f"{url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["username"] == name
            runs = httpx.get(f"{url}/api/wallet/runs",
                             headers={"Authorization": f"Bearer {token}"}).json()
            assert [r["run_id"] for r in runs] == [verdicts[name]["contribution_id"]]
