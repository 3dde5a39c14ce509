from __future__ import annotations

import asyncio
import json

from crowdlearning.races.spectators import Spectators
from crowdlearning.server.throttle import Throttle


def test_a_slow_spectator_skips_frames_and_never_holds_the_race() -> None:
    async def scenario() -> None:
        channel = Spectators(max_spectators=2, queue=3, reactions=None)
        slow, fast = channel.join(), channel.join()
        assert slow is not None and fast is not None
        assert channel.join() is None  # full
        for tick in range(10):
            channel.frame({"type": "frame", "tick": tick})
            if tick == 4:
                channel.event({"type": "grid"})
            if tick % 2 == 0:
                got = [json.loads(t) for t in await fast.take()]
                assert [m.get("tick") for m in got] in ([0], [1, 2], [3, 4, None], [5, 6],
                                                        [7, 8])
        got = [json.loads(t) for t in await slow.take()]
        assert got[0] == {"type": "grid"}  # events are never dropped
        assert [m["tick"] for m in got[1:]] == [7, 8, 9]  # the newest frames only
        assert slow.dropped_frames == 7 and not slow.overflowed
        assert got[-1]["spectators"] == 2
        channel.leave(slow)
        channel.close({"type": "result"})
        assert channel.closed and len(channel) == 1

    asyncio.run(scenario())


def test_reactions_are_counted_into_the_next_frame_per_user_limited() -> None:
    channel = Spectators(10, 8, Throttle(2, 60.0))
    assert channel.react(1, "🔥") is None and channel.react(1, "🔥") is None
    assert channel.react(1, "🔥") == "rate_limited"
    assert channel.react(2, "👏") is None  # another user has their own allowance
    assert channel.react(2, "free text") == "bad_message"
    box = channel.join()
    assert box is not None
    channel.frame({"type": "frame"})
    channel.frame({"type": "frame"})

    async def read() -> list[dict]:
        return [json.loads(t) for t in await box.take()]

    first, second = asyncio.run(read())
    assert first["reactions"] == {"🔥": 2, "👏": 1} and "reactions" not in second
    assert Spectators(10, 8, None).react(1, "🔥") == "reactions_off"


def test_a_frame_is_handed_out_in_batches_and_nothing_overtakes_it() -> None:
    """Batches of ``batch`` spectators per turn of the event loop; a next frame or an event
    first hands out the rest of the frame before it, so every spectator gets them in order."""
    async def scenario() -> None:
        channel = Spectators(max_spectators=10, queue=8, reactions=None, batch=2)
        boxes = [channel.join() for _ in range(5)]
        assert all(b is not None for b in boxes)

        def got() -> int:  # spectators holding a frame
            return sum(1 for b in boxes if b._items)  # type: ignore[union-attr]

        channel.frame({"type": "frame", "tick": 0})
        assert got() == 2
        await asyncio.sleep(0)
        assert got() == 4
        await asyncio.sleep(0)
        assert got() == 5
        channel.frame({"type": "frame", "tick": 1})  # two now, the rest later
        channel.frame({"type": "frame", "tick": 2})  # ... or before this one
        channel.event({"type": "grid"})
        for box in boxes:
            texts = [json.loads(t) for t in await box.take()]  # type: ignore[union-attr]
            assert [m.get("tick") for m in texts] == [0, 1, 2, None]
        await asyncio.sleep(0)  # a cancelled batch hands out nothing more
        assert got() == 0

    asyncio.run(scenario())


def test_without_a_loop_a_frame_goes_to_everyone_at_once() -> None:
    channel = Spectators(max_spectators=10, queue=8, reactions=None, batch=1)
    boxes = [channel.join() for _ in range(3)]
    channel.frame({"type": "frame", "tick": 0})
    assert all(b._items for b in boxes)  # type: ignore[union-attr]
