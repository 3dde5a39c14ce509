"""Race chat (``races/chat.py``): what is refused (empty, too long, control characters, blocked
words, too fast, muted, anonymous), moderation (delete, mute that survives a restart on the same
database), reports, the history a joiner gets, and chat batched into the race's frames."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from alembic import command
from fastapi import FastAPI

from crowdlearning.config import Settings
from crowdlearning.learning.registry import ModelRegistry
from crowdlearning.ledger.db import make_engine
from crowdlearning.ledger.migrate import alembic_config
from crowdlearning.races.chat import Chat, ChatRefusal, MuteStore, blocked_pattern, clean_text
from crowdlearning.races.service import RaceService
from crowdlearning.races.spectators import CHAT_FLUSH_S, Spectators
from crowdlearning.server.errors import install_error_handlers
from crowdlearning.server.routes import races
from crowdlearning.server.security import hash_token
from crowdlearning.server.store import Store
from tests.ledger.factories import postgres_schema_engine
from tests.server.conftest import TestClient

MOD, ANN, BOB = 1, 2, 3  # user ids: a moderator, two spectators


def chat_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict = {"environment": "test", "data_dir": tmp_path, "races_chat_per_min": 100,
                    "races_chat_blocked_words": "darn, Heck", "races_moderators": str(MOD),
                    "races_chat_history": 5, "races_chat_lines_per_frame": 3}
    return Settings(**{**values, **overrides})


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def migrate_to_0010(engine: sa.Engine) -> sa.Engine:
    """The ledger's migrations up to 0010 (where ``race_chat_mutes`` comes from)."""
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0010")
    return engine


@pytest.fixture
def ledger_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A ledger database (SQLite) at migration 0010."""
    engine = migrate_to_0010(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def mutes_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A ledger database at migration 0010 on SQLite, and on PostgreSQL (a fresh schema) when
    ``CROWDLEARNING_TEST_POSTGRES_URL`` is set."""
    if request.param == "sqlite":
        engine = migrate_to_0010(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}"))
        yield engine
        engine.dispose()
        return
    with postgres_schema_engine(request.getfixturevalue("postgres_url")) as engine:
        yield migrate_to_0010(engine)


def refusal(result: object) -> str:
    assert isinstance(result, ChatRefusal), result
    return result.code


# --- what is refused ----------------------------------------------------------------------------
def test_empty_too_long_and_control_characters_are_refused() -> None:
    assert clean_text("  hello  ", 5) == "hello"  # trimmed, then counted
    assert clean_text("x" * 200, 200) == "x" * 200
    assert refusal(clean_text("x" * 201, 200)) == "too_long"
    for empty in ("", "   ", "\u3000"):
        assert refusal(clean_text(empty, 200)) == "empty"
    for bad in ("a\nb", "a\x00b", "bell\x07", "a\u202eb", "a\ud800b", "tab\tin"):
        assert refusal(clean_text(bad, 200)) == "bad_characters", repr(bad)
    assert clean_text("go 👨‍👩‍👧 go 🏁", 200) == "go 👨‍👩‍👧 go 🏁"  # joiners inside emoji are fine
    assert refusal(clean_text(None, 200)) == "bad_message"
    assert refusal(clean_text(["hi"], 200)) == "bad_message"


def test_blocked_words_match_whole_words_in_any_case() -> None:
    pattern = blocked_pattern(["darn", " Heck", "", "two words"])
    assert pattern is not None
    for text in ("darn", "DARN it", "oh, Heck!", "what the hEcK?", "(darn)", "say two WORDS"):
        assert pattern.search(text), text
    for text in ("darned", "undarn", "heckle", "checks", "two wordsmith"):
        assert not pattern.search(text), text
    assert blocked_pattern(["", " "]) is None


def test_a_refused_message_publishes_nothing(tmp_path: Path) -> None:
    chat = Chat(chat_settings(tmp_path))
    room = chat.room("r1")
    for text, code in (("oh DARN it", "blocked_word"), ("", "empty"), ("x" * 201, "too_long"),
                       ("a\nb", "bad_characters")):
        assert refusal(room.post(ANN, "ann", text)) == code
    assert room.history() == [] and not room.pending
    line = room.post(ANN, "ann", "  darned good overtake  ")
    assert isinstance(line, dict) and line["text"] == "darned good overtake"
    assert room.take() == [line]


