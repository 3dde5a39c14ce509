"""Spectators' cost to the game server: a snapshot per spectator against one shared snapshot.

A game loop with ``--players`` live runs (the snapshot lists at most 64) is stepped; then, for
``W`` spectators at 10 Hz, the CPU time the server spends per second of watching is measured
both ways in the same run:

- per spectator (how ``/ws/watch`` worked before ``server/watch_feed.py``): every socket builds
  and encodes its own snapshot every watch tick: ``W`` snapshots per tick;
- shared (``WatchFeed``): one snapshot per tick, encoded once, the same text to every socket.

Sending the text is the same in both and not counted. The game server's tick budget is 50 ms per
20 Hz tick on ONE core (the event loop), i.e. 1,000 ms per second in all.

Run: ``.venv/bin/python bench/bench_watch.py [--players 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np

from crowdlearning.evaluation.curriculum import play_tracks
from crowdlearning.learning.bootstrap import train_initial_model
from crowdlearning.policy.network import Policy
from crowdlearning.server.game_loop import GameLoop, Outbox, RunSpec
from crowdlearning.server.watch_feed import WatchFeed

WATCH_HZ = 10
MAX_RUNS = 64


def _per_snapshot_ms(game: GameLoop, repeats: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        json.dumps(game.snapshot(MAX_RUNS), separators=(",", ":"))
    return (time.perf_counter() - start) / repeats * 1000


def _feed_refresh_ms(game: GameLoop, repeats: int = 200) -> float:
    feed = WatchFeed(game, hz=WATCH_HZ, max_runs=MAX_RUNS, server_id="bench")

    async def refresh_many() -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            await feed.refresh()
        return (time.perf_counter() - start) / repeats * 1000

    return asyncio.run(refresh_many())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=300)
    args = parser.parse_args()
    net, _ = train_initial_model(0)
    game = GameLoop(Policy(net), 0, play_tracks(4), capacity=args.players, run_ticks=2400)
    for i in range(args.players):
        game.join(RunSpec(f"run-{i}", f"p{i}", f"player{i}", game.seeds[i % len(game.seeds)]),
                  Outbox(8))
    for _ in range(20):
        game.step()
    one = float(np.median([_per_snapshot_ms(game) for _ in range(3)]))
    shared = float(np.median([_feed_refresh_ms(game) for _ in range(3)]))
    print(f"{args.players} players; one snapshot of {MAX_RUNS} runs: build+encode {one:.3f} ms, "
          f"shared feed refresh {shared:.3f} ms")
    print(f"\n{'spectators':>10} {'per spectator ms/s':>19} {'shared ms/s':>12} {'ratio':>7}")
    for watchers in (1, 10, 100, 256, 1000):
        old = watchers * WATCH_HZ * one
        new = WATCH_HZ * shared
        print(f"{watchers:>10} {old:>19.1f} {new:>12.1f} {old / new:>6.0f}x")
    print("\n(ms of the event loop's CPU per second; the loop has 1,000 ms per second for "
          "everything)")


if __name__ == "__main__":
    main()
