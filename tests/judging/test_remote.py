"""Several game servers, one judge over Redis: one screen, answers to the right shard."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from crowdlearning.evaluation.verdict import Decision
from crowdlearning.judging.errors import JudgeUnavailableError
from crowdlearning.judging.local import LocalJudge
from crowdlearning.judging.remote import JudgeServer, RemoteJudge
from crowdlearning.server.runtime import Runtime, open_runtime
from tests.server.conftest import played_run, server_settings

pytestmark = pytest.mark.timeout(300)
HBAR = 100_000_000


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with open_runtime(server_settings(tmp_path_factory.mktemp("shared-judge"))) as rt:
        yield rt


@pytest.fixture
def prefix() -> str:
    return f"crowdlearning-test:{uuid.uuid4().hex}"


@pytest.fixture
def judge_server(runtime: Runtime, redis_url: str, prefix: str) -> Iterator[JudgeServer]:
    assert isinstance(runtime.judge, LocalJudge)
    server = JudgeServer(runtime.judge, redis.Redis.from_url(redis_url), prefix=prefix,
                         round_interval_s=3600)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_s": 0.2}, daemon=True)
    thread.start()
    yield server
    server.stop()
    thread.join(timeout=10)


def _shard(redis_url: str, prefix: str, runtime: Runtime, timeout_s: float = 60) -> RemoteJudge:
    return RemoteJudge(redis_url, champion=runtime.trainer.registry.champion, prefix=prefix,
                       timeout_s=timeout_s)


def test_data_sent_to_two_shards_is_judged_once(runtime: Runtime, judge_server: JudgeServer,
                                                redis_url: str, prefix: str) -> None:
    # GIVEN two game servers sharing the judge, and a paid run recorded on the first (the
    # screen remembers paid runs: practice ones never make a later run a duplicate)
    east, west = _shard(redis_url, prefix, runtime), _shard(redis_url, prefix, runtime)
    run = played_run(runtime, "shard_east")
    player = run.spec.player_id
    runtime.ledger.deposit("deposit-shard_east", f"player:{player}:available", 2 * HBAR)
    runtime.ledger.lock_stake("stake-shard_east", player, 2 * HBAR)
    spec = dataclasses.replace(run.spec, paid=True)
    copy = dataclasses.replace(run.contribution, contribution_id="copy-on-west")
    # WHEN the first sends it and the second sends the same data under another run id
    [first] = east.submit_many([(spec, run.contribution.to_bytes())])
    [second] = west.submit_many([(dataclasses.replace(spec, run_id="copy-on-west"),
                                  copy.to_bytes())])
    # THEN the first is judged, the copy is refused by the one shared screen
    assert first["type"] == "verdict" and first["decision"] != Decision.REJECTED.value
    assert second["decision"] == Decision.REJECTED.value and "duplicate" in second["reason"]
    assert judge_server.served == 2


def test_concurrent_shards_get_their_own_answers(runtime: Runtime, judge_server: JudgeServer,
                                                 redis_url: str, prefix: str) -> None:
    runs = {name: played_run(runtime, name) for name in ("shard_a", "shard_b", "shard_c")}
    answers: dict[str, str] = {}

    def play_on_own_shard(name: str) -> None:
        run = runs[name]
        [message] = _shard(redis_url, prefix, runtime).submit_many(
            [(run.spec, run.contribution.to_bytes())])
        answers[name] = message["contribution_id"]

    threads = [threading.Thread(target=play_on_own_shard, args=(n,)) for n in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert answers == {n: r.contribution.contribution_id for n, r in runs.items()}


def test_a_new_champion_reaches_every_shard_once(runtime: Runtime, judge_server: JudgeServer,
                                                 redis_url: str, prefix: str) -> None:
    shard = _shard(redis_url, prefix, runtime)
    assert shard.close_round() is None  # nothing changed
    registry = runtime.trainer.registry
    net, _ = registry.load(registry.champion)
    newer = registry.register(net, parent_version=registry.champion)
    registry.set_champion(newer.version)
    assert shard.close_round() == newer.version
    assert shard.close_round() is None


def test_bad_requests_are_answered_or_dropped_and_serving_goes_on(
        runtime: Runtime, judge_server: JudgeServer, redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    reply = f"{prefix}:reply:manual"
    # an expired request, an unknown operation, garbage, and a foreign reply key
    for request in ({"op": "settle", "args": [], "deadline": time.time() - 1},
                    {"op": "format_disk", "args": None, "deadline": time.time() + 60}):
        client.lpush(f"{prefix}:requests", json.dumps({**request, "reply_to": reply}))
        _, answer = client.blpop([reply], timeout=30)
        assert "error" in json.loads(answer)
    client.lpush(f"{prefix}:requests", b"\x00not json")
    client.lpush(f"{prefix}:requests", json.dumps({"op": "settle", "args": [],
                                                   "reply_to": "somebody:else",
                                                   "deadline": time.time() + 60}))
    assert _shard(redis_url, prefix, runtime).settle([]) == []  # still serving
    assert client.llen("somebody:else") == 0


def test_a_shard_without_a_judge_times_out_clearly(runtime: Runtime, redis_url: str,
                                                   prefix: str) -> None:
    shard = _shard(redis_url, prefix, runtime, timeout_s=1)
    with pytest.raises(JudgeUnavailableError, match="did not answer"):
        shard.settle([])


def test_a_game_server_with_a_judge_url_uses_the_shared_judge(
        tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> None:
    settings = server_settings(tmp_path_factory.mktemp("shard")).model_copy(
        update={"judge_url": redis_url, "server_judge_process": True})
    with open_runtime(settings) as shard:
        assert isinstance(shard.judge, RemoteJudge)
        assert shard.service.state is None  # this server never judges, so keeps no round