def test_the_rate_is_limited_per_user_and_refusals_do_not_count(tmp_path: Path) -> None:
    chat = Chat(chat_settings(tmp_path, races_chat_per_min=2))
    room, other_race = chat.room("r1"), chat.room("r2")
    assert refusal(room.post(ANN, "ann", "")) == "empty"  # not counted
    assert isinstance(room.post(ANN, "ann", "one"), dict)
    assert isinstance(other_race.post(ANN, "ann", "two"), dict)  # the limit is per user
    refused = room.post(ANN, "ann", "three")
    assert refusal(refused) == "rate_limited"
    assert "try again in" in refused.message  # type: ignore[union-attr]
    assert isinstance(room.post(BOB, "bob", "bob's first"), dict)  # another user's own limit
    assert [m["text"] for m in room.history()] == ["one", "bob's first"]


def test_moderators_are_user_ids(tmp_path: Path) -> None:
    chat = Chat(chat_settings(tmp_path, races_moderators=" 4, 17,"))
    assert chat.moderators == {4, 17} and chat.is_moderator(17) and not chat.is_moderator(1)
    with pytest.raises(ValueError, match="races_moderators"):
        Chat(chat_settings(tmp_path, races_moderators="alice"))


def test_chat_off_refuses(tmp_path: Path) -> None:
    chat = Chat(chat_settings(tmp_path, races_chat_per_min=0))
    assert not chat.enabled
    assert refusal(chat.room("r1").post(ANN, "ann", "hi")) == "chat_off"


# --- moderation ---------------------------------------------------------------------------------
def test_a_mute_refuses_until_it_ends_and_survives_a_new_service_on_the_same_database(
        tmp_path: Path, mutes_engine: sa.Engine, registry_root: Path) -> None:
    ledger_engine = mutes_engine
    clock = Clock()
    settings = chat_settings(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'server.db'}")
    service = RaceService(settings, ModelRegistry(registry_root), store.engine, clock=clock,
                          mutes_engine=ledger_engine, families=lambda: ("easy",))
    room = service.chat.room("r1")
    line = room.post(ANN, "ann", "spam spam")
    assert isinstance(line, dict)
    assert refusal(room.mute_target(BOB, line["id"], 600)) == "not_moderator"
    assert refusal(room.mute_target(MOD, 999, 600)) == "unknown_message"
    assert refusal(room.mute_target(MOD, line["id"], 0)) == "bad_message"
    assert refusal(room.mute_target(MOD, line["id"], 10**9)) == "bad_message"  # over the max
    target = room.mute_target(MOD, line["id"], 600)
    assert target == (ANN, clock.now + 600)
    service.chat.mutes.mute(*target, MOD, clock.now)  # type: ignore[misc]
    refused = room.post(ANN, "ann", "let me talk")
    assert refusal(refused) == "muted" and refused.until == clock.now + 600  # type: ignore
    assert refused.to_message()["until"] == clock.now + 600  # type: ignore[union-attr]
    assert isinstance(room.post(BOB, "bob", "bob still talks"), dict)
    service.close()

    # a restart (or another game server on the same ledger): the mute is read from the database
    again = RaceService(settings, ModelRegistry(registry_root), store.engine, clock=clock,
                        mutes_engine=ledger_engine, families=lambda: ("easy",))
    assert again.chat.mutes.stale(clock.now)
    asyncio.run(again.chat.fresh_mutes())
    assert not again.chat.mutes.stale(clock.now)
    assert refusal(again.chat.room("r2").post(ANN, "ann", "still?")) == "muted"
    clock.now += 601  # the mute is over
    asyncio.run(again.chat.fresh_mutes())
    assert isinstance(again.chat.room("r2").post(ANN, "ann", "back"), dict)
    with ledger_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT user_id, moderator_id FROM race_chat_mutes")).all()
    assert [tuple(r) for r in rows] == [(ANN, MOD)]
    again.close()


def test_a_remute_replaces_the_earlier_one(mutes_engine: sa.Engine) -> None:
    ledger_engine = mutes_engine
    clock = Clock()
    store = MuteStore(ledger_engine)
    store.mute(ANN, clock.now + 3600, MOD, clock.now)
    store.mute(ANN, clock.now + 60, MOD, clock.now)  # a moderator shortens it
    fresh = MuteStore(ledger_engine)
    fresh.refresh(clock.now)
    assert fresh.until(ANN, clock.now) == pytest.approx(clock.now + 60)
    assert fresh.until(ANN, clock.now + 61) is None and fresh.until(BOB, clock.now) is None


