"""Pub/sub between sidecar replicas, chosen by URL like encode/broadcaster.

`memory://` (the default) hands a message straight to this process's rooms; `redis://` publishes
it on one Redis channel that every replica subscribes to, so a client on replica B gets an event
posted to replica A. While Redis is unreachable (restarted, failed over) a replica keeps what it
could not publish, in order, and sends it once Redis and the replicas subscribed before are back:
an event acknowledged during the outage still reaches every replica's rooms and REST reads. A
message is `<room>\n<json>`: the JSON is encoded once, by the publisher, and the same text goes to
every client of the room.

Pub/sub reaches only who is subscribed at that instant, so a message goes out only while as many
replicas listen as the last one reached, this replica's own reader among them: Redis checks it in
the same step as the PUBLISH (`_PUBLISH`). After a restart a replica reaches Redis again before
the readers (its own too) have subscribed again; one that had nothing to publish while Redis was
down used to publish its next message to no one, and its clients never got it. A message that
would reach fewer is kept as if Redis had not answered; a replica away longer than
RESUBSCRIBE_WAIT_S is taken as gone.

Everything a replica sends to Redis in one turn of its event loop (delivery claims, landed
markers, room messages) goes as one pipeline, its messages as one PUBLISH of their lines, sent as
soon as the previous pipeline is answered: under load a round trip and a pub/sub message carry
many deliveries. Every worker receives every worker's messages, so this is what lets workers on
several cores add up instead of each spending its time on Redis' per-command overhead.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

log = logging.getLogger(__name__)

CHANNEL = "cc:rooms"
# Messages kept while Redis is unreachable: minutes of a busy replica's events; past it the
# oldest go (the landing log and the next build still have them).
OUTBOX_MAX = 50_000
# How long to wait for the replicas that were subscribed to subscribe again (after an outage, or a
# replica's reader reconnecting) before sending what was kept: a replica that died never will.
RESUBSCRIBE_WAIT_S = 5.0
# A replica that shuts down says so on the channel once it stopped listening: the others count the
# listeners again at once instead of holding their messages RESUBSCRIBE_WAIT_S for it.
LEAVING = "_leaving"
RECONNECT_MAX_S = 1.0
# How often an idle replica asks Redis how many replicas listen on the channel.
SUBSCRIBERS_EVERY_S = 1.0
# A delivery's "landed" marker outlives GitHub's 3-day redelivery window.
LANDED_TTL_S = 7 * 24 * 3600
Deliver = Callable[[str, str], None]  # (room, text)
LANDED = "1"  # a delivery key's marker once landed; before that it may hold a replica's claim
# A delivery's state, or its claim for ARGV[1] (expiring after ARGV[2] ms) if it has none: KEYS[1]
# is its id, the rest its aliases (only ever marked landed).
_CLAIM = """
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return '1' end
end
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# PUBLISH ARGV[4] on ARGV[1] if its subscribers are at least ARGV[3] and this replica's reader is
# one of them (it alone listens on ARGV[2]); else -1, nothing sent.
_PUBLISH = """
local n = redis.call('PUBSUB', 'NUMSUB', ARGV[1], ARGV[2])
if n[4] == 0 or n[2] < tonumber(ARGV[3]) then return -1 end
return redis.call('PUBLISH', ARGV[1], ARGV[4])
"""
# A lease: kept (its expiry renewed) by its holder ARGV[1], taken once expired; returns the holder.
_LEASE = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""
# Compare and set (ARGV[2] empty: delete).
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


def pack(room: str, text: str) -> str:
    # A raw newline in JSON is whitespace between tokens (never inside a string): a space instead,
    # so that lines pair rooms and messages.
    return f"{room}\n{text.replace(chr(10), ' ') if chr(10) in text else text}"


def unpack(frame: str) -> list[tuple[str, str]]:
    """The (room, text) messages of a PUBLISH: lines in pairs."""
    lines = frame.split("\n")
    return list(zip(lines[0::2], lines[1::2], strict=False))


