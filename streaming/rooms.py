"""Rooms and fan-out: every client has its own bounded queue and its own sender task.

Both endpoints, `/ws` and Socket.IO, keep their clients here. Delivering to a room only appends
the (already encoded) message to each member's queue, so a slow client never delays the others:
its own sender waits on its own socket. A message is encoded once per wire format, not once per
client: the JSON text for `/ws`, one shared Engine.IO packet for Socket.IO (`Client.encode`).
The sender takes everything waiting at once, so under load one socket write carries many
messages (a batching client gets them as one frame). When a client's queue is full the oldest
message is dropped (the newest state matters most on a live dashboard) and, once it catches up,
the client gets a `notice` saying how many it missed. A client that stays full for
`slow_after_s` is disconnected (close code 4408 on `/ws`) so it reconnects and reloads over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

ROOMS = ("dashboard:overview", "metrics:realtime", "alerts:all", "events:all")
_WORKFLOW_ROOM = re.compile(r"^workflows:.{1,200}$")

CLOSE_TOO_SLOW = 4408
# A batching client gets at most one frame per interval: the first message after a quiet spell
# goes at once, and under load the cost per frame is shared by everything that waited (a few ms).
# 8 ms: at 1,000 events/s to 100 clients it halves the sidecar's CPU against 4 ms (bench-stream).
BATCH_INTERVAL_S = 0.008


def is_room(name: Any) -> bool:
    return isinstance(name, str) and (name in ROOMS or bool(_WORKFLOW_ROOM.match(name)))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def message(type_: str, room: str | None, payload: Any, timestamp: str | None = None) -> str:
    """One message as every client gets it: `{"type", "room", "timestamp", "payload"}`, compact JSON.

    `type` comes first, so a wire format that names its frames by type can read it back cheaply
    (`message_type`). orjson: the encoding is on every event's path; datetimes stay `str()` as
    before."""
    return orjson.dumps({"type": type_, "room": room, "timestamp": timestamp or now_iso(), "payload": payload},
                        default=str, option=_OPTIONS).decode()


def message_type(text: str) -> str:
    """The `type` of a `message()` text, without decoding the rest of it."""
    if text.startswith('{"type":"'):
        end = text.find('"', 9)
        if end > 0 and "\\" not in text[9:end]:
            return text[9:end]
    return str(orjson.loads(text).get("type"))


def as_text(text: str) -> str:
    return text


Send = Callable[[list[Any]], Awaitable[None]]


class Client:
    """One connected client of either endpoint.

    `send(items)` writes a list of queued items (in order) to the socket; `encode(text)` turns a
    message's JSON text into what this client's queue holds (the text itself for `/ws`)."""

    def __init__(self, send: Send, close: Callable[[int, str], Awaitable[None]],
                 max_queue: int, slow_after_s: float, encode: Callable[[str], Any] = as_text,
                 interval_s: float = 0.0) -> None:
        self._send = send
        self.interval_s = interval_s
        self._close = close
        self.encode = encode
        self.queue: deque[Any] = deque()
        self.max_queue = max_queue
        self.slow_after_s = slow_after_s
        self.rooms: set[str] = set()
        self.dropped = 0
        self.full_since: float | None = None
        self.closed = False
        self.kicked = False
        self.task: asyncio.Task | None = None  # the sender, cancelled when the client is kicked
        self._wake = asyncio.Event()

    def send_message(self, text: str) -> None:
        """Queue one `message()` text for this client alone (answers, notices)."""
        self.offer(self.encode(text))

    def offer(self, item: Any) -> None:
        if self.closed:
            return
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self.dropped += 1
            now = time.monotonic()
            if self.full_since is None:
                self.full_since = now
            elif now - self.full_since > self.slow_after_s:
                self.kick()
                return
        self.queue.append(item)
        self._wake.set()

    def kick(self, code: int = CLOSE_TOO_SLOW, reason: str = "client too slow") -> None:
        """Close it: stop its sender even mid-send (a send blocks on a client that does not read)."""
        if not self.closed:
            self.closed = self.kicked = True
            self.close_code, self.close_reason = code, reason
            self.queue.clear()
            self._wake.set()
            if self.task is not None:
                self.task.cancel()

    async def run(self) -> None:
        """Send queued messages until the client is closed or kicked."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self.closed:
                    break
                while self.queue:
                    # Everything waiting goes in one write: under load, batches grow instead of
                    # the backlog.
                    items = list(self.queue)
                    self.queue.clear()
                    await self._send(items)
                    if self.interval_s:
                        await asyncio.sleep(self.interval_s)
                if self.dropped and not self.queue:
                    dropped, self.dropped = self.dropped, 0
                    await self._send([self.encode(message("notice", None, {
                        "code": "messages_dropped", "dropped": dropped,
                        "detail": "this client fell behind; reload current state over REST"}))])
                self.full_since = None
        finally:
            if self.kicked:
                # Not under a timeout: cancelling the close would lose the close frame queued
                # behind the backlog. A client that never reads again is dropped by the server's
                # keepalive ping timeout.
                with contextlib.suppress(Exception):  # the socket may already be gone
                    await self._close(self.close_code, self.close_reason)


class Hub:
    """Room membership of this replica's clients."""

    def __init__(self, max_queue: int = 1000, slow_after_s: float = 10.0) -> None:
        self.rooms: dict[str, set[Client]] = {}
        self.max_queue = max_queue
        self.slow_after_s = slow_after_s
        self.delivered = 0
        self.kicked = 0

    def client(self, send: Send, close: Callable[[int, str], Awaitable[None]],
               encode: Callable[[str], Any] = as_text, batch: bool = False) -> Client:
        return Client(send, close, self.max_queue, self.slow_after_s, encode, BATCH_INTERVAL_S if batch else 0.0)

    def join(self, client: Client, room: str) -> None:
        self.rooms.setdefault(room, set()).add(client)
        client.rooms.add(room)

    def leave(self, client: Client, room: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            members.discard(client)
            if not members:
                del self.rooms[room]
        client.rooms.discard(room)

    def remove(self, client: Client) -> None:
        for room in list(client.rooms):
            self.leave(client, room)
        client.closed = True

    def subscribe(self, client: Client, rooms: list[Any], may_join: Callable[[str], bool]) -> dict[str, Any]:
        """Join what the client may join; the `subscribed` payload says what was joined and why not."""
        joined, denied = [], []
        for room in rooms:
            if not is_room(room):
                denied.append({"room": room, "reason": "no such room"})
            elif not may_join(room):
                denied.append({"room": room, "reason": "the token's rooms claim does not allow it"})
            else:
                self.join(client, room)
                joined.append(room)
        return {"rooms": joined, "denied": denied}

    def unsubscribe(self, client: Client, rooms: list[Any]) -> dict[str, Any]:
        for room in rooms:
            if isinstance(room, str):
                self.leave(client, room)
        return {"rooms": sorted(client.rooms)}

    def deliver(self, room: str, text: str) -> None:
        members = self.rooms.get(room)
        if not members:
            return
        encoded: dict[Any, Any] = {}  # one encoding per wire format, shared by its clients
        for client in tuple(members):
            item = encoded.get(client.encode)
            if item is None:
                item = encoded[client.encode] = client.encode(text)
            client.offer(item)
            self.delivered += 1
            if client.kicked:
                self.kicked += 1
                self.remove(client)

    def backlog(self) -> int:
        return sum(len(c.queue) for c in {c for members in self.rooms.values() for c in members})

    def count(self, room: str | None = None) -> int:
        if room is not None:
            return len(self.rooms.get(room, ()))
        return len({c for members in self.rooms.values() for c in members})
