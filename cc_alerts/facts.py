"""What the sidecar sees live and the rules read: deliveries received, duplicates suppressed and
dead letters per source, with their times. Kept in memory for a bounded window (the rules look
back at most `WINDOW_S`); thread-safe (the event loop writes, the monitor's thread reads).

A process without a sidecar (Dagster's) has an empty `Facts`: its rules read the lake only.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from datetime import datetime, timedelta

WINDOW_S = 3600.0
MAX_KEPT = 100_000  # per source and kind: a flood is counted, not kept without bound


class Facts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: dict[str, datetime] = {}
        self._duplicates: dict[str, deque[datetime]] = defaultdict(lambda: deque(maxlen=MAX_KEPT))
        self._dead: dict[str, deque[tuple[datetime, str]]] = defaultdict(lambda: deque(maxlen=MAX_KEPT))

    def received(self, source: str, at: datetime) -> None:
        """A delivery (or pushed sample) from `source` was landed at `at`."""
        with self._lock:
            if source not in self._received or at > self._received[source]:
                self._received[source] = at

    def duplicate(self, source: str, at: datetime) -> None:
        with self._lock:
            self._duplicates[source].append(at)

    def dead_letter(self, source: str, reason: str, at: datetime) -> None:
        with self._lock:
            self._dead[source].append((at, reason))

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
        oldest = since - timedelta(seconds=WINDOW_S)
        for queue in (*self._duplicates.values(), *self._dead.values()):
            while queue and (queue[0][0] if isinstance(queue[0], tuple) else queue[0]) < oldest:
                queue.popleft()
