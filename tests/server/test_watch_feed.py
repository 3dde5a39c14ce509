"""Spectator snapshots: built once per watch tick for everyone; merged across game servers."""

from __future__ import annotations

import asyncio
import json
import uuid

from crowdlearning.server.watch_feed import WatchFeed


class StubGame:
    """A game loop's ``snapshot``, counting its calls."""

    def __init__(self, runs: list[str], players: int) -> None:
        self.runs, self.players, self.calls = runs, players, 0

    def snapshot(self, max_runs: int) -> dict:
        self.calls += 1
        return {"type": "watch", "tick": self.calls, "players": self.players,
                "runs": [{"run_id": r} for r in self.runs[:max_runs]],
                "champion": {"run_id": "champion"}}


def test_every_spectator_gets_the_same_snapshot_built_once() -> None:
    game = StubGame(["a", "b"], 2)
    feed = WatchFeed(game, hz=10, max_runs=10, server_id="here")  # type: ignore[arg-type]

    async def watch() -> list[tuple[int, str]]:
        spectators = [asyncio.ensure_future(feed.next(0)) for _ in range(50)]
        await asyncio.sleep(0)
        await feed.refresh()
        return await asyncio.gather(*spectators)

    seen = asyncio.run(watch())
    assert game.calls == 1 and len({text for _, text in seen}) == 1
    snap = json.loads(seen[0][1])
    assert [r["server"] for r in snap["runs"]] == ["here", "here"]


def test_two_servers_see_each_others_runs_until_one_goes_quiet(redis_url: str) -> None:
    prefix = f"crowdlearning-test:{uuid.uuid4().hex}"
    east = WatchFeed(StubGame(["e1", "e2"], 2), hz=10, max_runs=3,  # type: ignore[arg-type]
                     redis_url=redis_url, server_id="east", prefix=prefix)
    west = WatchFeed(StubGame(["w1"], 1), hz=10, max_runs=3,  # type: ignore[arg-type]
                     redis_url=redis_url, server_id="west", prefix=prefix)

    async def scenario() -> tuple[dict, dict, dict]:
        await east.refresh()
        await west.refresh()
        await east.refresh()
        both_east, both_west = east.snapshot, west.snapshot
        await asyncio.sleep(3.3)  # west stops publishing: its runs expire
        await east.refresh()
        alone = east.snapshot
        for feed in (east, west):
            await feed._redis.aclose()
        return both_east, both_west, alone

    both_east, both_west, alone = asyncio.run(scenario())
    assert both_east["players"] == 3 and both_east["servers"] == 2
    assert {(r["run_id"], r["server"]) for r in both_east["runs"]} == {
        ("e1", "east"), ("e2", "east"), ("w1", "west")}
    assert {r["run_id"] for r in both_west["runs"]} == {"w1", "e1", "e2"}
    assert alone["players"] == 2 and alone["servers"] == 1
    assert [r["run_id"] for r in alone["runs"]] == ["e1", "e2"]


def test_the_merged_list_is_bounded(redis_url: str) -> None:
    prefix = f"crowdlearning-test:{uuid.uuid4().hex}"
    feeds = [WatchFeed(StubGame([f"s{i}-{k}" for k in range(5)], 5), hz=10,  # type: ignore[arg-type]
                       max_runs=4, redis_url=redis_url, server_id=f"s{i}", prefix=prefix)
             for i in range(3)]

    async def scenario() -> dict:
        for feed in feeds:
            await feed.refresh()
        await feeds[0].refresh()
        snap = feeds[0].snapshot
        for feed in feeds:
            await feed._redis.aclose()
        return snap

    snap = asyncio.run(scenario())
    assert len(snap["runs"]) == 4 and snap["players"] == 15


