"""Replicas share one live workflow state: one computes it, the others apply what it publishes.

With Redis (`CC_REDIS_URL`) every replica sees every replica's live events (their REST reads and
rooms need them), and each used to run the live state's chain over all of them: a replica's share
of the fleet's live-state work did not shrink as replicas were added, and past ~2,900 webhooks/s it
was all a replica's core did (docs/scaling.md). Now one replica, the leader, computes; after each
run it publishes the run's `Delta` (`streaming/state/snapshot.py`) on the broker, and the others,
followers, apply it to their snapshot: the same function over the same changes, so every replica's
REST reads and `workflow.updated` messages are the leader's. A follower keeps the live events,
correlation and carried records as before (its reads serve them, and it may have to lead).

Leadership is a lease in Redis (`LEASE_KEY`, `LEASE_MS`), renewed every `RENEW_S` by its holder
and taken by the first replica to find it expired: a leader that dies is replaced within
`LEASE_MS` + `RENEW_S`, and the new one computes everything from its own live store. Each delta
carries its leader and a sequence number; a follower that sees a gap (a message lost while Redis
restarted) or a new leader asks for the whole state (`resync`) and keeps its last snapshot until
it comes. With Redis unreachable the lease cannot be read: every replica computes on its own, as a
lone sidecar does, until Redis is back and one lease holder remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from streaming.state.snapshot import Delta, decode, delta_in, delta_out, encode

log = logging.getLogger(__name__)

STATE_ROOM = "_live_state"  # the broker's room for deltas and resync requests (never a client's)
LEASE_KEY = "live-state-leader"
LEASE_MS = 3000
RENEW_S = 1.0
RESYNC_EVERY_S = 1.0  # a follower waiting for the whole state asks again this often
ALONE, LEADER, FOLLOWER = "alone", "leader", "follower"


def sent_by(replica: str) -> str:
    """How a replica's own messages on an internal room begin (`{"from": replica, ...}` encoded by
    orjson, which keeps the keys' order): what tells them apart when Redis sends them back to it."""
    return f'{{"from":"{replica}"'


class Sharing:
    """This replica's part: its role, the leader's deltas waiting to be applied, and what it publishes.

    `publish(text)` sends on `STATE_ROOM` (the sidecar passes a thread-safe one). Messages arrive
    with `receive` on the event loop and are taken by the live state's thread (`take`)."""

    def __init__(self, replica: str, publish: Callable[[str], None], wake: Callable[[], None],
                 listeners: Callable[[], int] = lambda: 2) -> None:
        self.replica, self._publish, self._wake, self._listeners = replica, publish, wake, listeners
        self._own = sent_by(replica)
        self.role = ALONE
        self.leader: str | None = None
        self._inbox: deque[str] = deque()
        self._lock = threading.Lock()
        self._seq = 0  # as leader: the next delta's number
        self._expect: int | None = None  # as follower: the next number wanted (None: the whole state)
        self._asked_at = 0.0
        self.whole_due = False  # as leader: a follower asked for the whole state
        self.promoted = False  # became leader since the live state's thread last looked
        self.applied = 0  # deltas applied (as follower)

    # --- on the event loop -----------------------------------------------------------------------------
    def set_leader(self, holder: str) -> None:
        """What the lease says now: this replica leads, or follows `holder`."""
        with self._lock:
            role = LEADER if holder == self.replica else FOLLOWER
            changed = (role, holder) != (self.role, self.leader)
            if changed:
                log.info("live state: %s (leader %s)", role, holder)
                if role == LEADER and self.role != LEADER:
                    self.promoted = True
                self.role, self.leader, self._expect = role, holder, None
        if changed:
            self._wake()

    def receive(self, text: str) -> None:
        if text.startswith(self._own):  # this replica's own delta, back from Redis
            return
        self._inbox.append(text)
        self._wake()

    # --- on the live state's thread ----------------------------------------------------------------------
    def take(self) -> list[Delta]:
        """As follower: the leader's deltas to apply now, in order. Resync requests and other
        leaders' deltas are handled or dropped here; a gap asks the leader for the whole state."""
        deltas: list[Delta] = []
        while self._inbox:
            message = decode(self._inbox.popleft())
            if "resync" in message:
                if message.get("to") == self.replica and self.role == LEADER:
                    self.whole_due = True
                continue
            if self.role != FOLLOWER or message.get("from") != self.leader:
                continue  # a replica that led before, or believed it led while Redis was away
            delta, seq = delta_in(message["delta"]), message["seq"]
            if delta.full:
                deltas, self._expect = [delta], seq + 1
            elif self._expect == seq:
                deltas.append(delta)
                self._expect = seq + 1
            elif self._expect is not None and seq > self._expect:
                log.warning("live state: deltas %d-%d from %s lost; asking for the whole state",
                            self._expect, seq - 1, self.leader)
                self._expect = None
        if self.role == FOLLOWER and self._expect is None and time.monotonic() - self._asked_at > RESYNC_EVERY_S:
            self._asked_at = time.monotonic()
            self._publish(encode({"resync": self.replica, "to": self.leader}))
        self.applied += len(deltas)
        return deltas

    def send(self, delta: Delta) -> None:
        """As leader: a run's delta, to every follower. With none listening (one worker on Redis)
        nothing is encoded; its number is used all the same, so a replica that subscribes later
        sees a gap and asks for the whole state."""
        if self._listeners() > 1:
            self._publish(encode({"from": self.replica, "seq": self._seq, "delta": delta_out(delta)}))
        self._seq += 1

    def detail(self) -> dict[str, Any]:
        return {"role": self.role, "leader": self.leader, "replica": self.replica}


async def lead(broker: Any, sharing: Sharing, every_s: float = RENEW_S) -> None:
    """Hold or watch the lease (a task on the sidecar's loop, with Redis): renew it while this
    replica holds it, take it once expired, else follow its holder. A lease that cannot be read
    for longer than it lasts (Redis away) makes this replica compute on its own meanwhile. A
    leader shutting down (the task cancelled) hands the lease back, so a follower takes over
    within `every_s` instead of `LEASE_MS`."""
    me, known_at, warned = sharing.replica, time.monotonic(), False
    try:
        while True:
            try:
                sharing.set_leader(await broker.lease(LEASE_KEY, me, LEASE_MS))
                known_at, warned = time.monotonic(), False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next turn tries again
                if not warned:
                    log.warning("live state: cannot read the lease (%s)", exc)
                    warned = True
                if time.monotonic() - known_at > LEASE_MS / 1000:
                    sharing.set_leader(me)
            await asyncio.sleep(every_s)
    finally:
        if sharing.leader == me:
            with contextlib.suppress(Exception):
                await broker.swap(LEASE_KEY, me, None)


def start_sharing(state: Any, broker: Any, replica: str) -> asyncio.Task:
    """On the sidecar's loop: `state` (a `LiveState`, before its `start`) leads or follows over
    `broker`; returns the lease's task."""
    loop = asyncio.get_running_loop()
    sharing = state.share(replica, lambda text: loop.call_soon_threadsafe(broker.publish, STATE_ROOM, text),
                          lambda: broker.listeners)
    return loop.create_task(lead(broker, sharing))