def test_a_delete_leaves_the_history_and_is_broadcast(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    chat = Chat(chat_settings(tmp_path))
    channel = Spectators(10, 8, None, chat=chat.room("r1"))
    box = channel.join()
    assert box is not None and channel.chat is not None
    kept = channel.chat.post(BOB, "bob", "nice line")
    gone = channel.chat.post(ANN, "ann", "secret rude text")
    waiting = channel.chat.post(ANN, "ann", "not yet in a frame")
    assert isinstance(kept, dict) and isinstance(gone, dict) and isinstance(waiting, dict)
    channel.frame({"type": "frame", "tick": 1})  # carries three lines (the per-frame maximum)
    late = channel.chat.post(ANN, "ann", "waiting for a frame")
    assert isinstance(late, dict)
    assert refusal(channel.chat.remove(BOB, gone["id"])) == "not_moderator"
    assert refusal(channel.chat.remove(MOD, "1")) == "unknown_message"
    with caplog.at_level(logging.INFO, logger="crowdlearning.races.chat"):
        assert channel.chat.remove(MOD, gone["id"]) is None
        assert channel.chat.remove(MOD, late["id"]) is None  # not sent yet: never will be
    assert "secret" not in caplog.text and f"message {gone['id']}" in caplog.text
    channel.event({"type": "chat_removed", "id": gone["id"]})  # what the socket does
    assert [m["id"] for m in channel.chat.history()] == [kept["id"], waiting["id"]]
    channel.frame({"type": "frame", "tick": 2})

    got = [json.loads(t) for t in asyncio.run(box.take())]
    assert [m["type"] for m in got] == ["frame", "chat_removed", "frame"]
    assert [m["id"] for m in got[0]["chat"]] == [kept["id"], gone["id"], waiting["id"]]
    assert got[1] == {"type": "chat_removed", "id": gone["id"]}
    assert "chat" not in got[2]  # the deleted line waiting for a frame never went out


def test_a_report_counts_once_per_reporter_and_is_logged_without_the_text(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    room = Chat(chat_settings(tmp_path)).room("r1")
    line = room.post(ANN, "ann", "questionable words")
    assert isinstance(line, dict)
    with caplog.at_level(logging.WARNING, logger="crowdlearning.races.chat"):
        assert room.report(BOB, line["id"]) == 1
        assert refusal(room.report(BOB, line["id"])) == "already_reported"
        assert room.report(MOD, line["id"]) == 2
    assert room.reports(line["id"]) == 2
    assert refusal(room.report(BOB, 12345)) == "unknown_message"
    assert refusal(room.report(BOB, True)) == "unknown_message"  # not an id
    assert caplog.text.count("reported message") == 2
    assert "questionable" not in caplog.text and f"user {BOB}" in caplog.text


# --- fan-out ------------------------------------------------------------------------------------
def test_chat_rides_the_next_frame_one_field_encoded_once_for_all(tmp_path: Path) -> None:
    chat = Chat(chat_settings(tmp_path, races_chat_history=10))
    channel = Spectators(100, 8, None, chat=chat.room("r1"))
    assert channel.chat is not None
    writes: list[list[bytes]] = []
    boxes = []
    for _ in range(50):
        box = channel.join()
        assert box is not None
        got: list[bytes] = []
        box.wire = lambda data, got=got: got.append(data) or True  # a socket that takes it
        writes.append(got)
        boxes.append(box)
    for i in range(5):
        assert isinstance(channel.chat.post(100 + i, f"fan{i}", f"go car {i}"), dict)
    channel.frame({"type": "frame", "tick": 1})
    channel.frame({"type": "frame", "tick": 2})
    channel.frame({"type": "frame", "tick": 3})
    for got in writes:
        assert len(got) == 3  # three frames, no message per chat line
    first, second, third = (json.loads(b[b.index(b"{"):]) for b in writes[0])
    assert [m["text"] for m in first["chat"]] == ["go car 0", "go car 1", "go car 2"]
    assert [m["text"] for m in second["chat"]] == ["go car 3", "go car 4"]
    assert "chat" not in third
    assert first["chat"][0]["name"] == "fan0" and set(first["chat"][0]) == {"id", "name",
                                                                              "text", "at"}
    for n in range(3):  # the same bytes object for every spectator: framed once
        assert all(got[n] is writes[0][n] for got in writes)
    assert all(box.direct_frames == 3 for box in boxes)


def test_without_frames_chat_goes_out_batched_in_a_chat_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        chat = Chat(chat_settings(tmp_path))
        channel = Spectators(10, 8, None, chat=chat.room("r1"))
        box = channel.join()
        assert box is not None and channel.chat is not None
        for i, text in enumerate(("first", "second")):
            assert isinstance(channel.chat.post(100 + i, f"u{i}", text), dict)
            channel.chat_posted()
        await asyncio.sleep(CHAT_FLUSH_S + 0.1)
        got = [json.loads(t) for t in await box.take()]
        assert len(got) == 1 and got[0]["type"] == "chat"
        assert [m["text"] for m in got[0]["chat"]] == ["first", "second"]
        assert got[0]["spectators"] == 1
        assert channel.last_frame == ""  # a joiner is never given a chat message as a frame
        # while frames flow, the timer leaves the chat to the next frame
        channel.frame({"type": "frame", "tick": 1})
        await box.take()
        assert isinstance(channel.chat.post(200, "u", "during the race"), dict)
        channel.chat_posted()
        await asyncio.sleep(CHAT_FLUSH_S + 0.1)
        assert not box._items
        channel.frame({"type": "frame", "tick": 2})
        [frame] = [json.loads(t) for t in await box.take()]
        assert [m["text"] for m in frame["chat"]] == ["during the race"]

    asyncio.run(scenario())


def test_the_history_is_bounded_and_too_many_waiting_are_dropped(tmp_path: Path) -> None:
    room = Chat(chat_settings(tmp_path, races_chat_history=4,
                              races_chat_lines_per_frame=2)).room("r1")
    for i in range(7):
        assert isinstance(room.post(100 + i, "u", f"m{i}"), dict)
    assert [m["text"] for m in room.history()] == ["m3", "m4", "m5", "m6"]
    assert room.dropped == 3  # at most four wait for frames
    assert [m["text"] for m in room.take()] == ["m3", "m4"]
    assert [m["text"] for m in room.take()] == ["m5", "m6"] and room.take() == []


# --- on the race socket -------------------------------------------------------------------------
@pytest.fixture
def app(tmp_path: Path, registry_root: Path, ledger_engine: sa.Engine) -> FastAPI:
    store = Store(f"sqlite:///{tmp_path / 'server.db'}")
    ids = {}
    for name in ("mod", "ann", "bob"):
        user = store.add_user(name, "x")
        assert user is not None
        store.add_token(hash_token(f"{name}-token"), user.id, 3600)
        ids[name] = user.id
    settings = chat_settings(tmp_path, races_track="oval", races_laps=1, races_max_cars=3,
                             races_interval_s=60, races_max_lap_s=4.0, races_speed=20,
                             races_moderators=str(ids["mod"]), races_chat_per_min=3)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(races.router)
    app.state.runtime = SimpleNamespace(store=store, settings=settings)
    app.state.races = RaceService(settings, ModelRegistry(registry_root), store.engine,
                                  families=lambda: ("easy",), mutes_engine=ledger_engine)
    return app


def auth(name: str) -> dict:
    return {"Authorization": f"Bearer {name}-token"}


def next_of(ws: object, kind: str) -> dict:
    """The next message of type ``kind`` (skipping others)."""
    for _ in range(50):
        message = ws.receive_json()  # type: ignore[attr-defined]
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind}")


def test_chat_on_the_race_socket(app: FastAPI) -> None:
    service: RaceService = app.state.races
    race_id = service.timetable.upcoming(time.time(), 2)[1].race_id  # starts in a minute or more
    path = f"/ws/races/{race_id}"
    with TestClient(app) as client, client.websocket_connect(path) as anon, \
            client.websocket_connect(path, headers=auth("ann")) as ann, \
            client.websocket_connect(path, headers=auth("mod")) as mod:
        hellos = [ws.receive_json() for ws in (anon, ann, mod)]
        assert [h["chat"]["can_write"] for h in hellos] == [False, True, True]
        assert [h["chat"]["moderator"] for h in hellos] == [False, False, True]
        assert hellos[0]["chat"]["history"] == [] and hellos[0]["chat"]["max_chars"] == 200

        anon.send_json({"type": "chat", "text": "hello"})
        refused = anon.receive_json()
        assert refused["code"] == "not_signed_in" and refused["about"] == "chat"
        for text, code in (("", "empty"), ("a" * 201, "too_long"), ("x\ny", "bad_characters"),
                           ("HECK yes", "blocked_word")):
            ann.send_json({"type": "chat", "text": text})
            assert ann.receive_json()["code"] == code
        ann.send_json({"type": "chat", "text": "  " + "é" * 200 + "  "})  # 200 after trimming
        long_id = ann.receive_json()["id"]
        ann.send_json({"type": "chat", "text": "go v0!"})
        sent = ann.receive_json()
        assert sent["type"] == "chat_sent"
        # nothing races yet: everyone gets the lines in one chat message shortly
        for ws in (anon, ann, mod):
            batch = next_of(ws, "chat")
            assert [(m["name"], m["text"]) for m in batch["chat"]] == [("ann", "é" * 200),
                                                                      ("ann", "go v0!")]

        # history on join
        with client.websocket_connect(path) as late:
            history = late.receive_json()["chat"]["history"]
            assert [m["id"] for m in history] == [long_id, sent["id"]]

        # reports: once per reporter
        ann.send_json({"type": "chat_report", "id": long_id})
        assert ann.receive_json() == {"type": "chat_reported", "id": long_id}
        ann.send_json({"type": "chat_report", "id": long_id})
        assert ann.receive_json()["code"] == "already_reported"
        assert service._channels[race_id].chat.reports(long_id) == 1  # type: ignore

        # moderation: only for moderators; a delete goes to everyone
        ann.send_json({"type": "chat_delete", "id": long_id})
        assert ann.receive_json()["code"] == "not_moderator"
        mod.send_json({"type": "chat_delete", "id": long_id})
        for ws in (anon, ann, mod):
            assert next_of(ws, "chat_removed") == {"type": "chat_removed", "id": long_id}
        mod.send_json({"type": "chat_mute", "id": sent["id"], "seconds": 300})
        muted = next_of(mod, "chat_muted")
        assert muted["id"] == sent["id"] and muted["until"] > time.time() + 290
        ann.send_json({"type": "chat", "text": "am I muted?"})
        refused = ann.receive_json()
        assert refused["code"] == "muted" and refused["until"] == muted["until"]
        assert "UTC" in refused["message"]
        with client.websocket_connect(path, headers=auth("ann")) as again:  # the hello says so
            assert again.receive_json()["chat"]["muted_until"] == pytest.approx(muted["until"])
        with client.websocket_connect(path) as late:
            assert [m["id"] for m in late.receive_json()["chat"]["history"]] == [sent["id"]]

    with TestClient(app) as client, \
            client.websocket_connect(path, headers=auth("bob")) as bob:
        bob.receive_json()
        for i in range(3):
            bob.send_json({"type": "chat", "text": f"bob {i}"})
            assert bob.receive_json()["type"] == "chat_sent"
        bob.send_json({"type": "chat", "text": "one too many"})
        assert bob.receive_json()["code"] == "rate_limited"
        for _ in range(25):  # a signed-in chatter refused again and again keeps the socket
            bob.send_json({"type": "chat", "text": "let me in"})
            assert bob.receive_json()["code"] == "rate_limited"
        bob.send_json({"type": "chat_report", "id": 10**6})
        assert bob.receive_json()["code"] == "unknown_message"


def test_during_a_race_chat_rides_the_frames(app: FastAPI) -> None:
    service: RaceService = app.state.races
    service.settings = service.settings.model_copy(update={"races_speed": 1})  # ~4 s of racing
    slot = service.timetable.upcoming(time.time(), 2)[1]
    path = f"/ws/races/{slot.race_id}"
    with TestClient(app) as client, client.websocket_connect(path) as anon, \
            client.websocket_connect(path, headers=auth("ann")) as ann:
        anon.receive_json(), ann.receive_json()
        early = slot.__class__(slot.race_id, time.time(), slot.seed)  # start it now
        client.portal.start_task_soon(service.run_race, early)  # type: ignore[union-attr]
        while (m := anon.receive_json())["type"] != "frame":
            pass
        ann.send_json({"type": "chat", "text": "lights out!"})
        carried, chat_messages = [], 0
        while (m := anon.receive_json())["type"] != "result":
            if m["type"] == "frame" and "chat" in m:
                carried.append(m["chat"])
            chat_messages += m["type"] == "chat"
        assert [[c["text"] for c in lines] for lines in carried] == [["lights out!"]]
        assert chat_messages == 0  # while frames flow, no message of its own
