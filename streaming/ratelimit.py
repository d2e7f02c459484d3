"""Rate limits per token and action, with `limits`' moving window (an exact count of the last window).

Actions: `read` (REST reads, `/graphql`), `command` (every REST change: POST, PUT, PATCH, DELETE),
`subscribe` (a WebSocket connection: `/ws`, Socket.IO, `/graphql`'s subscriptions), and `webhook`
(each webhook route, checked once its sender is verified). A token is limited by its subject (`sub`,
the user id), a webhook by its source (`github`, `linear`, `charlie`, `events`): the key is the
seeds' `rate_limit:{user_id}:{action}` (`rate_limit:alice:read`, `rate_limit:github:webhook`), so
a busy dashboard never spends what a sender may send. With `CC_REDIS_URL` the windows live in Redis
and every replica counts against the same limit (a `?channel=` in the URL prefixes the keys with
it, as it keeps replicas' rooms apart); without, in this process.

Redis is asked once per lease, not per request: a replica takes `1/LEASE_SHARE` of a limit at once
(one entry per hit in the shared window, stamped when taken) and spends it within that window, so a
limit shared by N replicas lets through at most N leases more than it says (2% each), and a
webhook costs a Redis round trip (~140 µs of CPU in redis-py) once per hundred at the default.
A limit under `LEASE_SHARE` per window is asked of Redis on every hit: exact.

A request without a valid token is not counted: it is refused by the route's authentication anyway,
at the cost of a refusal. If Redis does not answer, the limits are this replica's own until it does
(`REDIS_RETRY_S`): a limiter is never the reason a request fails.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from limits import RateLimitItem, parse_many
from limits.util import WindowStats

from resources.settings import UNLIMITED, Settings

log = logging.getLogger(__name__)

READ, COMMAND, SUBSCRIBE, WEBHOOK = "read", "command", "subscribe", "webhook"
ACTIONS = (READ, COMMAND, SUBSCRIBE, WEBHOOK)
KEY_PREFIX = "rate_limit"
DEFAULT_CHANNEL = "cc:rooms"  # streaming.broker.CHANNEL: keys under it go without a channel prefix
# After Redis failed to answer, the limits are this replica's own for this long before Redis is asked again.
REDIS_RETRY_S = 1.0
REDIS_TIMEOUT_S = 0.5
LEASE_SHARE = 50  # a replica takes a limit's hits from Redis this many times per window, at most
LEASES_MAX = 10_000  # (user, action) leases held before the spent ones are forgotten
WINDOWS_MAX = 10_000  # in-process windows kept before the empty ones are forgotten
CLOSE_RATE_LIMITED = 4429  # a WebSocket refused after its first message (the HTTP status, as 4401 is 401)


class _Keyed:
    """A limits item whose storage key is `<user>:<action>` (the prefix adds `rate_limit:`); the
    second and later limits of one action (`10/second;600/minute`) add their window to it."""

    suffix = ""

    def key_for(self, *identifiers: Any) -> str:
        return ":".join(str(i) for i in identifiers) + self.suffix


_KEYED: dict[type, type] = {}


def keyed(item: RateLimitItem, suffix: str = "") -> RateLimitItem:
    cls = type(item)
    keyed_cls = _KEYED.get(cls)
    if keyed_cls is None:
        keyed_cls = _KEYED[cls] = type(f"Keyed{cls.__name__}", (_Keyed, cls), {})
    out = keyed_cls(item.amount, item.multiples, item.namespace)
    out.suffix = suffix
    return out


def parse(text: str) -> tuple[RateLimitItem, ...]:
    """`600/minute`, `10/second;600/minute`; `unlimited` is none."""
    if text.strip().lower() == UNLIMITED:
        return ()
    items = parse_many(text)
    return tuple(keyed(item, "" if i == 0 else f":{item.amount}/{item.multiples}{item.GRANULARITY.name}")
                 for i, item in enumerate(items))


@dataclass
class Lease:
    """Hits taken from the shared window and not spent yet, until the window they were stamped in ends."""

    left: int
    until: float  # time.monotonic()


@dataclass(frozen=True)
class Refusal:
    """Over a limit: what the answer says (429, `Retry-After`, the RateLimit headers)."""

    action: str
    user: str
    limit: RateLimitItem
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        window = self.limit.get_expiry()
        retry = str(self.retry_after_s)
        return {"Retry-After": retry,
                # draft-ietf-httpapi-ratelimit-headers, as most clients read it (-07) and as it is now (-09).
                "RateLimit-Limit": str(self.limit.amount), "RateLimit-Remaining": "0", "RateLimit-Reset": retry,
                "RateLimit-Policy": f'"{self.action}";q={self.limit.amount};w={window}',
                "RateLimit": f'"{self.action}";r=0;t={retry}'}

    @property
    def detail(self) -> str:
        return (f"rate limit of {self.limit.amount} per {self.limit.get_expiry()} s for {self.action} "
                f"exceeded; retry in {self.retry_after_s} s")

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "action": self.action, "retryAfter": self.retry_after_s}


class LocalWindows:
    """`limits`' moving window in this process (`hit`, `get_window_stats`, as its strategy has them):
    the hits of the last window, one timestamp each, in a deque per key. limits' `MemoryStorage`
    counts the same but costs the webhook path ~50 µs: it starts a timer thread every 10 ms while
    hits come (the event loop waits for each thread to start) and inserts each hit at the front of a
    list, copying the window."""

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, deque[float]]] = {}  # key -> (its window's seconds, hits)

    def _window(self, item: RateLimitItem, identifiers: tuple[Any, ...], now: float) -> deque[float]:
        key = item.key_for(*identifiers)
        held = self._hits.get(key)
        if held is None:
            if len(self._hits) >= WINDOWS_MAX:  # forget the windows whose hits have all expired
                self._hits = {k: (s, h) for k, (s, h) in self._hits.items() if h and h[-1] > now - s}
            held = self._hits[key] = (item.get_expiry(), deque())
        seconds, hits = held
        while hits and hits[0] <= now - seconds:
            hits.popleft()
        return hits

    def hit(self, item: RateLimitItem, *identifiers: Any, cost: int = 1) -> bool:
        now = time.time()
        hits = self._window(item, identifiers, now)
        if len(hits) + cost > item.amount:
            return False
        hits.extend(repeat(now, cost))
        return True

    def get_window_stats(self, item: RateLimitItem, *identifiers: Any) -> WindowStats:
        now = time.time()
        hits = self._window(item, identifiers, now)
        return WindowStats((hits[0] if hits else now) + item.get_expiry(), max(0, item.amount - len(hits)))


class RateLimits:
    """`await limits.hit(user, action)`: None when within every limit of the action, else a `Refusal`."""

    def __init__(self, settings: Settings, redis_url: str | None = None, channel: str = DEFAULT_CHANNEL,
                 on_refused: Callable[[str], None] | None = None, on_error: Callable[[], None] | None = None) -> None:
        self.policies = {READ: parse(settings.rate_limit_read), COMMAND: parse(settings.rate_limit_command),
                         SUBSCRIBE: parse(settings.rate_limit_subscribe), WEBHOOK: parse(settings.rate_limit_webhook)}
        self.overrides = {scope: parse(text) for scope, text in settings.rate_limit_overrides.items()}
        self._local = LocalWindows()
        self._shared: Any = None
        self.prefix = KEY_PREFIX if channel == DEFAULT_CHANNEL else f"{channel}:{KEY_PREFIX}"
        if redis_url:
            from limits.aio.storage import RedisStorage
            from limits.aio.strategies import MovingWindowRateLimiter as SharedLimiter

            self._shared = SharedLimiter(RedisStorage(redis_url, implementation="redispy", key_prefix=self.prefix,
                                                      socket_timeout=REDIS_TIMEOUT_S,
                                                      socket_connect_timeout=REDIS_TIMEOUT_S))
        self._redis_down_until = 0.0
        self._leases: dict[str, Lease] = {}
        self._taking: dict[str, asyncio.Lock] = {}
        self.on_refused = on_refused
        self.on_error = on_error

    @classmethod
    def for_broker(cls, settings: Settings, broker: Any, **hooks: Any) -> RateLimits:
        """Shared where the broker is: its Redis (the URL without `?channel=`) and its channel."""
        channel = getattr(broker, "channel", None)
        return cls(settings, broker.url if channel is not None else None, channel or DEFAULT_CHANNEL, **hooks)

    @property
    def shared(self) -> bool:
        return self._shared is not None

    def limited(self, action: str) -> bool:
        """Whether anyone has a limit on `action` (else nothing is counted, nor a token read for it)."""
        return bool(self.policies.get(action)) or any(scope.startswith(action + ":") for scope in self.overrides)

    def limits_of(self, user: str, action: str) -> tuple[RateLimitItem, ...]:
        items = self.overrides.get(f"{action}:{user}")
        return self.policies.get(action, ()) if items is None else items

    async def hit(self, user: str, action: str) -> Refusal | None:
        items = self.limits_of(user, action)
        for item in items:
            if not await self._hit(item, user, action):
                refusal = Refusal(action, user, item, await self._retry_after(item, user, action))
                if self.on_refused is not None:
                    self.on_refused(action)
                return refusal
        return None

    async def _hit(self, item: RateLimitItem, user: str, action: str) -> bool:
        if self._shared is not None and time.monotonic() >= self._redis_down_until:
            try:
                return await self._shared_hit(item, user, action)
            except Exception as exc:  # noqa: BLE001 - Redis down or slow: this replica's own count meanwhile
                self._redis_failed(exc)
        return self._local.hit(item, user, action)

    async def _shared_hit(self, item: RateLimitItem, user: str, action: str) -> bool:
        size = item.amount // LEASE_SHARE
        if size <= 1:
            return await self._shared.hit(item, user, action)
        key = item.key_for(user, action)
        lease = self._leases.get(key)
        if lease is None or not lease.left or time.monotonic() >= lease.until:
            lock = self._taking.get(key)
            if lock is None:
                lock = self._taking[key] = asyncio.Lock()
            async with lock:  # one take at a time: the others spend what it took
                lease = self._leases.get(key)
                if lease is None or not lease.left or time.monotonic() >= lease.until:
                    lease = await self._take(item, user, action, key, size)
                    if lease is None:
                        return False
        lease.left -= 1
        return True

    async def _take(self, item: RateLimitItem, user: str, action: str, key: str, size: int) -> Lease | None:
        """A new lease of `size` hits, or of one when the window has no room for them all; None: full."""
        taken = time.monotonic()
        if not await self._shared.hit(item, user, action, cost=size):
            size = 1
            if not await self._shared.hit(item, user, action):
                return None
        if len(self._leases) >= LEASES_MAX:
            self._leases = {k: v for k, v in self._leases.items() if v.left and v.until > taken}
            self._taking = {k: v for k, v in self._taking.items() if k in self._leases or v.locked()}
        lease = self._leases[key] = Lease(size, taken + item.get_expiry())
        return lease

    async def _retry_after(self, item: RateLimitItem, user: str, action: str) -> int:
        stats = None
        if self._shared is not None and time.monotonic() >= self._redis_down_until:
            try:
                stats = await self._shared.get_window_stats(item, user, action)
            except Exception as exc:  # noqa: BLE001
                self._redis_failed(exc)
        if stats is None:
            stats = self._local.get_window_stats(item, user, action)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _redis_failed(self, exc: Exception) -> None:
        if self._redis_down_until <= time.monotonic():
            log.warning("rate limits: Redis did not answer (%s); counting in this replica for %g s", exc,
                        REDIS_RETRY_S)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_S
        if self.on_error is not None:
            self.on_error()

    async def close(self) -> None:
        if self._shared is not None:
            storage = self._shared.storage
            # limits keeps a connection pool it never closes itself.
            connection = getattr(getattr(storage, "bridge", None), "storage", None)
            if connection is not None:
                await asyncio.shield(connection.aclose())


Hit = Callable[[str, str], Awaitable[Refusal | None]]


# --- the middleware: reads, changes and WebSocket connections, by path --------------------------

READ_PATHS = ("/api/", "/dashboard/")
GRAPHQL = "/graphql"
SOCKET_IO = "/socket.io"
WEBSOCKET_PATHS = ("/ws", GRAPHQL)
TOKEN_FIELDS = ("token", "authorization", "Authorization", "authToken")


def http_action(method: str, path: str, query: bytes) -> str | None:
    """What an HTTP request counts against: `read` (GET/HEAD of the REST API, anything at `/graphql`,
    whose mutations cannot be told from queries by path), `command` (a REST change), `subscribe` (a
    Socket.IO session's first request), or nothing (the page, its assets, `/healthz`, `/metrics`,
    the webhook routes, which count as their sender's once verified)."""
    if path.startswith(READ_PATHS):
        if method in ("GET", "HEAD"):
            return READ
        return None if method == "OPTIONS" else COMMAND
    if path == GRAPHQL or path.startswith(GRAPHQL + "/"):
        return None if method == "OPTIONS" else READ
    if path.startswith(SOCKET_IO) and b"sid=" not in query:
        return SUBSCRIBE
    return None


def websocket_action(path: str, query: bytes) -> str | None:
    if path in WEBSOCKET_PATHS or path.startswith(GRAPHQL + "/"):
        return SUBSCRIBE
    if path.startswith(SOCKET_IO) and b"sid=" not in query:  # an upgrade of a session already counted
        return SUBSCRIBE
    return None


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def token_of(scope: dict) -> str | None:
    """The bearer token a request shows before its body: `Authorization`, or `?token=` (WebSockets)."""
    bearer = _header(scope, b"authorization")
    if bearer and bearer[:7].lower() == "bearer ":
        return bearer[7:].strip()
    if scope["type"] == "websocket" and b"token=" in scope["query_string"]:
        from urllib.parse import parse_qs

        found = parse_qs(scope["query_string"].decode("latin-1")).get("token")
        return found[0] if found else None
    return None


def token_in_message(text: str) -> str | None:
    """The token of a WebSocket's first message: `/ws`'s `{"type": "auth", "token"}`, graphql-transport-ws'
    `connection_init` payload, a Socket.IO CONNECT packet's auth (`40{"token": ...}`)."""
    import json

    if text.startswith("40"):
        text = text[2:]
        if text.startswith("/"):  # a namespace: `40/name,{...}`
            text = text.partition(",")[2]
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    payload = value.get("payload")
    for holder in (value, payload if isinstance(payload, dict) else {}):
        for name in TOKEN_FIELDS:
            token = holder.get(name)
            if isinstance(token, str) and token:
                return token[7:].strip() if token[:7].lower() == "bearer " else token
    return None


def _subject(app: Any, token: str | None) -> str | None:
    """The user id of a valid token (its `sub`); None without one."""
    if not token:
        return None
    from streaming.auth import AuthError, verify_token

    try:
        return verify_token(app.state.settings.jwt_secret, token).sub
    except AuthError:
        return None


def _limits(app: Any) -> RateLimits | None:
    sidecar = getattr(app.state, "sidecar", None)
    return getattr(sidecar, "limits", None)


async def refuse_http(send, refusal: Refusal) -> None:
    import orjson

    body = orjson.dumps(refusal.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers().items()]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RateLimitMiddleware:
    """Counts each request against its action's limit (`http_action`, `websocket_action`), by path so
    that a route added later (`/graphql`) is covered by where it lives. A refused request gets 429
    with `Retry-After` and the RateLimit headers; a WebSocket whose token is in its handshake gets
    that 429 as the handshake's answer, one that sends it in its first message is closed with 4429."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            action = http_action(scope["method"], scope["path"], scope["query_string"])
        elif kind == "websocket":
            action = websocket_action(scope["path"], scope["query_string"])
        else:
            action = None
        limits = _limits(scope["app"]) if action is not None else None
        if limits is None or not limits.limited(action):
            await self.app(scope, receive, send)
            return
        user = _subject(scope["app"], token_of(scope))
        if user is not None:
            refusal = await limits.hit(user, action)
            if refusal is not None:
                if kind == "http":
                    await refuse_http(send, refusal)
                else:
                    await self._refuse_handshake(scope, send, refusal)
                return
        elif kind == "websocket":
            receive = self._first_message(scope, receive, send, limits, action)
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse_handshake(scope, send, refusal: Refusal) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            import orjson

            body = orjson.dumps(refusal.body())
            headers = [(b"content-type", b"application/json")]
            headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers().items()]
            await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": CLOSE_RATE_LIMITED, "reason": refusal.detail[:120]})

    @staticmethod
    def _first_message(scope, receive, send, limits: RateLimits, action: str):
        """`receive`, looking at the first message for the token the handshake did not show."""
        looked = False

        async def first() -> dict:
            nonlocal looked
            message = await receive()
            if looked or message["type"] != "websocket.receive":
                return message
            looked = True
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            user = _subject(scope["app"], token_in_message(text or ""))
            if user is None:
                return message
            refusal = await limits.hit(user, action)
            if refusal is None:
                return message
            await send({"type": "websocket.close", "code": CLOSE_RATE_LIMITED, "reason": refusal.detail[:120]})
            return {"type": "websocket.disconnect", "code": CLOSE_RATE_LIMITED, "reason": refusal.detail[:120]}

        return first
