"""Rooms and fan-out: every client has its own bounded queue and its own sender task.

Delivering to a room only appends the (already encoded) text to each member's queue, so a slow
client never delays the others: its own sender waits on its own socket. When a client's queue is
full the oldest message is dropped (the newest state matters most on a live dashboard) and, once
it catches up, the client gets a `notice` saying how many it missed. A client that stays full for
`slow_after_s` is disconnected with close code 4408 so it reconnects and reloads over REST.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

ROOMS = ("dashboard:overview", "metrics:realtime", "alerts:all", "events:all")
_WORKFLOW_ROOM = re.compile(r"^workflows:.{1,200}$")

CLOSE_TOO_SLOW = 4408


def is_room(name: Any) -> bool:
    return isinstance(name, str) and (name in ROOMS or bool(_WORKFLOW_ROOM.match(name)))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(type_: str, room: str | None, payload: Any, timestamp: str | None = None) -> str:
    return json.dumps({"type": type_, "room": room, "timestamp": timestamp or now_iso(), "payload": payload},
                      separators=(",", ":"), default=str)


class Client:
    def __init__(self, send: Callable[[str], Awaitable[None]], close: Callable[[int, str], Awaitable[None]],
                 max_queue: int, slow_after_s: float) -> None:
        self._send = send
        self._close = close
        self.queue: deque[str] = deque()
        self.max_queue = max_queue
        self.slow_after_s = slow_after_s
        self.rooms: set[str] = set()
        self.dropped = 0
        self.full_since: float | None = None
        self.closed = False
        self.kicked = False
        self.task: asyncio.Task | None = None  # the sender, cancelled when the client is kicked
        self._wake = asyncio.Event()

    def offer(self, text: str) -> None:
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
        self.queue.append(text)
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
                    await self._send(self.queue.popleft())
                if self.dropped and not self.queue:
                    dropped, self.dropped = self.dropped, 0
                    await self._send(message("notice", None, {
                        "code": "messages_dropped", "dropped": dropped,
                        "detail": "this client fell behind; reload current state over REST"}))
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

    def client(self, send: Callable[[str], Awaitable[None]], close: Callable[[int, str], Awaitable[None]]) -> Client:
        return Client(send, close, self.max_queue, self.slow_after_s)

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

    def deliver(self, room: str, text: str) -> None:
        for client in tuple(self.rooms.get(room, ())):
            client.offer(text)
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
