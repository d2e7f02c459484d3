"""`rooms.Hub` in-process: clients with the same rooms share one log and one encoded batch frame,
a change of rooms loses nothing, and a client further behind than its queue has the oldest
dropped with a notice while the others get everything (both batching modes). Adaptive batching:
in a quiet room each event goes out at once as a frame of its own; behind a client busy with a
write, what arrives meanwhile waits and goes as one frame, in order, nothing lost."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from streaming.rooms import ADAPTIVE, FIXED, Hub, message


@pytest.mark.parametrize("mode", [ADAPTIVE, FIXED])
def test_shared_frames_regroup_and_drops(mode: str) -> None:
    async def scenario() -> None:
        hub = Hub(max_queue=5, slow_after_s=60, mode=mode)
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


def numbers(frame: str) -> list[int]:
    return [m["payload"]["i"] for m in orjson.loads(frame)]


async def close(code: int, reason: str) -> None:
    pass


async def until(condition) -> None:
    """Wait for what the scenario waits for (a bound, not a timed assertion: a failure ends here)."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never happened")


def test_adaptive_sends_a_quiet_rooms_event_at_once_and_coalesces_behind_a_busy_client() -> None:
    async def scenario() -> None:
        hub = Hub(mode=ADAPTIVE)
        frames: dict[str, list[list[int]]] = {"reader": [], "busy": []}
        gate = asyncio.Event()  # the busy client's socket: full until the gate opens

        def write_now(name: str):
            def write(items: list) -> bool:
                if name == "busy" and not gate.is_set():
                    return False
                frames[name].extend(numbers(f) for f in items)
                return True
            return write

        def send(name: str):
            async def send(items: list) -> None:
                if name == "busy":
                    await gate.wait()
                frames[name].extend(numbers(f) for f in items)
            return send

        clients = [hub.client(send(name), close, batch=True, write_now=write_now(name)) for name in frames]
        for client in clients:
            client.task = asyncio.create_task(client.run())
            hub.subscribe(client, ["events:all"], lambda room: True)
        await asyncio.sleep(0)

        hub.deliver("events:all", message("e", "events:all", {"i": 0}))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert frames["reader"] == [[0]]  # a quiet room: the event went out alone, in the same loop turn
        for i in range(1, 10):  # one event per loop iteration, as webhooks a millisecond apart arrive
            hub.deliver("events:all", message("e", "events:all", {"i": i}))
            await asyncio.sleep(0)
        await until(lambda: sum(map(len, frames["reader"])) == 10)
        assert [n for f in frames["reader"] for n in f] == list(range(10))
        # The busy client's sender still holds the first event (its write has not completed): the rest waited.
        assert frames["busy"] == []
        gate.set()
        await until(lambda: len(frames["busy"]) == 2)
        assert frames["busy"] == [[0], list(range(1, 10))]
        for client in clients:
            hub.remove(client)
            client.task.cancel()

    asyncio.run(scenario())


def test_adaptive_coalesces_what_arrives_while_a_rooms_turns_are_expensive() -> None:
    # A turn whose writes take 20 ms of CPU (hundreds of clients): at a busy share of a tenth its
    # room pauses nine times that (at most the fixed window), and what arrives meanwhile goes out
    # as one frame, in order.
    async def scenario() -> None:
        hub = Hub(mode=ADAPTIVE, busy_share=0.1)
        frames: list[list[int]] = []

        def write_now(items: list) -> bool:
            started = time.thread_time()
            while time.thread_time() - started < 0.02:
                pass
            frames.extend(numbers(f) for f in items)
            return True

        async def send(items: list) -> None:
            frames.extend(numbers(f) for f in items)

        client = hub.client(send, close, batch=True, write_now=write_now)
        client.task = asyncio.create_task(client.run())
        hub.subscribe(client, ["events:all"], lambda room: True)
        for i in range(5):
            hub.deliver("events:all", message("e", "events:all", {"i": i}))
            await asyncio.sleep(0)
        await until(lambda: sum(map(len, frames)) == 5)
        assert frames == [[0], [1, 2, 3, 4]]
        hub.remove(client)
        client.task.cancel()

    asyncio.run(scenario())
