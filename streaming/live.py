"""Events the sidecar has seen since the last dbt build, so reads include them at once.

The marts are rebuilt by dbt every few minutes; between builds a webhook would be invisible to
`/dashboard/overview` and `/api/workflows`. The REST routes read the marts *plus* this store; once
a dbt build that finished at `ts` covers them, `drop_through(ts)` forgets them.

Each event is a dict: the flat row of `lake/normalized/events` (`NormalizedEvent.to_row()`, with
`payload` decoded to a dict) plus `occurred_at` (naive UTC datetime, the event's own time),
`received_at` (when the sidecar saw it), `workflow_id` (the workflow the sidecar's correlator
puts the event's keys in, or None) and `correlation_keys` (list of key strings).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from cc_events.keys import PRIORITY, CorrelationKey
from cc_events.model import NormalizedEvent

# Bounded: the sidecar must not grow without limit if dbt stops building.
DEFAULT_MAX_EVENTS = 200_000


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


def root_key(keys: Iterable[CorrelationKey]) -> str | None:
    """The workflow id per docs/contract.md §3 over these keys: lowest priority, then smallest md5."""
    import hashlib

    keys = list(keys)
    if not keys:
        return None
    best = min(keys, key=lambda k: (PRIORITY[k.kind], hashlib.md5(k.key.encode()).hexdigest()))
    return best.key


def event_dict(event: NormalizedEvent, received_at: datetime | None = None,
               correlate: Callable[[list[str]], str | None] | None = None) -> dict[str, Any]:
    """A normalized event as `LiveEvents` keeps it (and as the REST helper reads it). Its workflow
    is `correlate(correlation keys)` when given (the sidecar's correlator), else its own root key."""
    row = event.to_row(as_text=False)
    row["occurred_at"] = event.timestamp
    row["received_at"] = _naive_utc(received_at or datetime.now(UTC))
    keys = row["correlation_keys"] = [k.key for k in event.keys]
    if correlate is not None:
        row["workflow_id"] = correlate(keys)
    else:
        row["workflow_id"] = event.workflow.id if event.workflow else root_key(event.keys)
    return row


class LiveEvents:
    """In-memory, thread-safe: webhook handlers add, REST reads and the dbt watcher drop."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self._lock = threading.Lock()
        self._events: OrderedDict[str, dict[str, Any]] = OrderedDict()  # event_id -> event, arrival order
        self._max = max_events
        self.drops = 0  # how many times events were dropped: the live state recomputes after each
        # Bumped by every add and drop: what the reads' caches are keyed on. Not len(), which an
        # add that replaces an event, or one add beside one drop, leaves as it was.
        self.changes = 0

    def add(self, events: list[dict[str, Any]]) -> None:
        """Add (or replace, by event_id: a redelivery or a newer state of the same event)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._lock:
            for event in events:
                event = dict(event)
                event.setdefault("received_at", now)
                event["occurred_at"] = _naive_utc(event["occurred_at"])
                event["received_at"] = _naive_utc(event["received_at"])
                self._events.pop(event["event_id"], None)
                self._events[event["event_id"]] = event
            while len(self._events) > self._max:
                self._events.popitem(last=False)
                self.drops += 1
            self.changes += 1

    def since(self, ts: datetime | None = None) -> list[dict[str, Any]]:
        """Events that occurred at or after `ts` (all when None), oldest first."""
        with self._lock:
            events = list(self._events.values())
        if ts is not None:
            ts = _naive_utc(ts)
            events = [e for e in events if e["occurred_at"] >= ts]
        return sorted(events, key=lambda e: (e["occurred_at"], e["event_id"]))

    def get(self, event_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The events of these ids the store still holds."""
        with self._lock:
            return [e for i in event_ids if (e := self._events.get(i)) is not None]

    def all(self) -> list[dict[str, Any]]:
        """Every event, in arrival order (no sort: cheaper than `since()`)."""
        with self._lock:
            return list(self._events.values())

    def for_workflow(self, workflow_id: str) -> list[dict[str, Any]]:
        with self._lock:
            events = [e for e in self._events.values()
                      if e.get("workflow_id") == workflow_id or workflow_id in (e.get("correlation_keys") or ())]
        return sorted(events, key=lambda e: (e["occurred_at"], e["event_id"]))

    def counts_by_workflow(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(e["workflow_id"] for e in self._events.values() if e.get("workflow_id")))

    def drop_through(self, ts: datetime) -> int:
        """Forget events received at or before `ts` (a dbt build finished then has them); returns how many."""
        ts = _naive_utc(ts)
        with self._lock:
            stale = [eid for eid, e in self._events.items() if e["received_at"] <= ts]
            for eid in stale:
                del self._events[eid]
            if stale:
                self.drops += 1
                self.changes += 1
        return len(stale)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)
