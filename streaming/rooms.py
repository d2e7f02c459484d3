"""Rooms and fan-out: clients grouped by what they subscribe to, each with its own sender task.

Both endpoints, `/ws` and Socket.IO, keep their clients here. Clients with the same rooms, wire
format and framing form a `Group`, and a room message is encoded once per wire format and
appended once to each group's log — not once per client: at 5,000 events/s to 500 clients that
per-client loop was millions of Python calls a second. The log is released to the members in
turns (`Group.flush`); the members that are equally far share the turn's frame, encoded once
(`Group.frame`), and a member whose socket takes it without waiting is written to from the turn
itself (`Client.write_now`: one `transport.write`, no task woken). A member still busy with an
earlier write is left to its own sender, which reads the log from the member's cursor when that
write completes and sends everything released meanwhile as one frame: a slow client never delays
the others, and behind it events coalesce. The log keeps `max_queue` items: a client further
behind than that has the oldest dropped (the newest state matters most on a live dashboard) and,
once it catches up, gets a `notice` saying how many it missed; one that stays behind for
`slow_after_s` is disconnected (close code 4408 on `/ws`) so it reconnects and reloads over REST.
Messages for one client alone (answers, notices) go to its private bounded queue.

When a turn is released (`CC_ROOM_BATCH`): `adaptive` (the default) at the end of the loop
iteration that published, so a quiet room's event goes out alone at once and what one iteration
publishes (one group commit's deliveries) goes out together — unless the room's last turn is
still "in flight" in the sense that matters on one event loop: its writes took `t` of CPU (a
hundred sockets: a few hundred µs), and for `t × (1 − share) / share` after them
(`CC_ROOM_BUSY_SHARE`; never longer than the fixed window) what arrives waits and goes as one
turn, so writing a room's turns takes at most that share of the loop. With few clients that wait
is microseconds; with hundreds at thousands of events a second, frames grow instead of the CPU
(and the clients' work). `fixed`, the earlier policy: at most one turn per `batch_interval_s` for
batching clients, the first message after a quiet spell at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from streaming.messages import (  # noqa: E402,F401 - re-exported: the rooms' messages
    as_text,
    is_room,
    json_array,
    message,
    message_type,
    not_a_room,
    now_iso,
)
from streaming.room_names import _WORKFLOW_ROOM, ALL_WORKFLOWS, ROOMS  # noqa: E402,F401 - re-exported

CLOSE_TOO_SLOW = 4408
# A batching client gets at most one frame per interval: the first message after a quiet spell
# goes at once, and under load the cost per frame is shared by everything that waited (a few ms).
# 8 ms: at 1,000 events/s to 100 clients it halves the sidecar's CPU against 4 ms (bench-stream).
BATCH_INTERVAL_S = 0.008
# The most batch frames a second this replica writes, over all its batching clients: past it the
# interval grows (500 clients: 20 ms), so the frames get bigger rather than the CPU overrun.
FRAMES_PER_S = 25_000
ADAPTIVE, FIXED = "adaptive", "fixed"
BATCH_MODES = (ADAPTIVE, FIXED)
# Adaptive: the most of the event loop one room's turns take (see the module docstring). A turn to
# 100 sockets takes a few hundred µs of CPU; with few clients its pause holds back nothing, and
# only where turns cost about as much as the gap between events do they wait. At a half, 1,000
# events/s to 100 clients went out 2-3 a frame and the turns' writes held the loop's queue: at
# 0.15, 5-7 a frame, and bench-stream's p50, p99 and CPU per webhook were all lower (five
# alternating pairs: medians 7.3 / 30.6 ms / 846 µs against 11.8 / 45.7 ms / 988 µs).
BUSY_SHARE = 0.15



class Sent:
    """Frames and bytes written to clients: plain counts the metrics read (a room turn adds once)."""

    __slots__ = ("frames", "bytes")

    def __init__(self) -> None:
        self.frames = self.bytes = 0

    def add(self, items: list[Any]) -> None:
        self.frames += len(items)
        self.bytes += sum(map(len, items))


Send = Callable[[list[Any]], Awaitable[None]]
# Writes wire items now if the socket takes them without waiting; False (nothing written) if not.
WriteNow = Callable[[list[Any]], bool]


class Client:
    """One connected client of either endpoint.

    `send(items)` writes a list of wire items (in order), each as one frame; `encode(text)` turns
    a message's JSON text into a wire item (the text itself for `/ws`); a batching client has
    `pack(items)`, which turns a list of encoded messages into one wire item (one frame).
    Room messages are not queued per client: the client reads its `Group`'s shared log from its
    own `cursor`; only messages for it alone (answers, notices) go to its private queue."""

    def __init__(self, send: Send, close: Callable[[int, str], Awaitable[None]],
                 max_queue: int, slow_after_s: float, encode: Callable[[str], Any] = as_text,
                 pack: Callable[[list[Any]], Any] | None = None, write_now: WriteNow | None = None,
                 sent: Sent | None = None) -> None:
        self._send = send
        self.sent = sent if sent is not None else Sent()
        self._close = close
        self.write_now = write_now
        self.sending = False  # its sender is writing (maybe waiting for the socket to drain)
        self.encode = encode
        self.pack = pack
        self.queue: deque[Any] = deque()  # private messages (answers, notices)
        self.max_queue = max_queue
        self.slow_after_s = slow_after_s
        self.rooms: set[str] = set()
        self.group: Group | None = None
        self.cursor = 0  # the next item of `group` this client has not taken
        self.dropped = 0
        self.full_since: float | None = None
        self.closed = False
        self.kicked = False
        self.task: asyncio.Task | None = None  # the sender, cancelled when the client is kicked
        self._wake = asyncio.Event()

    @property
    def batch(self) -> bool:
        return self.pack is not None

    def send_message(self, text: str) -> None:
        """Queue one `message()` text for this client alone (answers, notices)."""
        self.offer(self.encode(text))

    def offer(self, item: Any) -> None:
        if self.closed:
            return
        if len(self.queue) >= self.max_queue:
            self.queue.popleft()
            self.fell_behind(1)
            if self.closed:
                return
        self.queue.append(item)
        self._wake.set()

    def backlog(self) -> int:
        group = self.group
        return len(self.queue) + (group.head - self.cursor if group is not None else 0)

    def fell_behind(self, dropped: int) -> None:
        """`dropped` messages were dropped for it: note them, and kick it when it stays behind."""
        self.dropped += dropped
        now = time.monotonic()
        if self.full_since is None:
            self.full_since = now
        elif now - self.full_since > self.slow_after_s:
            self.kick()

    def kick(self, code: int = CLOSE_TOO_SLOW, reason: str = "client too slow") -> None:
        """Close it: stop its sender even mid-send (a send blocks on a client that does not read)."""
        if not self.closed:
            self.closed = self.kicked = True
            self.close_code, self.close_reason = code, reason
            self.queue.clear()
            self._wake.set()
            if self.task is not None:
                self.task.cancel()

    def _take(self) -> list[Any]:
        """Every wire item waiting for it: its private messages, then its group's released items
        (for a batching client, one frame, shared with every member that is just as far)."""
        out: list[Any] = []
        if self.queue:
            items = list(self.queue)
            self.queue.clear()
            if self.pack is None:
                out.extend(items)
            else:
                out.append(self.pack(items))
        group = self.group
        if group is not None and self.cursor < group.cut:
            start, self.cursor = self.cursor, group.cut
            if self.pack is None:
                out.extend(group.slice(start, group.cut))
            else:
                out.append(group.frame(start))
        return out

    async def run(self) -> None:
        """Send until the client is closed or kicked."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self.closed:
                    break
                self.sending = True
                # Everything waiting goes in one turn: under load, batches grow instead of the backlog.
                while items := self._take():
                    await self._send(items)
                    self.sent.add(items)
                if self.dropped and not self.backlog():
                    dropped, self.dropped = self.dropped, 0
                    notice = self.encode(message("notice", None, {
                        "code": "messages_dropped", "dropped": dropped,
                        "detail": "this client fell behind; reload current state over REST"}))
                    notice = notice if self.pack is None else self.pack([notice])
                    await self._send([notice])
                    self.sent.add([notice])
                self.sending = False
                self.full_since = None
        finally:
            if self.kicked:
                # Under uvicorn the close goes past flow control (`ws.FrameWriter.close`), so it
                # does not wait for the client; through plain ASGI it waits behind the backlog,
                # and is not put under a timeout here, which would lose the close frame.
                with contextlib.suppress(Exception):  # the socket may already be gone
                    await self._close(self.close_code, self.close_reason)


