"""`rooms.Hub` in-process: clients with the same rooms share one log and one encoded batch frame,
a change of rooms loses nothing, and a client further behind than its queue has the oldest
dropped with a notice while the others get everything."""

from __future__ import annotations

import asyncio

import orjson

from streaming.rooms import Hub, message


def test_shared_frames_regroup_and_drops() -> None:
    async def scenario() -> None:
        hub = Hub(max_queue=5, slow_after_s=60)
        sent: dict[str, list] = {"a": [], "b": [], "c": [], "slow": []}
        gate = asyncio.Event()

        def sender(name: str):
            async def send(frames: list) -> None:
                if name == "slow":
                    await gate.wait()
                sent[name].extend(frames)
            return send

        async def close(code: int, reason: str) -> None:
            pass

        clients = {name: hub.client(sender(name), close, batch=True) for name in sent}
        for client in clients.values():
            client.task = asyncio.create_task(client.run())
            hub.subscribe(client, ["events:all"], lambda room: True)
        hub.subscribe(clients["c"], ["alerts:all"], lambda room: True)
        assert len(hub.groups) == 2 and hub.count("events:all") == 4

        for i in range(3):
            hub.deliver("events:all", message("e", "events:all", {"i": i}))
        await asyncio.sleep(0.05)
        # a and b read the same log from the same place: the very same frame object
        assert sent["a"] and sent["a"][0] is sent["b"][0]
        assert [m["payload"]["i"] for f in sent["a"] for m in orjson.loads(f)] == [0, 1, 2]
        assert [m["payload"]["i"] for f in sent["c"] for m in orjson.loads(f)] == [0, 1, 2]

        # the slow one is stuck in its send; 20 more overrun its 5
        for i in range(3, 23):
            hub.deliver("events:all", message("e", "events:all", {"i": i}))
            await asyncio.sleep(0.01)
        hub.unsubscribe(clients["c"], ["alerts:all"])  # a change of rooms mid-stream loses nothing
        hub.deliver("events:all", message("e", "events:all", {"i": 23}))
        await asyncio.sleep(0.05)
        for name in ("a", "b", "c"):
            got = [m["payload"]["i"] for f in sent[name] for m in orjson.loads(f)]
            assert got == list(range(24)), name
        gate.set()
        await asyncio.sleep(0.05)
        slow = [m for f in sent["slow"] for m in orjson.loads(f)]
        events = [m["payload"]["i"] for m in slow if m["type"] == "e"]
        notices = [m for m in slow if m["type"] == "notice"]
        assert events[:3] == [0, 1, 2] and events[-1] == 23 and len(events) < 24
        assert events == sorted(events)
        assert sum(n["payload"]["dropped"] for n in notices) == 24 - len(events)
        for client in clients.values():
            hub.remove(client)
            client.task.cancel()
        assert not hub.groups and not hub.rooms

    asyncio.run(scenario())
