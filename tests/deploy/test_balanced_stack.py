"""The multi-server stack behind HAProxy, as real processes (``crowdlearning.deploy``).

``Stack`` starts what ``crowdlearning stack`` starts: a local Hedera node, the shared judge
(Redis), two game servers (PostgreSQL ledger and users, a fresh schema), HAProxy in front. Through
the balancer: two players are spread over both servers and each run gets its verdict from the one
judge; a reconnect carrying the sticky cookie lands on the same server although the other holds
fewer connections; a killed server is taken out of rotation by the health checks (new players,
the killed server's own included, reach the survivor, and the finished runs are all still there);
stopping ends every process. HAProxy comes from Debian's packages (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect

from crowdlearning.deploy.haproxy import COOKIE, SERVER_HEADER
from crowdlearning.deploy.stack import Stack, StackOptions, find_haproxy

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"CROWDLEARNING_LOG_LEVEL": "WARNING", "CROWDLEARNING_SERVER_RUN_TICKS": "300",
         "CROWDLEARNING_SERVER_PLAY_TRACKS": "2", "CROWDLEARNING_SERVER_EVAL_TRACKS": "2",
         "CROWDLEARNING_VERDICT_NULL_RUNS": "4", "CROWDLEARNING_SERVER_RANDOM_STARTS": "0",
         "CROWDLEARNING_SERVER_AUTH_PER_IP_PER_MIN": "1000"}
REDIS_DB = 13  # not test_shards' database: two judges on one queue would answer each other


def _haproxy() -> str:
    found = find_haproxy()
    if found:
        return found
    message = "haproxy not installed (Debian: apt-get install haproxy; .ci/run does)"
    if os.environ.get("CROWDLEARNING_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _own_database(redis_url: str, db: int) -> str:
    parts = urlsplit(redis_url)
    return urlunsplit(parts._replace(path=f"/{db}")) if parts.scheme == "redis" else redis_url


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str,
          redis_url: str) -> Iterator[Stack]:
    haproxy = _haproxy()
    root = tmp_path_factory.mktemp("stack")
    schema = f"stack_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    options = StackOptions(
        database_url=f"{postgres_url}?options=-csearch_path%3D{schema}",
        redis_url=_own_database(redis_url, REDIS_DB), data_dir=root / "shared", servers=2,
        port=0, haproxy=haproxy, env=SMALL, check_interval_ms=500, judge_timeout_s=240.0,
        server_timeout_s=120.0)
    events = root / "stack-events.log"  # what the stack says (starting, a slow stop, a kill)

    def say(line: str) -> None:
        with events.open("a") as out:
            out.write(line + "\n")

    running = Stack(options, say=say)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def _signup(url: str, name: str) -> str:
    r = httpx.post(f"{url}/api/auth/signup", json={"username": name,
                                                   "password": "correct horse battery"},
                   timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def _ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws/play"


async def _open(url: str, token: str, cookie: str | None = None) -> tuple[ClientConnection, str]:
    """A play socket through the balancer (its hello read) and the server HAProxy says it
    reached."""
    headers = {"Authorization": f"Bearer {token}"}
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    ws = await asyncio.wait_for(connect(_ws_url(url), additional_headers=headers), 20)
    hello = json.loads(await asyncio.wait_for(ws.recv(), 20))
    assert hello["type"] == "hello", hello
    ws.hello = hello  # type: ignore[attr-defined]
    return ws, ws.response.headers[SERVER_HEADER]


async def _play_to_verdict(ws: ClientConnection, started: asyncio.Event) -> dict:
    """Play a short label run on an open socket: the verdict (or error) message."""
    seed = ws.hello["tracks"][0]  # type: ignore[attr-defined]
    await ws.send(json.dumps({"type": "start", "mode": "label", "track_seed": seed}))
    frames = 0
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
        if msg["type"] == "frame":
            frames += 1
            started.set()
            await ws.send(json.dumps({"type": "input", "tick": msg["tick"],
                                      "steer": -msg["policy"][0]}))
            if frames == 60:
                await ws.send(json.dumps({"type": "stop"}))
        elif msg["type"] in ("verdict", "error"):
            return msg


def _server_of(stack: Stack, name: str) -> str:
    return next(p.url for p in stack.game_servers if p.name == name)


def _players_on(stack: Stack, name: str) -> int:
    return httpx.get(f"{_server_of(stack, name)}/healthz", timeout=5).json()["players"]


# --- the tests, in order (the last ones kill a server, then stop the stack) -----------------


@pytest.mark.slow
def test_players_are_spread_over_both_servers_and_judged_by_the_shared_judge(
        stack: Stack) -> None:
    tokens = [_signup(stack.url, f"lb_{i}_{uuid.uuid4().hex[:6]}") for i in range(2)]

    async def scenario() -> tuple[list[str], list[dict], dict[str, int]]:
        opened = []
        for token in tokens:  # one after the other: the second sees the first's connection
            opened.append(await _open(stack.url, token))
        events = [asyncio.Event() for _ in opened]
        plays = [asyncio.create_task(_play_to_verdict(ws, ev))
                 for (ws, _), ev in zip(opened, events, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in events)), 60)
        # while both runs go on, each game server (asked directly) holds one of them
        during = {name: await asyncio.to_thread(_players_on, stack, name)
                  for name in ("game1", "game2")}
        verdicts = await asyncio.gather(*plays)
        for ws, _ in opened:
            await ws.close()
        return [server for _, server in opened], verdicts, during

    servers, verdicts, during = asyncio.run(scenario())
    # THEN least connections sent the second player to the other server
    assert sorted(servers) == ["game1", "game2"], servers
    assert during == {"game1": 1, "game2": 1}, during
    # AND both runs were judged by the one judge behind both servers
    assert all(v["type"] == "verdict" for v in verdicts), verdicts
    for token, verdict in zip(tokens, verdicts, strict=True):
        runs = httpx.get(f"{stack.url}/api/wallet/runs", timeout=10,
                         headers={"Authorization": f"Bearer {token}"}).json()
        assert [r["run_id"] for r in runs] == [verdict["contribution_id"]]
    stack.finished_tokens = dict(zip(tokens, verdicts, strict=True))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_reconnect_with_the_sticky_cookie_lands_on_the_same_server(stack: Stack) -> None:
    token = _signup(stack.url, f"sticky_{uuid.uuid4().hex[:6]}")

    async def scenario() -> tuple[str, list[str], str]:
        held, first = await _open(stack.url, token)  # the player's socket stays open
        again = []
        for _ in range(3):  # least connections alone would pick the other server each time
            ws, server = await _open(stack.url, token, cookie=first)
            again.append(server)
            await ws.close()
        other_ws, other = await _open(stack.url, token)  # no cookie: the emptier server
        await other_ws.close()
        await held.close()
        return first, again, other

    first, again, other = asyncio.run(scenario())
    assert again == [first] * 3
    assert other != first
    # AND plain HTTP with the cookie sticks too (the page's requests)
    for _ in range(3):
        r = httpx.get(f"{stack.url}/healthz", cookies={COOKIE: first}, timeout=5)
        assert r.headers[SERVER_HEADER] == first
        assert r.json()["server"].endswith(f":{urlsplit(_server_of(stack, first)).port}")


@pytest.mark.slow
def test_health_checks_take_a_killed_server_out_of_rotation(stack: Stack) -> None:
    token = _signup(stack.url, f"survivor_{uuid.uuid4().hex[:6]}")
    log = stack.run_dir / "haproxy.log"
    # WHEN game1 dies at once (as a crash would)
    stack.kill("game1")
    deadline = time.monotonic() + 20
    while "game_servers/game1 is DOWN" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    # THEN the health checks have marked it down within a few check intervals
    assert "game_servers/game1 is DOWN" in log.read_text(), log.read_text()[-2000:]

    async def scenario() -> tuple[list[str], str, str]:
        fresh = []
        for _ in range(4):
            ws, server = await _open(stack.url, token)
            fresh.append(server)
            await ws.close()
        ws, sticky = await _open(stack.url, token, cookie="game1")  # game1's own player
        started = asyncio.Event()
        verdict = await _play_to_verdict(ws, started)
        await ws.close()
        return fresh, sticky, verdict["type"]

    fresh, sticky, verdict = asyncio.run(scenario())
    # AND new players, and game1's returning ones, reach game2, where runs are still judged
    assert fresh == ["game2"] * 4 and sticky == "game2"
    assert verdict == "verdict"
    # AND the runs finished before the crash are all still there (one ledger, one store)
    for token_, finished in getattr(stack, "finished_tokens", {}).items():
        runs = httpx.get(f"{stack.url}/api/wallet/runs", timeout=10,
                         headers={"Authorization": f"Bearer {token_}"}).json()
        assert [r["run_id"] for r in runs] == [finished["contribution_id"]]


@pytest.mark.slow
def test_stopping_ends_every_process(stack: Stack) -> None:
    procs = list(stack.processes)
    assert {p.name for p in procs} == {"hedera-node", "judge", "game1", "game2", "haproxy"}
    began = time.monotonic()
    stack.stop()
    said = (stack.options.data_dir.parent / "stack-events.log").read_text()
    # SIGTERM each, in reverse order; one still busy after 20 s is killed (then it is said)
    assert time.monotonic() - began < 60, said
    for proc in procs:
        assert proc.popen.returncode is not None, proc.name
        # nothing of its process group is left running. A child that exited after its parent
        # (multiprocessing's resource tracker of a game server's race child) is a zombie until
        # the reaper it was handed to (PID 1) collects it: exited, not left running
        deadline = time.monotonic() + 10
        while _group(proc.popen.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        running = [m for m in _group(proc.popen.pid) if m.split()[1] != "Z"]
        assert running == [], (proc.name, running)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stack.url}/healthz", timeout=2)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_sigterm_stops_the_command_and_every_process_it_started(
        tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("reads the process tree from /proc (Linux)")
    haproxy = _haproxy()
    schema = f"stack_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    code = "import sys; from crowdlearning.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, "stack", "--servers", "1", "--port", "0", "--data-dir",
           str(tmp_path / "data"), "--haproxy", haproxy,
           "--database-url", f"{postgres_url}?options=-csearch_path%3D{schema}",
           "--redis-url", _own_database(redis_url, REDIS_DB)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **SMALL})
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the Hedera node is up, the judge starting
            line = proc.stdout.readline()
            lines.append(line)
            if "starting the shared judge" in line or not line:
                break
        assert "starting the shared judge" in lines[-1], "".join(lines)
        deadline = time.monotonic() + 20
        while len(children := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(children) == 2, children  # the Hedera node and the judge
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(lines) + out
        assert "stopped" in out
        for child in children:
            with pytest.raises(ProcessLookupError):
                os.kill(child, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


# --- the command and the configuration, without services ------------------------------------


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    code = "import sys; from crowdlearning.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_the_stack_says_in_one_line_what_it_needs_and_exits_2(tmp_path: Path) -> None:
    done = _cli("stack", "--data-dir", str(tmp_path), "--redis-url", "redis://127.0.0.1:1/0",
                "--database-url", "sqlite:///x.db", "--haproxy", str(tmp_path / "no-haproxy"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, lines  # one per missing thing, nothing started
    assert all(line.startswith("crowdlearning stack: error: ") for line in lines)
    assert "HAProxy not found" in lines[0] and "apt-get install haproxy" in lines[0]
    assert "must be PostgreSQL" in lines[1]
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in lines[2]
    assert not (tmp_path / "stack").exists()


def test_the_repository_config_is_the_rendered_template_and_haproxy_accepts_it(
        tmp_path: Path) -> None:
    done = _cli("stack", "--print-config")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (ROOT / "deploy" / "haproxy.cfg").read_text()
    for line in ("balance leastconn", "cookie cl_server insert indirect", "option forwardfor",
                 "http-check send meth GET uri /healthz", "timeout tunnel"):
        assert line in done.stdout
    haproxy = find_haproxy()
    if haproxy is not None:
        checked = subprocess.run([haproxy, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
                                 capture_output=True, text=True, timeout=30, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr



def _group(pgid: int) -> list[str]:
    """The members of process group ``pgid``: "pid state cmdline" each (Linux: /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
                out.append(f"{stat.parent.name} {fields[0]} {cmd.decode(errors='replace')}")
        except (OSError, IndexError, ValueError):
            continue
    return out
