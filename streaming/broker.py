"""Pub/sub between sidecar replicas, chosen by URL like encode/broadcaster.

`memory://` (the default) hands a message straight to this process's rooms; `redis://` publishes
it on one Redis channel that every replica subscribes to, so a client on replica B gets an event
posted to replica A. A message is `<room>\\n<json>`: the JSON is encoded once, by the publisher,
and the same text goes to every client of the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

log = logging.getLogger(__name__)

CHANNEL = "cc:rooms"
Deliver = Callable[[str, str], None]  # (room, text)


def pack(room: str, text: str) -> str:
    return f"{room}\n{text}"


def unpack(message: str) -> tuple[str, str]:
    room, _, text = message.partition("\n")
    return room, text


class Broker:
    """Base: `connect(deliver)`, `publish(room, text)`, `disconnect()`."""

    url = "memory://"

    async def connect(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, room: str, text: str) -> None:
        self._deliver(room, text)

    async def disconnect(self) -> None:
        pass


class MemoryBroker(Broker):
    """One process: publishing is delivering."""


class RedisBroker(Broker):
    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self.url = url
        self.channel = channel
        self._reader: asyncio.Task | None = None

    async def connect(self, deliver: Deliver) -> None:
        import redis.asyncio as redis  # optional: only a redis:// broker needs it

        self._deliver = deliver
        self._redis = redis.Redis.from_url(self.url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel)
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted: resubscribe and carry on
                log.warning("redis broker: %s; resubscribing in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                with contextlib.suppress(Exception):  # retried on the next turn
                    await self._pubsub.subscribe(self.channel)
                continue
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            room, text = unpack(data.decode() if isinstance(data, bytes) else data)
            try:
                self._deliver(room, text)
            except Exception:  # one bad message must not stop the reader
                log.exception("redis broker: delivering to %s failed", room)

    async def publish(self, room: str, text: str) -> None:
        await self._redis.publish(self.channel, pack(room, text))

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await self._reader
        await self._pubsub.aclose()
        await self._redis.aclose()


def broker_for(url: str | None) -> Broker:
    scheme = urlparse(url or "memory://").scheme
    if scheme in ("memory", ""):
        return MemoryBroker()
    if scheme in ("redis", "rediss", "unix"):
        # `?channel=name` keeps deployments (or test runs) sharing one Redis apart.
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        channel = query.pop("channel", [CHANNEL])[0]
        rest = urlencode({k: v[0] for k, v in query.items()})
        return RedisBroker(urlunparse(parsed._replace(query=rest)), channel)
    raise ValueError(f"no broker for {scheme}:// (use memory:// or redis://)")
