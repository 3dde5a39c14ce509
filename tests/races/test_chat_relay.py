"""Race chat across game servers (``races/chat_relay.py``): a line written on one server reaches
the race's spectators on another through Redis (the one the servers share), with its writer so
a moderator there can mute them; a deletion reaches back; a server ignores its own messages,
malformed ones and races it does not show."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from crowdlearning.races.chat import Chat
from crowdlearning.races.chat_relay import ChatRelay
from crowdlearning.races.spectators import SpectatorBox, Spectators
from tests.races.test_chat import ANN, MOD, chat_settings


def server(tmp_path: Path) -> tuple[Spectators, SpectatorBox]:
    channel = Spectators(10, 8, None, chat=Chat(chat_settings(tmp_path)).room("r1"))
    box = channel.join()
    assert box is not None
    return channel, box


async def messages(box: SpectatorBox, kind: str, timeout: float = 5.0) -> list[dict]:
    """The box's messages up to the first of type ``kind``."""
    got: list[dict] = []
    async with asyncio.timeout(timeout):
        while not any(m["type"] == kind for m in got):
            got += [json.loads(t) for t in await box.take()]
    return got


def test_chat_crosses_game_servers(tmp_path: Path, redis_url: str) -> None:
    async def scenario() -> None:
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        (a, box_a), (b, box_b) = server(tmp_path), server(tmp_path)
        relay_a = ChatRelay(redis_url, prefix=prefix, server_id="a")
        relay_b = ChatRelay(redis_url, prefix=prefix, server_id="b")
        tasks = [asyncio.create_task(relay_a.run({"r1": a}.get)),
                 asyncio.create_task(relay_b.run({"r1": b}.get))]
        try:
            async with asyncio.timeout(5):
                await relay_a.subscribed.wait()
                await relay_b.subscribed.wait()
            assert a.chat is not None and b.chat is not None
            line = a.chat.post(ANN, "ann", "hello from server a")
            assert isinstance(line, dict)
            a.chat_posted()
            relay_a.publish("r1", "line", line=line, author=ANN)

            [on_b] = [m for m in await messages(box_b, "chat") if m["type"] == "chat"]
            assert on_b["chat"] == [line]  # the same id, name, text, time
            assert b.chat.history() == [line]
            target = b.chat.mute_target(MOD, line["id"], 60)  # a moderator on b can mute ann
            assert isinstance(target, tuple) and target[0] == ANN
            [on_a] = [m for m in await messages(box_a, "chat") if m["type"] == "chat"]
            assert on_a["chat"] == [line]
            await asyncio.sleep(0.3)
            assert not box_a._items  # a's own line did not come back to it

            assert b.chat.remove(MOD, line["id"]) is None  # deleted by a moderator on b
            b.event({"type": "chat_removed", "id": line["id"]})
            relay_b.publish("r1", "removed", id=line["id"])
            got = await messages(box_a, "chat_removed")
            assert got[-1] == {"type": "chat_removed", "id": line["id"]}
            assert a.chat.history() == []
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())


def test_a_server_ignores_its_own_malformed_and_unknown_race_messages(tmp_path: Path) -> None:
    channel, box = server(tmp_path)
    relay = ChatRelay("redis://127.0.0.1:1", server_id="me")  # never connects here
    channels = {"r1": channel}.get
    line = {"id": 7, "name": "ann", "text": "hi", "at": 1.0}
    for raw in (json.dumps({"server": "me", "race": "r1", "kind": "line", "line": line,
                            "author": ANN}),
                json.dumps({"server": "x", "race": "r9", "kind": "line", "line": line,
                            "author": ANN}),
                json.dumps({"server": "x", "race": "r1", "kind": "line", "line": line}),
                json.dumps({"server": "x", "race": "r1", "kind": "line",
                            "line": {**line, "id": "7"}, "author": ANN}),
                json.dumps(["not", "a", "message"]), b"\xff not json"):
        relay.deliver(raw, channels)
    assert channel.chat is not None and channel.chat.history() == [] and not box._items
    good = json.dumps({"server": "x", "race": "r1", "kind": "line",
                       "line": {**line, "extra": "dropped"}, "author": ANN})
    relay.deliver(good, channels)
    relay.deliver(good, channels)  # delivered twice: published once
    assert channel.chat.history() == [line] and channel.chat.author(7) == ANN


def test_a_service_relays_chat_when_servers_share_a_redis(tmp_path: Path,
                                                           registry_root: Path) -> None:
    from crowdlearning.learning.registry import ModelRegistry
    from crowdlearning.races.service import RaceService
    from crowdlearning.server.store import Store

    store = Store(f"sqlite:///{tmp_path / 'server.db'}")
    alone = RaceService(chat_settings(tmp_path), ModelRegistry(registry_root), store.engine)
    assert alone.chat_relay is None
    shared = RaceService(chat_settings(tmp_path, judge_url="redis://127.0.0.1:1"),
                         ModelRegistry(registry_root), store.engine)
    assert shared.chat_relay is not None and shared.chat_relay.channel.endswith(":race-chat")
    alone.close()
    shared.close()


def test_two_race_services_on_one_redis_share_a_race_chat(
        tmp_path: Path, registry_root: Path, redis_url: str) -> None:
    """The wiring: each service's task relays (``run_forever``), the socket's handler publishes
    (``routes/races._chat``)."""
    from types import SimpleNamespace

    from crowdlearning.learning.registry import ModelRegistry
    from crowdlearning.races.service import RaceService
    from crowdlearning.server.play_socket import TokenBucket
    from crowdlearning.server.routes.races import _chat
    from crowdlearning.server.store import Store

    async def scenario() -> None:
        services = []
        for name in ("a", "b"):
            store = Store(f"sqlite:///{tmp_path / f'{name}.db'}")
            settings = chat_settings(tmp_path, judge_url=redis_url, races_interval_s=86_400)
            services.append(RaceService(settings, ModelRegistry(registry_root), store.engine,
                                        families=lambda: ("easy",)))
        a, b = services
        race_id = a.timetable.upcoming(a.clock(), 1)[0].race_id
        tasks = [asyncio.create_task(s.run_forever()) for s in services]
        try:
            async with asyncio.timeout(5):
                for s in services:
                    await s.chat_relay.subscribed.wait()  # type: ignore[union-attr]
            channel_a, channel_b = a.channel(race_id), b.channel(race_id)
            box_b = channel_b.join()
            assert box_b is not None
            ann = SimpleNamespace(id=ANN, username="ann")
            sent = await _chat(a, race_id, channel_a, ann, {"type": "chat", "text": "hi b"},
                               TokenBucket(10))
            assert sent is not None and sent["type"] == "chat_sent"
            [got] = [m for m in await messages(box_b, "chat") if m["type"] == "chat"]
            assert [(m["id"], m["text"]) for m in got["chat"]] == [(sent["id"], "hi b")]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
