"""The Redis broker right after Redis comes back: a message goes out only once the readers that
listened before (the publisher's own among them) listen again, even from a replica that had
nothing to publish while Redis was down (it used to publish to no one, and its clients never got
the event: `test_workers_on_one_port_over_a_restarted_redis_and_a_killed_worker` under load)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid

import pytest


async def _until(check, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


@pytest.fixture
def redis_server(tmp_path, redis_server_binary):
    from scripts.chaos.replicas_redis import RedisServer

    server = RedisServer(tmp_path).start()
    yield server
    server.stop(signal.SIGKILL)


def test_a_message_published_as_redis_comes_back_reaches_every_replica(redis_server):
    """Redis restarted; replica X lands a webhook as it comes back, as `Sidecar.accept` does (a
    claim, which finds Redis gone, then the message) before any reader, X's own included, has
    subscribed again."""
    from streaming.broker import RedisBroker

    channel = f"cc-test-{uuid.uuid4().hex[:8]}"

    async def scenario() -> dict[str, list[str]]:
        got: dict[str, list[str]] = {"x": [], "y": []}
        x, y = RedisBroker(redis_server.url, channel), RedisBroker(redis_server.url, channel)
        await x.connect(lambda room, text: got["x"].append(text))
        await y.connect(lambda room, text: got["y"].append(text))
        try:
            await x.publish("events:all", "before")
            assert await _until(lambda: got == {"x": ["before"], "y": ["before"]})
            await asyncio.to_thread(redis_server.stop, signal.SIGKILL)
            await asyncio.to_thread(redis_server.start)
            assert await x.claim(("delivery-1",), "x", 5000) is None  # on the connection Redis closed
            await x.publish("events:all", "after")
            await _until(lambda: "after" in got["x"] and "after" in got["y"])
            return got
        finally:
            await x.disconnect()
            await y.disconnect()

    assert asyncio.run(scenario()) == {"x": ["before", "after"], "y": ["before", "after"]}


def test_a_message_waits_for_a_replica_still_resubscribing(redis_server):
    """X's reader is back after the restart, Y's only seconds later (a loaded host): X's message,
    published between the two, reaches Y too, once Y listens again."""
    import redis.asyncio as redis

    from streaming.broker import RESUBSCRIBE_WAIT_S, RedisBroker

    channel = f"cc-test-{uuid.uuid4().hex[:8]}"

    async def listen(pubsub, seconds: float) -> list[str]:
        texts, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                texts.append(message["data"].decode().split("\n", 1)[1])
        return texts

    async def scenario() -> list[str]:
        got: list[str] = []
        x = RedisBroker(redis_server.url, channel)
        await x.connect(lambda room, text: got.append(text))
        y = redis.Redis.from_url(redis_server.url).pubsub()  # replica Y's reader, resubscribed by hand
        await y.subscribe(channel)
        probe = None
        try:
            await x.publish("events:all", "before")
            received = await listen(y, 1.5)  # and X's idle watcher counts both readers
            assert got == received == ["before"]
            await asyncio.to_thread(redis_server.stop, signal.SIGKILL)
            await y.aclose()
            await asyncio.to_thread(redis_server.start)
            back = time.monotonic()
            probe = redis.Redis.from_url(redis_server.url)
            while (await probe.pubsub_numsub(channel))[0][1] == 0:  # X's reader, the only one
                assert time.monotonic() - back < RESUBSCRIBE_WAIT_S, "X's reader did not subscribe again"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.2)  # X's idle watcher sees one reader: Y must not be taken for gone
            await x.publish("events:all", "after")
            await asyncio.sleep(0.3)
            y = redis.Redis.from_url(redis_server.url).pubsub()
            await y.subscribe(channel)
            assert time.monotonic() - back < RESUBSCRIBE_WAIT_S, "Y came back too late to prove anything"
            received += await listen(y, 2.0)
            assert "after" in got
            return received
        finally:
            await y.aclose()
            if probe is not None:
                await probe.aclose()
            await x.disconnect()

    assert asyncio.run(scenario()) == ["before", "after"]


def test_a_replica_that_shuts_down_does_not_hold_the_others_messages(redis_server):
    """A replica stopping (a deploy) says so once it stopped listening: the others' next messages
    go out at once, not after RESUBSCRIBE_WAIT_S of waiting for it to come back."""
    from streaming.broker import RESUBSCRIBE_WAIT_S, RedisBroker

    channel = f"cc-test-{uuid.uuid4().hex[:8]}"

    async def scenario() -> float:
        got: list[str] = []
        x, y = RedisBroker(redis_server.url, channel), RedisBroker(redis_server.url, channel)
        await x.connect(lambda room, text: got.append(text))
        await y.connect(lambda room, text: None)
        try:
            await x.publish("events:all", "before")  # reaches both: X now expects two listeners
            assert await _until(lambda: got == ["before"])
            await y.disconnect()
            await asyncio.sleep(0.3)  # Y's word reaches X
            sent = time.monotonic()
            await x.publish("events:all", "after")
            assert await _until(lambda: "after" in got, RESUBSCRIBE_WAIT_S + 2)
            return time.monotonic() - sent
        finally:
            await x.disconnect()

    assert asyncio.run(scenario()) < RESUBSCRIBE_WAIT_S / 2, "the message waited for the replica that left"


def test_a_leader_that_shuts_down_hands_the_live_state_on_at_once(redis_server):
    """Two replicas' lease tasks: the leader's stopped (a deploy), the other leads at its next turn
    (a second), not once the lease lapses (3 s)."""
    from streaming.broker import RedisBroker
    from streaming.state.shared import LEADER, LEASE_MS, Sharing, lead

    channel = f"cc-test-{uuid.uuid4().hex[:8]}"

    async def scenario() -> float:
        brokers = [RedisBroker(redis_server.url, channel) for _ in range(2)]
        sharings = [Sharing(name, lambda text: None, lambda: None) for name in ("a", "b")]
        for broker in brokers:
            await broker.connect(lambda room, text: None)
        tasks = [asyncio.create_task(lead(b, s, every_s=0.2)) for b, s in zip(brokers, sharings, strict=True)]
        try:
            assert await _until(lambda: {s.leader for s in sharings} in ({"a"}, {"b"}))
            leader = next(i for i, s in enumerate(sharings) if s.role == LEADER)
            other = sharings[1 - leader]
            tasks[leader].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tasks[leader]
            stopped = time.monotonic()
            assert await _until(lambda: other.role == LEADER, LEASE_MS / 1000 + 2)
            return time.monotonic() - stopped
        finally:
            for task in tasks:
                task.cancel()
            for broker in brokers:
                await broker.disconnect()

    assert asyncio.run(scenario()) < LEASE_MS / 1000 / 2, "the follower waited for the lease to lapse"
