"""What the sidecar sees live and the rules read: deliveries received, duplicates suppressed and
dead letters per source, with their times. Kept in memory for a bounded window (the rules look
back at most `WINDOW_S`); thread-safe (the event loop writes, the monitor's thread reads).

With replicas, each sees only the deliveries it took, while one of them evaluates the rules: a
`Facts(shared=True)` also keeps what it saw itself since the last `take_new()`, which the sidecar
sends to the other replicas (`streaming/alerting.py`), and `merge` adds what another replica sent.
So every replica holds every replica's facts, the evaluating one and any that takes over from it.

A process without a sidecar (Dagster's) has an empty `Facts`: its rules read the lake only.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

WINDOW_S = 3600.0
MAX_KEPT = 100_000  # per source and kind: a flood is counted, not kept without bound


def _time(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


class Facts:
    def __init__(self, shared: bool = False) -> None:
        self._lock = threading.Lock()
        self._received: dict[str, datetime] = {}
        self._duplicates: dict[str, deque[datetime]] = defaultdict(lambda: deque(maxlen=MAX_KEPT))
        self._dead: dict[str, deque[tuple[datetime, str]]] = defaultdict(lambda: deque(maxlen=MAX_KEPT))
        # This process's own facts since the last `take_new` (only when shared: else nobody takes them).
        self._shared = shared
        self._new_received: dict[str, datetime] = {}
        self._new_duplicates: dict[str, list[datetime]] = defaultdict(list)
        self._new_dead: dict[str, list[tuple[datetime, str]]] = defaultdict(list)

    def received(self, source: str, at: datetime) -> None:
        """A delivery (or pushed sample) from `source` was landed at `at`."""
        with self._lock:
            if source not in self._received or at > self._received[source]:
                self._received[source] = at
                if self._shared:
                    self._new_received[source] = at

    def duplicate(self, source: str, at: datetime) -> None:
        with self._lock:
            self._duplicates[source].append(at)
            if self._shared and len(self._new_duplicates[source]) < MAX_KEPT:
                self._new_duplicates[source].append(at)

    def dead_letter(self, source: str, reason: str, at: datetime) -> None:
        with self._lock:
            self._dead[source].append((at, reason))
            if self._shared and len(self._new_dead[source]) < MAX_KEPT:
                self._new_dead[source].append((at, reason))

    def take_new(self) -> dict[str, Any] | None:
        """What this process saw itself since the last call (None: nothing), for `merge` elsewhere:
        the latest delivery per source, every duplicate and dead letter."""
        with self._lock:
            if not (self._new_received or self._new_duplicates or self._new_dead):
                return None
            new = {"received": self._new_received, "duplicates": dict(self._new_duplicates),
                   "dead_letters": dict(self._new_dead)}
            self._new_received, self._new_duplicates, self._new_dead = {}, defaultdict(list), defaultdict(list)
            return new

    def merge(self, seen: Mapping[str, Any]) -> None:
        """Another process's `take_new()`, as it sent it (times as datetimes or ISO text): added
        to these facts, never to what this process sends on."""
        received = {s: _time(at) for s, at in (seen.get("received") or {}).items()}
        duplicates = {s: [_time(at) for at in times] for s, times in (seen.get("duplicates") or {}).items()}
        dead = {s: [(_time(at), str(reason)) for at, reason in letters]
                for s, letters in (seen.get("dead_letters") or {}).items()}
        with self._lock:
            for source, at in received.items():
                if source not in self._received or at > self._received[source]:
                    self._received[source] = at
            for source, times in duplicates.items():
                self._duplicates[source].extend(times)
            for source, letters in dead.items():
                self._dead[source].extend(letters)

    def last_received(self) -> dict[str, datetime]:
        with self._lock:
            return dict(self._received)

    def duplicates_since(self, since: datetime) -> dict[str, int]:
        with self._lock:
            self._trim(since)
            return {s: sum(1 for t in q if t >= since) for s, q in self._duplicates.items() if q}

    def dead_letters_since(self, since: datetime) -> dict[str, list[tuple[datetime, str]]]:
        with self._lock:
            self._trim(since)
            return {s: [(t, r) for t, r in q if t >= since] for s, q in self._dead.items() if q}

    def _trim(self, since: datetime) -> None:
        # Another replica's facts arrive up to a batch late, so a queue is only roughly in time
        # order: what the window left behind goes from its front, the counts filter by time anyway.
        oldest = since - timedelta(seconds=WINDOW_S)
        for queue in (*self._duplicates.values(), *self._dead.values()):
            while queue and (queue[0][0] if isinstance(queue[0], tuple) else queue[0]) < oldest:
                queue.popleft()