class Group:
    """The clients with the same rooms, wire format and framing, and the log of what they are sent.

    A room message is encoded once per wire format and appended once per group, whatever the
    number of members. The log is released to the members in turns (`flush`): adaptive, at the
    end of the loop iteration that appended; fixed, at once for clients that take messages one by
    one and for batching clients at most once per `hub.interval()`, the first message after a
    quiet spell at once. Members that are as far as the last turn share its frame, encoded once.
    The log keeps `max_queue` items: a member further behind has the oldest dropped (its own
    bounded queue, as it were) and, if it stays behind, is disconnected."""

    def __init__(self, hub: Hub, key: tuple, encode: Callable[[str], Any],
                 pack: Callable[[list[Any]], Any] | None) -> None:
        self.hub = hub
        self.key = key
        self.encode = encode
        self.pack = pack
        self.members: set[Client] = set()
        self.items: deque[Any] = deque()
        self.base = 0  # the sequence number of items[0]
        self.cut = 0  # items before `cut` are released to the senders
        self._frames: dict[int, Any] = {}  # this turn's frames by start
        self._wires: dict[int, tuple[list[Any], int, int]] = {}  # the same as `write_now` takes them, frames, bytes
        self._timer: asyncio.Handle | None = None
        self._last_flush = -1e9
        self._ready_at = 0.0  # adaptive: the next turn waits until then (`time.perf_counter`)

    @property
    def head(self) -> int:
        return self.base + len(self.items)

    def append(self, item: Any) -> None:
        self.items.append(item)
        if len(self.items) > self.hub.max_queue:
            self.items.popleft()
            self.base += 1
        if self._timer is None:
            loop = asyncio.get_running_loop()
            if self.hub.adaptive:  # after everything this iteration publishes, once the last turn's share is up
                wait = self._ready_at - time.perf_counter()
            else:
                wait = 0.0 if self.pack is None else self._last_flush + self.hub.interval() - loop.time()
            self._timer = loop.call_soon(self.flush) if wait <= 0 else loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Release the log to the members: write the turn to each idle one now, wake the others'
        senders. The loop runs once per member and turn, so it is kept to attribute reads."""
        started = time.perf_counter()
        self._timer = None
        self._last_flush = asyncio.get_running_loop().time()
        self.cut = head = self.head
        base = self.base
        self._frames.clear()
        wires = self._wires
        wires.clear()
        frames = written = 0
        for client in tuple(self.members):
            cursor = client.cursor
            if cursor < base:
                client.fell_behind(base - cursor)
                client.cursor = cursor = base
                if client.kicked:
                    self.hub.remove(client)
                    continue
            if cursor >= head:
                continue
            write_now = client.write_now
            # Idle: nothing of it is being written (`sending`) or waiting to be (its private queue, a
            # drop notice, a wake-up its sender has not taken yet), so this turn cannot overtake any.
            if write_now is not None and not (client.sending or client.queue or client.dropped or client.closed
                                              or client._wake.is_set()):
                wire = wires.get(cursor)
                if wire is None:
                    wire = self.wire(cursor)
                if write_now(wire[0]):
                    frames += wire[1]
                    written += wire[2]
                    client.cursor = head
                    client.full_since = None
                    continue
            client._wake.set()
        if frames:
            sent = self.hub.sent
            sent.frames += frames
            sent.bytes += written
        # The writes' wall time: the thread's CPU time would not count a turn preempted by another
        # process, but it is a system call (~2 µs here, twice a turn), where the wall clock is read
        # in user space. A preempted turn pauses the room longer, never longer than the fixed window.
        ended = time.perf_counter()
        self._ready_at = ended + min((ended - started) * self.hub.rest, self.hub.interval())

    def slice(self, start: int, end: int) -> list[Any]:
        start = max(start, self.base)
        return list(itertools.islice(self.items, start - self.base, end - self.base))

    def frame(self, start: int) -> Any:
        """The batch frame of items [start, cut): encoded once per turn for every member at `start`."""
        frame = self._frames.get(start)
        if frame is None:
            frame = self._frames[start] = self.pack(self.slice(start, self.cut))
        return frame

    def wire(self, start: int) -> tuple[list[Any], int, int]:
        """What a member at `start` is written this turn (`write_now`): one batch frame, kept for the
        members at the same place, or each item as its own frame; with its frames and bytes."""
        items = self.slice(start, self.cut) if self.pack is None else [self.frame(start)]
        wire = self._wires[start] = (items, len(items), sum(map(len, items)))
        return wire

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Hub:
    """Room membership of this replica's clients, kept as groups of clients with the same rooms."""

    def __init__(self, max_queue: int = 1000, slow_after_s: float = 10.0,
                 batch_interval_s: float = BATCH_INTERVAL_S, frames_per_s: int = FRAMES_PER_S,
                 mode: str = ADAPTIVE, busy_share: float = BUSY_SHARE) -> None:
        if mode not in BATCH_MODES:
            raise ValueError(f"batch mode {mode!r}: expected one of {', '.join(BATCH_MODES)}")
        if not 0 < busy_share <= 1:
            raise ValueError(f"busy share {busy_share}: expected more than 0, at most 1")
        self.adaptive = mode == ADAPTIVE
        self.rest = (1 - busy_share) / busy_share  # adaptive: a turn's write time × this is its room's pause
        self.batch_interval_s = batch_interval_s
        self.frames_per_s = frames_per_s
        self.rooms: dict[str, set[Group]] = {}
        self.groups: dict[tuple, Group] = {}
        self.clients: set[Client] = set()
        self.max_queue = max_queue
        self.slow_after_s = slow_after_s
        self.delivered = 0
        self.kicked = 0
        self.batch_clients = 0
        self.sent = Sent()

    def interval(self) -> float:
        """Time between a batching client's frames (fixed mode; the longest adaptive pause):
        `batch_interval_s`, longer when there are so many batching clients that their frames would
        pass `frames_per_s`."""
        return max(self.batch_interval_s, self.batch_clients / self.frames_per_s)

    def client(self, send: Send, close: Callable[[int, str], Awaitable[None]],
               encode: Callable[[str], Any] = as_text, batch: bool = False,
               pack: Callable[[list[Any]], Any] = json_array, write_now: WriteNow | None = None) -> Client:
        """A client; with `write_now`, room turns are written to it from the flush itself while it
        is idle, without waking its sender."""
        client = Client(send, close, self.max_queue, self.slow_after_s, encode, pack if batch else None, write_now,
                        self.sent)
        self.clients.add(client)
        if batch:
            self.batch_clients += 1
        return client

    def _regroup(self, client: Client, rooms: set[str]) -> None:
        old = client.group
        if old is not None:
            # What it has not taken yet becomes private, so a change of rooms loses nothing.
            for item in old.slice(client.cursor, old.head):
                client.offer(item)
            old.members.discard(client)
            if not old.members:
                old.cancel()
                del self.groups[old.key]
                for room in old.key[0]:
                    self.rooms[room].discard(old)
                    if not self.rooms[room]:
                        del self.rooms[room]
        client.rooms = rooms
        client.group = None
        if not rooms or client.closed:
            return
        key = (frozenset(rooms), client.encode, client.pack)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(self, key, client.encode, client.pack)
            for room in rooms:
                self.rooms.setdefault(room, set()).add(group)
        group.members.add(client)
        client.group = group
        client.cursor = group.head

    def join(self, client: Client, room: str) -> None:
        if room not in client.rooms:
            self._regroup(client, client.rooms | {room})

    def leave(self, client: Client, room: str) -> None:
        if room in client.rooms:
            self._regroup(client, client.rooms - {room})

    def remove(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            if client.batch:
                self.batch_clients -= 1
            # Every client closed for being slow, once: behind its room's log (the turn kicks it) or
            # behind its own queue of answers (`offer`, whose endpoint removes it).
            if client.kicked and client.close_code == CLOSE_TOO_SLOW:
                self.kicked += 1
        client.closed = True
        self._regroup(client, set())

    def subscribe(self, client: Client, rooms: list[Any], may_join: Callable[[str], bool]) -> dict[str, Any]:
        """Join what the client may join; the `subscribed` payload says what was joined and why not."""
        joined, denied = [], []
        for room in rooms:
            if (unknown := not_a_room(room)) is not None:
                denied.append({"room": room, "reason": unknown})
            elif not may_join(room):
                denied.append({"room": room, "reason": "the token's rooms claim does not allow it"})
            else:
                joined.append(room)
        if joined:
            self._regroup(client, client.rooms | set(joined))
        return {"rooms": joined, "denied": denied}

    def unsubscribe(self, client: Client, rooms: list[Any]) -> dict[str, Any]:
        gone = {room for room in rooms if isinstance(room, str)}
        if gone & client.rooms:
            self._regroup(client, client.rooms - gone)
        return {"rooms": sorted(client.rooms)}

    def deliver(self, room: str, text: str) -> None:
        groups = self.rooms.get(room)
        if not groups:
            return
        encoded: dict[Any, Any] = {}  # one encoding per wire format, shared by its groups
        for group in tuple(groups):
            item = encoded.get(group.encode)
            if item is None:
                item = encoded[group.encode] = group.encode(text)
            group.append(item)
            self.delivered += len(group.members)

    def all_clients(self) -> set[Client]:
        return set(self.clients)

    def backlog(self) -> int:
        return sum(c.backlog() for c in self.clients)

    def count(self, room: str | None = None) -> int:
        if room is not None:
            return sum(len(g.members) for g in self.rooms.get(room, ()))
        return len({c for groups in self.rooms.values() for g in groups for c in g.members})
