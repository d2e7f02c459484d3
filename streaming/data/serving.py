"""`Serving`: what the REST routes read, the marts and the app store put together.

Mart reads cached in-process until the marts change (a new snapshot, a new Postgres build) or a
short TTL passes, plus the live events the marts do not have yet, so a webhook is visible at once
(and the host samples the sidecar took, `streaming.samples`, so a host is too).
It also holds the hot tier (`resources/storage/hot.py`: Redis or the embedded hot folder), read-only, and
remembers for a while the live events a build has covered, so the hot tier's hours can be merged
with everything this sidecar has seen. The app builds one in its lifespan and closes it at shutdown.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from resources.storage.hot import HotStore, hot_store, hour_id
from resources.settings import Settings
from streaming.data.app_store import AppStore, app_store_path
from streaming.data.app_store_postgres import PostgresAppStore
from streaming.data.marts import Marts, Row, marts_from_settings, utcnow
from streaming.live import LiveEvents
from streaming.state.workflows import LiveState, Snapshot
from streaming.samples import LiveSamples

log = logging.getLogger(__name__)

# The seeds' TTLs (seconds): the REST spec's `caching:` for overview (30 s) and widget data (60 s);
# the cache service's workflows 60, events 30, instances 300; aggregations 30; entities 60.
TTL = {"overview": 30, "metrics": 30, "widget": 60, "workflows": 60, "events": 30, "instances": 300,
       "dashboards": 60}
# A marts version no build has: the next read syncs the live events with the marts again.
RESYNC = "(resync)"


@dataclass
class _Entry:
    key: Any
    value: Any
    computed_at: float


@dataclass(frozen=True)
class HotHour:
    """One hour of the hot tier, as the REST API counts it."""

    counts: Counter  # (source, event_type, actor_type) -> events
    event_ids: frozenset[str]


def _same_snapshot(a: tuple | None, b: tuple | None) -> bool:
    """Two `Serving.live_key()`s of the same live state snapshot (their live events may differ)."""
    return a is None or b is None or a[1] == b[1]


@dataclass
class LiveView:
    """The live events the marts do not have yet, each with the workflow it belongs to, and the
    live workflow state (`streaming/state/`) they were computed with."""

    events: list[Row]  # new events, oldest first; each has `effective_workflow_id`
    new_workflow_ids: set[str]  # workflows no build has seen
    counts_by_workflow: Counter
    store_size: Any = 0  # `Serving.live_key()` when the view was made: what it is up to date with
    updated: list[Row] = field(default_factory=list)  # newer copies of events the marts have
    state: Snapshot | None = None  # None until the live state is ready

    @property
    def size(self) -> int:
        return len(self.events)


class Serving:
    """What the routes read. Thread-safe; cheap when nothing changed."""

    # A changed live store is merged in at most this often: "at once" for a person, and a cheap
    # read under a webhook flood.
    LIVE_REFRESH_S = 0.1
    # An hour of the hot tier is re-read at most this often (hot_job rewrites it every 5 minutes).
    HOT_REFRESH_S = 2.0
    # Live events a build has covered stay known this long (and at most this many), so the hot
    # tier's hours (at most the last CC_HOT_TTL_S) can be merged with what this sidecar has seen.
    RECENT_S = 2 * 3600
    RECENT_MAX = 200_000

    def __init__(self, marts: Marts, store: AppStore, live: LiveEvents | None = None,
                 settings: Settings | None = None, hot: HotStore | None = None,
                 state: LiveState | None = None, samples: LiveSamples | None = None) -> None:
        self.marts, self.store = marts, store
        self.live = live if live is not None else LiveEvents()
        self.state = state
        self.samples = samples if samples is not None else LiveSamples()  # host samples no build has yet
        self.settings, self.hot = settings, hot
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._synced_version: str | None = None
        self._covered: set[str] = set()  # live event ids the current marts already have
        self._live_view: _Entry | None = None
        self._kept: dict[str, tuple[float, Callable[[], Any]]] = {}  # name -> (ttl_s, compute), see keep()
        self._keeper: threading.Thread | None = None
        self._refreshing: dict[str, float] = {}  # kept name -> when the keeper's current look began
        self._closed = threading.Event()
        self._recent: OrderedDict[str, Row] = OrderedDict()  # live events dropped after a build, by id
        # Reads answered from the cache or computed (the keeper's own recomputations are neither),
        # plain counts the metrics read (`streaming.telemetry`).
        self.cache_hits = self.cache_misses = 0

    @classmethod
    def from_settings(cls, settings: Settings, live: LiveEvents | None = None,
                      state: LiveState | None = None, samples: LiveSamples | None = None) -> Serving:
        store = (PostgresAppStore(settings.pg_url, settings.app_schema) if settings.warehouse == "postgres"
                 else AppStore(app_store_path(settings)))
        return cls(marts_from_settings(settings), store, live, settings, hot_store(settings), state, samples)

    def live_key(self) -> tuple[int, int]:
        """Changes whenever what the live reads show may have: new live events, a new live state."""
        snapshot = self.state.snapshot if self.state is not None else None
        return self.live.changes, snapshot.serial if snapshot is not None else 0

    def close(self) -> None:
        self._closed.set()
        self.marts.close()
        self.store.close()
        if self.hot is not None:
            self.hot.close()

    def cached(self, name: str, ttl_s: float, compute: Callable[[], Any], live: bool = False) -> Any:
        """`compute()` cached until the marts change or `ttl_s` passes (and, with `live`, the live events change)."""
        version = self.sync()
        now = time.monotonic()
        live_key = self.live_key() if live else None
        entry = self._cache.get(name)
        if self._fresh(entry, version, live_key, ttl_s, now):
            self.cache_hits += 1
            return entry.value  # type: ignore[union-attr]
        if ttl_s:  # not the keeper's refresh (ttl 0)
            self.cache_misses += 1
        if live:
            # Labelled with what the compute will see: the live view can lag the store by up to
            # LIVE_REFRESH_S, and an entry labelled newer than it is would stay until its TTL.
            live_key = self.live_view().store_size
        value = compute()
        with self._lock:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[name] = _Entry((version, live_key), value, now)
        return value

    def _fresh(self, entry: _Entry | None, version: str | None, live_key: tuple | None, ttl_s: float, now: float,
               live_refresh_s: float = LIVE_REFRESH_S) -> bool:
        """Computed from this build, within its TTL, and from these live reads: the same live events
        and snapshot, or new live events for less than `live_refresh_s` (a burst of webhooks is not a
        recomputation each). Never a snapshot before the current one: a client told of a workflow's
        change (`workflow.updated`) that reads at once must get it (the page's tiles stood still)."""
        return entry is not None and entry.key[0] == version and now - entry.computed_at < ttl_s and (
            entry.key[1] == live_key or (now - entry.computed_at < live_refresh_s and _same_snapshot(entry.key[1], live_key)))

    # bodies kept ready -------------------------------------------------------------------------------
    # How often the keeper looks for a new build or new live events.
    KEEP_EVERY_S = 0.02
    # How long reads may get the body the keeper is replacing, at most.
    REFRESH_GRACE_S = 5.0

    def keep(self, name: str, ttl_s: float, compute: Callable[[], Any]) -> None:
        """Keep `cached(name, ttl_s, compute, live=True)` fresh from a background thread: recomputed
        when the marts change, when live events arrive (at most every LIVE_REFRESH_S / 2) and before
        `ttl_s` runs out, so that `ready(name)` finds it and a read does no work at all."""
        with self._lock:
            self._kept[name] = (ttl_s, compute)
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_fresh, name="serving-keeper", daemon=True)
                self._keeper.start()

    def ready(self, name: str) -> Any | None:
        """What `cached(name, ...)` would return, if that needs no work (no query, no I/O); else None.

        Judged against the marts version the keeper last saw (it looks every KEEP_EVERY_S). While
        the keeper recomputes the body, the one it replaces: a new build's first queries open a
        cold file (0.4-1.5 s at 10M events, bench_rest), and no read should wait for that."""
        kept, entry, now = self._kept.get(name), self._cache.get(name), time.monotonic()
        if kept is None or entry is None:
            return None
        if self._fresh(entry, self._synced_version, self.live_key(), kept[0], now):
            self.cache_hits += 1
            return entry.value
        began = self._refreshing.get(name)
        if began is not None and now - began < self.REFRESH_GRACE_S and now - entry.computed_at < kept[0]:
            self.cache_hits += 1
            return entry.value
        return None

    def _keep_fresh(self) -> None:
        while not self._closed.wait(self.KEEP_EVERY_S):
            # Until this look is over (a new build's sync included), reads get the bodies there are.
            self._refreshing = dict.fromkeys(self._kept, time.monotonic())
            try:
                self._keep_once()
            finally:
                self._refreshing = {}

    def _keep_once(self) -> None:
        try:
            version = self.sync()
        except Exception:  # the marts are unreachable for now: the reads will say so
            return
        for name, (ttl_s, compute) in list(self._kept.items()):
            if version is None or self._fresh(self._cache.get(name), version, self.live_key(), 0.9 * ttl_s,
                                              time.monotonic(), self.LIVE_REFRESH_S / 2):
                continue  # no build yet, or still fresh for a while
            try:
                self.cached(name, 0, compute, live=True)
            except Exception:  # computed again on the next read, which reports what is wrong
                if not self._closed.is_set():
                    log.exception("keeping %s ready failed", name)

    # live events -------------------------------------------------------------------------------------
    def sync(self) -> str | None:
        """Notice a rebuilt warehouse: forget the live events it now has. Returns the marts' version."""
        version = self.marts.version()
        if version == self._synced_version:
            return version
        with self._lock:
            if version == self._synced_version:
                return version
            self._live_view = None
            self._covered = set()
            if version is not None:
                self._drop_covered()
            self._synced_version = version
        return version

    def resync(self) -> None:
        """Live events the marts may hold were added (a restarted worker's catch-up,
        `streaming/catchup.py`): the next read asks the marts again, as after a build."""
        with self._lock:
            self._synced_version = RESYNC

    def _drop_covered(self) -> None:
        events = self.live.since()
        if not events:
            return
        ids = [e["event_id"] for e in events]
        found = {r["event_id"] for r in self.marts.query(
            "select event_id from fct_workflow_events where " + self.marts.in_list("event_id", "ids"), {"ids": ids})}
        missing = [e["received_at"] for e in events if e["event_id"] not in found]
        # Forget everything received before the first event the build does not have; any later
        # event it has stays in `_covered` so it is not counted twice.
        cutoff = min(missing) - timedelta(microseconds=1) if missing else max(e["received_at"] for e in events)
        self.live.drop_through(cutoff)
        self._remember([e for e in events if e["received_at"] <= cutoff])
        self._covered = found

    def _remember(self, events: list[Row]) -> None:
        """Keep dropped live events for the hot tier's merge (called under `_lock`)."""
        for event in events:
            self._recent.pop(event["event_id"], None)
            self._recent[event["event_id"]] = event
        horizon = utcnow() - timedelta(seconds=self.RECENT_S)
        while self._recent and (len(self._recent) > self.RECENT_MAX
                                or next(iter(self._recent.values()))["received_at"] < horizon):
            self._recent.popitem(last=False)

    def seen_since(self, ts: datetime) -> list[Row]:
        """Every event this sidecar has seen occur at or after `ts` in the last `RECENT_S`, whether a
        build has covered it yet or not; oldest first."""
        self.sync()
        with self._lock:
            seen = {e["event_id"]: e for e in self._recent.values() if e["occurred_at"] >= ts}
        seen.update((e["event_id"], e) for e in self.live.since(ts))
        return sorted(seen.values(), key=lambda e: (e["occurred_at"], e["event_id"]))

    # the hot tier ------------------------------------------------------------------------------------
    def hot_hour(self, hour: datetime) -> HotHour | None:
        """The hot tier's `hour` as counts by (source, event_type, actor_type) and its event ids;
        None when the tier does not hold the hour (not written, expired, or no hot tier at all)."""
        if self.hot is None:
            return None

        def read() -> HotHour | None:
            try:
                events = self.hot.read_hour(hour)
            except Exception as exc:  # the hot tier only speeds reads up: without it the marts answer
                log.warning("the hot tier (%s) did not answer for %s: %s", self.hot.backend, hour_id(hour), exc)
                return None
            if events is None:
                return None
            return HotHour(Counter((e.get("source"), e.get("event_type"), e.get("actor_type")) for e in events),
                           frozenset(e["event_id"] for e in events))

        return self.cached(json.dumps(["hot", hour_id(hour)]), self.HOT_REFRESH_S, read)

    def live_view(self) -> LiveView:
        """The live events not in the marts, each in the workflow the live state puts it in."""
        version = self.sync()
        key, now = self.live_key(), time.monotonic()
        view = self._live_view
        if view is not None and view.key == (version, key) and now - view.computed_at < 1.0:
            return view.value
        if (view is not None and view.key[0] == version and now - view.computed_at < self.LIVE_REFRESH_S
                and _same_snapshot(view.key[1], key)):
            return view.value
        state = self.state.snapshot if self.state is not None and self.state.ready else None
        events, updated = [], []
        counts: Counter = Counter()
        for event in self.live.since():
            if event["event_id"] in self._covered:
                continue
            event = dict(event)
            workflow_id = state.workflow_of.get(event["event_id"]) if state is not None else None
            event["effective_workflow_id"] = workflow_id or event.get("workflow_id")
            if state is not None and event["event_id"] in state.updates:
                updated.append(event)
                continue
            events.append(event)
            if event["effective_workflow_id"]:
                counts[event["effective_workflow_id"]] += 1
        if state is not None:
            new_workflows = {w for w in state.rows if w not in state.hidden}
        else:
            new_workflows = {e["effective_workflow_id"] for e in events if e["effective_workflow_id"]}
        result = LiveView(events, new_workflows, counts, key, updated, state)
        self._live_view = _Entry((version, key), result, now)
        return result