class _Done:
    """Awaitable at once, any number of times: what a publish in this process returns."""

    def __await__(self) -> Generator[None, None, None]:
        return iter(())


DONE = _Done()


class Broker:
    """Base: `connect(deliver)`, `publish(room, text)`, `disconnect()`, and the delivery keys
    landed by any replica (`landed`, `mark_landed`): one process needs none beyond its own index."""

    url = "memory://"

    async def connect(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def publish(self, room: str, text: str) -> Awaitable[None]:
        """Send a room's message; awaitable until it reached the other replicas' way (Redis)."""
        self._deliver(room, text)
        return DONE

    async def landed(self, keys: tuple[str, ...]) -> bool:
        return False

    async def mark_landed(self, keys: tuple[str, ...]) -> None:
        pass

    async def claim(self, keys: tuple[str, ...], owner: str, ttl_ms: int) -> str | None:
        """Claim a delivery for `owner` while it lands it (`streaming.claims`): None once claimed
        (or when nothing is shared), `LANDED` when a replica landed one of `keys`, else the claim
        another owner holds."""
        return None

    async def holder(self, key: str) -> str | None:
        """What `key` holds now: `LANDED`, a claim, or None."""
        return None

    async def swap(self, key: str, old: str, new: str | None, ttl_ms: int = 0) -> bool:
        """`key` from `old` to `new` (None: deleted) if it still holds `old`."""
        return True

    listeners = 1  # the replicas a message reaches, this one included

    async def lease(self, key: str, owner: str, ttl_ms: int) -> str:
        """Who holds the lease `key`: `owner` if it held it or it had expired (renewed for
        `ttl_ms`), else its holder. Raises if that cannot be known (Redis away)."""
        return owner

    async def disconnect(self) -> None:
        pass


class MemoryBroker(Broker):
    """One process: publishing is delivering."""


class RedisBroker(Broker):
    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self.url = url
        self.channel = channel
        # Only this replica's reader subscribes to it: whether that reader listens, for `_PUBLISH`.
        self._own = f"{channel}:reader:{uuid.uuid4().hex[:12]}"
        self._reader: asyncio.Task | None = None
        self._outbox: deque[str] = deque()
        self._flusher: asyncio.Task | None = None
        # Subscribers Redis last counted on the channel (by a publish, or the watcher while idle): a
        # message waits for as many to listen before it goes (`_PUBLISH`, `_audience`).
        self._receivers = 0
        self._watcher: asyncio.Task | None = None
        self.dropped = 0
        # This turn's claims and markers (in order), and messages, for the next pipeline.
        self._ops: list[tuple[str, tuple, asyncio.Future]] = []
        self._lines: list[str] = []
        self._lines_sent: list[asyncio.Future] = []
        self._sender: asyncio.Task | None = None

    async def connect(self, deliver: Deliver) -> None:
        import redis.asyncio as redis  # optional: only a redis:// broker needs it

        self._deliver = deliver
        self._redis = redis.Redis.from_url(self.url)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(self.channel, self._own)
        for _attempt in range(100):  # the first message need not wait in the outbox for the SUBSCRIBE above
            [(_, own)] = await self._redis.pubsub_numsub(self._own)
            if own:
                break
            await asyncio.sleep(0.01)
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")
        self._watcher = asyncio.create_task(self._watch_subscribers(), name="redis-broker-subscribers")

    async def _watch_subscribers(self) -> None:
        """Keep the subscriber count fresh while nothing is published: a replica whose first message
        comes after an outage must still wait for the replicas that were listening before it. A
        count that fell is taken only once it stayed down RESUBSCRIBE_WAIT_S (a replica gone, not
        one resubscribing)."""
        fewer_since: float | None = None
        while True:
            await asyncio.sleep(SUBSCRIBERS_EVERY_S)
            if self._outbox:
                fewer_since = None
                continue
            with contextlib.suppress(Exception):  # Redis down: the count from before stands
                [(_, subscribed)] = await self._redis.pubsub_numsub(self.channel)
                now = time.monotonic()
                if subscribed >= self._receivers:
                    self._receivers, fewer_since = subscribed, None
                elif fewer_since is None:
                    fewer_since = now
                elif now - fewer_since >= RESUBSCRIBE_WAIT_S:
                    self._receivers, fewer_since = subscribed, None

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
                backoff = min(backoff * 2, RECONNECT_MAX_S)
                with contextlib.suppress(Exception):  # retried on the next turn
                    await self._pubsub.subscribe(self.channel, self._own)
                continue
            if message is None or message.get("type") != "message":
                continue
            data = message["data"]
            for room, text in unpack(data.decode() if isinstance(data, bytes) else data):
                if room == LEAVING:
                    asyncio.get_running_loop().create_task(self._recount())
                    continue
                try:
                    self._deliver(room, text)
                except Exception:  # one bad message must not stop the reader
                    log.exception("redis broker: delivering to %s failed", room)

    # --- one pipeline per turn ------------------------------------------------------------------------

    def publish(self, room: str, text: str) -> Awaitable[None]:
        packed = pack(room, text)
        if self._outbox:  # Redis away: behind what is kept, in order
            self._keep(packed)
            return DONE
        self._lines.append(packed)
        sent = asyncio.get_running_loop().create_future()
        self._lines_sent.append(sent)
        self._wake()
        return sent

    def mark_landed(self, keys: tuple[str, ...]) -> Awaitable[None]:
        return self._op("mark", keys)

    async def claim(self, keys: tuple[str, ...], owner: str, ttl_ms: int) -> str | None:
        return await self._op("claim", (keys, owner, ttl_ms))

    def _op(self, kind: str, args: tuple) -> asyncio.Future:
        done = asyncio.get_running_loop().create_future()
        self._ops.append((kind, args, done))
        self._wake()
        return done

    def _wake(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_turns(), name="redis-broker-sender")

    async def _send_turns(self) -> None:
        while self._ops or self._lines:
            ops, self._ops = self._ops, []
            lines, self._lines = self._lines, []
            sent, self._lines_sent = self._lines_sent, []
            try:
                await self._send(ops, "\n".join(lines) if lines else None)
            finally:
                for future in (*sent, *(done for _, _, done in ops)):
                    if not future.done():  # an error left it unanswered: go on as if unshared
                        future.set_result(None)

    async def _send(self, ops: list[tuple[str, tuple, asyncio.Future]], frame: str | None) -> None:
        """Claims and markers in order, then the turn's messages (after the markers: a delivery's
        redelivery to another replica is a duplicate there before any client sees its events)."""
        if frame is not None and self._outbox:  # Redis went away since: keep the order
            self._keep(frame)
            frame = None
        results: list = []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for kind, args, _ in ops:
                    if kind == "claim":
                        keys, owner, ttl_ms = args
                        pipe.eval(_CLAIM, len(keys), *(self._marker(k) for k in keys), owner, ttl_ms)
                    else:
                        for key in args:
                            pipe.set(self._marker(key), LANDED, ex=LANDED_TTL_S)
                if frame is not None:
                    pipe.eval(_PUBLISH, 0, self.channel, self._own, self._receivers, frame)
                results = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("redis broker: %d claims and markers not shared (%s): each replica goes on with its own "
                        "index", len(ops), exc)
            if frame is not None:
                log.warning("redis broker: publish failed (%s); keeping messages until Redis is back", exc)
                self._keep(frame)
            return
        at = 0
        for kind, args, done in ops:
            if kind == "claim":
                held = results[at]
                at += 1
                if isinstance(held, Exception):
                    log.warning("redis broker: cannot claim %s (%s); landing it on this replica's word", args[0][0],
                                held)
                    held = None
                if not done.done():
                    done.set_result(held.decode() if isinstance(held, bytes) else held)
            else:
                at += len(args)
        if frame is not None:
            if isinstance(results[-1], Exception) or results[-1] < 0:  # not sent, or not to everyone
                self._keep(frame)
            else:
                self._receivers = results[-1]

    # --- Redis away -----------------------------------------------------------------------------------

    def _keep(self, packed: str) -> None:
        if len(self._outbox) >= OUTBOX_MAX:
            self._outbox.popleft()
            self.dropped += 1
        self._outbox.append(packed)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="redis-broker-outbox")

    async def _flush(self) -> None:
        """Send what was kept, in order, once Redis answers again and its listeners are back."""
        backoff = 0.1
        while self._outbox:
            try:
                audience = await self._audience()
                while self._outbox:
                    reached = await self._redis.eval(_PUBLISH, 0, self.channel, self._own, audience, self._outbox[0])
                    if reached < 0:  # a listener went away again: wait for it again
                        break
                    self._receivers = audience = reached
                    self._outbox.popleft()
            except asyncio.CancelledError:
                raise
            except Exception:  # still down: try again shortly
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)
        if self.dropped:
            log.warning("redis broker: %d messages dropped while Redis was unreachable", self.dropped)
            self.dropped = 0

    async def _audience(self) -> int:
        """How many the next kept message must reach: this replica's own reader (waited for, however
        long: it resubscribes within a second of Redis answering) and as many subscribers as the
        last message reached, waited for up to RESUBSCRIBE_WAIT_S (then those missing are gone)."""
        deadline = time.monotonic() + RESUBSCRIBE_WAIT_S
        while True:
            [(_, subscribed), (_, own)] = await self._redis.pubsub_numsub(self.channel, self._own)
            if own and (subscribed >= self._receivers or time.monotonic() >= deadline):
                return min(subscribed, self._receivers)
            await asyncio.sleep(0.05)

    # Replicas share their webhook dedupe through one key per delivery key: a replica's claim while
    # it lands the delivery (`streaming.claims`), then the landed marker, set once the delivery is
    # on disk and before it is published: a redelivery that fails over to another replica after the
    # first one landed (and maybe published) it is a duplicate there too. Best effort: with Redis
    # unreachable each replica still dedupes what it landed itself.

    def _marker(self, key: str) -> str:
        return f"{self.channel}:landed:{key}"

    async def landed(self, keys: tuple[str, ...]) -> bool:
        try:
            return bool(await self._redis.exists(*(self._marker(k) for k in keys)))
        except Exception as exc:
            log.warning("redis broker: cannot read landed markers (%s); deduping locally", exc)
            return False

    async def holder(self, key: str) -> str | None:
        try:
            held = await self._redis.get(self._marker(key))
        except Exception as exc:
            log.warning("redis broker: cannot read the claim of %s (%s)", key, exc)
            return None
        return held.decode() if isinstance(held, bytes) else held

    async def swap(self, key: str, old: str, new: str | None, ttl_ms: int = 0) -> bool:
        try:
            return bool(await self._redis.eval(_SWAP, 1, self._marker(key), old, new or "", ttl_ms))
        except Exception as exc:
            log.warning("redis broker: cannot update the claim of %s (%s)", key, exc)
            return new is not None  # taking over: go on alone; releasing: the claim expires

    @property
    def listeners(self) -> int:
        """The replicas (this one included) the last message reached, or the idle count."""
        return self._receivers

    async def lease(self, key: str, owner: str, ttl_ms: int) -> str:
        held = await self._redis.eval(_LEASE, 1, self._marker(key), owner, ttl_ms)
        return held.decode() if isinstance(held, bytes) else held

    async def _recount(self) -> None:
        """A replica left: as many listeners as Redis counts now are everyone."""
        with contextlib.suppress(Exception):  # Redis away: the watcher recounts later
            [(_, subscribed)] = await self._redis.pubsub_numsub(self.channel)
            self._receivers = subscribed

    async def disconnect(self) -> None:
        for task in (self._sender, self._reader, self._watcher, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                    await task
        with contextlib.suppress(Exception):  # not listening any more, then said (`LEAVING`)
            await self._pubsub.unsubscribe()
            await self._redis.publish(self.channel, pack(LEAVING, self._own))
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
