"""`LiveState`: each affected workflow's `fct_workflows` row, recomputed as its events arrive.

Between two dbt builds the sidecar knows the last build (the marts) and what arrived since (the
live events and the records their deliveries carried). For every workflow a live event touches it
runs dbt's own `fct_workflows` SQL (`streaming/state/compiled.py`, `engine.py`) over
- that workflow's events: the build's rows of every built workflow it now spans, under its new id,
  with the live copies replacing theirs (the latest copy of an event counts) and the new ones added;
- its keys: the build's key map for those workflows plus the live events' keys;
- the raw entity tables (Linear issues, pull requests, CI runs, agent sessions, ...) as the lake
  has them plus the records the live deliveries carried;
and keeps the row. The live workflow id is the sidecar's correlation root (`streaming/correlate.py`),
which is the id dbt gives the workflow once it has the events. The build's rows of the workflows
it spans are `hidden`: the REST API lists the live row instead. Cron health (`fct_cron_job_totals`)
is run the same way when a delivery carries a cron run.

One worker thread does the work, coalescing arrivals (`COALESCE_S`): the webhook path only notes
what arrived (`note`), so the live state costs the stream almost nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from cc_events.delivered import carried_rows
from cc_events.keys import PRIORITY
from resources.settings import Settings
from resources.storage.lake import raw_schema
from streaming.correlate import Correlator
from streaming.data.marts import Marts, MartsUnavailable
from streaming.live import LiveEvents
from streaming.state import compiled
from streaming.state.engine import ChainRunner, below_the_loop
from streaming.state.layered import GONE
from streaming.state.shared import FOLLOWER, LEADER, Sharing
from streaming.state.snapshot import Delta, Snapshot

log = logging.getLogger(__name__)

Row = dict[str, Any]
# Arrivals within this long are computed together; under a flood, runs are spaced so that the
# worker takes at most about 1/(BUSY_SHARE + 1) of a core (its runs hold the GIL part of the time).
# The time since the last run ended counts towards the spacing: an arrival after a quiet spell is
# computed after COALESCE_S, not BUSY_SHARE runs later.
COALESCE_S = 0.05
BUSY_SHARE = 20
# ... but never more than this between runs: a long run (a backlog after a flood) would otherwise
# put the next one minutes away, and a workflow's update must reach its subscribers within a second
# (the seeds' sub-second dashboard): at 2 s, a run of 80 ms held the next arrival for 1.6 s.
MAX_SPACING_S = 0.75
# How often the worker looks for a new build when nothing arrives.
IDLE_S = 0.5
# Carried records are kept this long (a build normally has them long before; an older copy
# beside the lake's is harmless: the latest-copy rule picks one).
CARRIED_KEEP_S = 6 * 3600
CARRIED_MAX = 100_000


def fct_event_row(event: Row, workflow_id: str) -> Row:
    """A live event as a `fct_workflow_events` row (the columns `BOUNDARY_COLUMNS` names)."""
    keys = list(event.get("correlation_keys") or [])
    return {
        "event_id": event["event_id"], "workflow_id": workflow_id, "source": event["source"],
        "event_type": event["event_type"], "actor_id": event.get("actor_id"), "actor_name": event.get("actor_name"),
        "actor_type": event.get("actor_type"), "actor_instance_id": event.get("actor_instance"),
        "target_type": event.get("target_type"), "target_id": event.get("target_id"),
        "target_title": event.get("target_title"), "target_url": event.get("target_url"),
        "correlation_id": event.get("correlation_id"), "parent_event_id": event.get("parent_event_id"),
        "correlation_key_count": len(keys), "correlation_keys": ", ".join(sorted(keys)),
        "tags": event.get("tags"), "payload": event.get("payload"), "event_at": event["occurred_at"],
        "ingested_at": event.get("received_at"),
    }


class LiveState:
    def __init__(self, settings: Settings, marts: Marts, correlator: Correlator, live: LiveEvents) -> None:
        self.settings, self.marts, self.correlator, self.live = settings, marts, correlator, live
        self.snapshot = Snapshot()
        self.status = "compiling"  # compiling | ready | failed: <reason>
        self._runner: ChainRunner | None = None
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._dirty: set[str] = set()  # live event ids arrived since the last run
        self._all_dirty = True
        self._carried: dict[str, OrderedDict[Any, tuple[float, Row]]] = {}
        # Per source, the records noted since the last run (id -> row; None: let go): a run applies
        # these to the live tables instead of writing all the carried records again.
        self._carried_changed: dict[str, dict[Any, Row | None]] = {}
        self._cron_sources: set[str] = set()
        self._listeners: list[Callable[[list[Row], Row | None], None]] = []
        self._base: dict[str, dict[str, list[Row]]] = {}  # per version: built id -> events/keys/costs rows
        self._base_rows: dict[str, Row] = {}  # built id -> its fct_workflows row
        self._base_cycles: tuple[str | None, dict[str, Decimal]] | None = None  # (version, cycles)
        self.sharing: Sharing | None = None  # with replicas: lead or follow (`share`)
        self._tables_stale = False  # the chain's live tables missed carried records while following
        self._seen_drops = -1
        self._groups: dict[str, dict[str, Row]] = {}  # live workflow id -> its live events by id
        self._workflow_of: dict[str, str] = {}  # live event id -> its live workflow id
        self._hidden_of: dict[str, tuple[str, ...]] = {}  # live workflow id -> the built ids it hides
        self._thread: threading.Thread | None = None
        self._running = False
        self._sources_loaded = False
        self._last_run_s = 0.0
        self._last_end = 0.0  # time.monotonic() when the last computing run ended
        # Arrival (monotonic) of the oldest event noted and not yet taken by a run, and of the oldest
        # the running computation took: how far the live state lags (`lag_s`, a metric).
        self._waiting_since: float | None = None
        self._computing_since: float | None = None

    # --- life ----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="live-state", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._runner is not None:
            self._runner.close()

    def share(self, replica: str, publish: Callable[[str], None], listeners: Callable[[], int] = lambda: 2) -> Sharing:
        """With replicas (Redis), before `start`: one computes, the others apply its deltas
        (`streaming/state/shared.py`); `publish(text)` sends on the broker's state room."""
        self.sharing = Sharing(replica, publish, self._wake.set, listeners)
        return self.sharing

    def on_change(self, listener: Callable[[list[Row], Row | None], None]) -> None:
        """`listener(changed workflow rows, cron totals if they changed)`, called from the worker."""
        self._listeners.append(listener)

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def detail(self) -> dict[str, Any]:
        """For `/healthz`: whether arrivals wait to be computed, and what the last run computed."""
        snapshot = self.snapshot
        with self._lock:
            pending = bool(self._dirty or self._carried_changed or self._wake.is_set() or self._running)
        return {"pending": pending, "computed_events": len(snapshot.workflow_of), "workflows": len(snapshot.rows),
                "last_run_ms": round(self._last_run_s * 1000, 1),
                **(self.sharing.detail() if self.sharing is not None else {})}

    def lag_s(self) -> float:
        """How long the oldest event the state has not computed yet has waited; 0 when caught up."""
        oldest = min((t for t in (self._computing_since, self._waiting_since) if t is not None), default=None)
        return 0.0 if oldest is None else max(0.0, time.monotonic() - oldest)

    # --- in (the webhook path: cheap) ---------------------------------------------------------------------
    def note(self, event_ids: Iterable[str], carried: Iterable[tuple[str, Row]] = ()) -> None:
        """Events just added to the live store, and the raw rows (`(dbt source name, row)`) their
        deliveries carried."""
        now = time.monotonic()
        wanted = self._runner.schemas if self._runner is not None else None
        with self._lock:
            if self._waiting_since is None:
                self._waiting_since = now
            self._dirty.update(event_ids)
            for source, row in carried:
                if wanted is not None and source not in wanted:
                    continue  # a table no live model reads (commits, reviews, ...)
                rows = self._carried.setdefault(source, OrderedDict())
                # One copy per record, the one the latest-copy rule would pick between the two
                # by `updated_at`, then by arrival; older copies are in the lake or superseded.
                key = row.get("id")
                held = rows.get(key)
                if held is not None and _newer(held[1], row):
                    continue
                rows.pop(key, None)
                rows[key] = (now, row)
                changes = self._carried_changed.setdefault(source, {})
                changes[key] = row
                while len(rows) > CARRIED_MAX or next(iter(rows.values()))[0] < now - CARRIED_KEEP_S:
                    changes[rows.popitem(last=False)[0]] = None
        if self.sharing is None or self.sharing.role != FOLLOWER:  # a follower's turns are the leader's deltas
            self._wake.set()

    # --- the worker ----------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Compile the chain and open its DuckDB: what the worker does first, and what a caller
        running `refresh()` on its own thread (the bench, the tests) does instead of `start()`."""
        models = compiled.ensure(self.settings)
        schemas = {s: raw_schema(raw_table(s)) for s in models.sources}
        self._runner = ChainRunner(models, schemas, self.settings.data_dir)
        self._cron_sources = _sources_of(models, "fct_cron_job_totals")

    def _work(self) -> None:
        below_the_loop()
        try:
            self.prepare()
        except Exception as exc:  # the build's state is still served; the live one says why not
            log.exception("the live workflow state is unavailable")
            self.status = f"failed: {exc}"
            return
        self.status = "ready"
        while not self._closed.is_set():
            woken = self._wake.wait(IDLE_S)  # else: only a look for a new build
            if self._closed.is_set():
                return
            if self.sharing is not None:
                self._wake.clear()
                try:
                    if self._share_turn():
                        continue
                except Exception:  # noqa: BLE001 - the next message or run tries again
                    log.exception("applying the leader's live state failed")
            if woken:
                self._running = True
                self._wake.clear()
                spacing = BUSY_SHARE * self._last_run_s - (time.monotonic() - self._last_end)
                time.sleep(min(MAX_SPACING_S, max(COALESCE_S, spacing)))
            started = time.monotonic()
            with self._lock:  # what this run computes: everything noted so far
                self._computing_since, self._waiting_since = self._waiting_since, None
            computed = True
            try:
                computed = self.refresh()
            except MartsUnavailable:
                pass
            except Exception:  # noqa: BLE001 - the next arrival tries again
                log.exception("computing the live workflow state failed")
            finally:
                self._running = False
                self._computing_since = None
                # The spacing is the share of a core the runs take: a look that found nothing to
                # compute (a slow marts version read on a busy host) must not delay the next arrival.
                if computed:
                    self._last_end = time.monotonic()
                    self._last_run_s = self._last_end - started

    def _share_turn(self) -> bool:
        """With replicas: as follower, apply the leader's deltas (True: nothing to compute here);
        as leader, rebuild what following let go of, and answer a follower that lost track."""
        sharing = self.sharing
        deltas = sharing.take()
        if sharing.role == FOLLOWER:
            with self._lock:  # arrivals are the leader's to compute; a promotion recomputes them all
                self._dirty, self._carried_changed, self._waiting_since = set(), {}, None
            self._all_dirty = self._tables_stale = True
            self.correlator.merged()
            for delta in deltas:
                self._install(delta, self.snapshot)
            return True
        if sharing.promoted:
            sharing.promoted, self._all_dirty = False, True
            if self._tables_stale and self._runner is not None:
                with self._lock:
                    carried = {s: {k: row for k, (_, row) in rows.items()} for s, rows in self._carried.items()}
                for source in self._runner.schemas:
                    self._runner.replace_live_rows(source, carried.get(source, {}))
                self._tables_stale = False
        if sharing.whole_due:
            sharing.whole_due = False
            sharing.send(Delta.whole(self.snapshot))
        return False

    def refresh(self) -> bool:
        """Recompute what changed (everything, after a new build or dropped live events); False when
        nothing arrived and no build came, so there was nothing to compute."""
        runner = self._runner
        if runner is None:
            return False
        version = self.marts.version()
        with self._lock:
            dirty_ids, self._dirty = self._dirty, set()
            carried_changed, self._carried_changed = self._carried_changed, {}
            any_cron = any(self._carried.get(s) for s in self._cron_sources)
        previous = self.snapshot
        drops = self.live.drops
        merged = self.correlator.merged()
        full = (self._all_dirty or version != previous.version or drops != self._seen_drops or merged is None
                or not self._sources_loaded)
        if not (full or dirty_ids or carried_changed or merged):
            return False  # nothing arrived, no new build: the snapshot stands (and the reads' caches)
        if version != previous.version or not self._sources_loaded:
            self._sources_loaded = True
            # The new build's key map: live events it does not have join what it built.
            self.correlator.rejoin(e.get("correlation_keys") or () for e in self.live.all())
            self.correlator.merged()  # everything is recomputed below
            runner.load_sources()
            self._base, self._base_rows, self._base_cycles = {}, {}, None
        self._all_dirty, self._seen_drops = False, drops
        for source, changes in carried_changed.items():
            if source in runner.schemas:
                runner.change_live_rows(source, changes)

        groups, workflow_of = self._groups, self._workflow_of
        root = self.correlator.root
        if full:
            groups.clear()
            workflow_of.clear()
            self._hidden_of.clear()
            arrived = self.live.all()
        else:
            arrived = self.live.get(dirty_ids)
        affected: set[str] = set()
        moved: dict[str, str] = {}  # event id -> its workflow now, for the snapshot's map
        for event in arrived:
            keys = event.get("correlation_keys") or ()
            if not keys:
                continue
            workflow_id, old = root(keys[0]), workflow_of.get(event["event_id"])
            if old is not None and old != workflow_id:
                groups.get(old, {}).pop(event["event_id"], None)
                affected.add(old)
            groups.setdefault(workflow_id, {})[event["event_id"]] = event
            workflow_of[event["event_id"]] = moved[event["event_id"]] = workflow_id
            affected.add(workflow_id)
        for gone in merged or ():
            events = groups.pop(gone, None)
            if events:
                target = root(gone)
                groups.setdefault(target, {}).update(events)
                workflow_of.update(dict.fromkeys(events, target))
                moved.update(dict.fromkeys(events, target))
                affected.update((gone, target))
        # A carried record (a PR, an issue, a CI run) comes with its delivery's events, which name
        # its key: their workflows are the ones it can change, and they are in `affected` already.
        # Only an affected workflow can have lost its events: the run costs what arrived, not the
        # whole window (`streaming/state/layered.py`).
        for w in [w for w in affected if w in groups and not groups[w]]:
            del groups[w]
        compute = sorted(w for w in affected if w in groups)
        spans = self._spans(set(compute), version)  # live id -> built ids it covers
        new_updates: set[str] = set()
        computed: dict[str, Row] = {}
        if compute:
            computed = self._compute(compute, spans, version, new_updates)
        cron_totals = previous.cron_totals if not full else None
        if (full or carried_changed.keys() & self._cron_sources) and any_cron:
            cron_totals = runner.query("select * from fct_cron_job_totals")[0]

        base = Snapshot() if full else previous
        updates_added = sorted(new_updates - base.updates)
        updates = base.updates.updated(updates_added)
        counts = {w: (sum(1 for e in groups[w] if e not in updates) if w in computed else GONE) for w in affected}
        hidden_changes: dict[str, Any] = {}
        for w in affected:
            for b in self._hidden_of.pop(w, ()):
                hidden_changes.setdefault(b, GONE)
        for w in computed:
            if spans.get(w):
                self._hidden_of[w] = tuple(spans[w])
                hidden_changes.update(dict.fromkeys(spans[w], True))
        added_hidden = [b for b, v in hidden_changes.items() if v is not GONE and b not in base.hidden]
        removed_hidden = [b for b, v in hidden_changes.items() if v is GONE and b in base.hidden]
        moved = {e: w for e, w in moved.items() if base.workflow_of.get(e) != w}
        changed = [w for w, r in computed.items() if previous.rows.get(w) != r]
        removed = [w for w in affected if w not in computed and w in previous.rows]
        if not (full or changed or removed or added_hidden or removed_hidden or updates_added
                or moved or cron_totals != previous.cron_totals):
            return True  # nothing a read shows changed: keep the snapshot (and the reads' cached bodies)
        delta = Delta(full, version, {w: computed.get(w, GONE) for w in affected}, added_hidden, removed_hidden,
                      {**dict.fromkeys(removed_hidden, GONE), **self._hidden_rows(added_hidden, version)},
                      updates_added, counts, moved, cron_totals)
        self._install(delta, previous)
        if self.sharing is not None and self.sharing.role == LEADER:
            self.sharing.send(delta)
        return True

    def _install(self, delta: Delta, previous: Snapshot) -> None:
        """The next snapshot, from this replica's run or its leader's (`streaming/state/shared.py`)."""
        self.snapshot = delta.apply(previous, self._cycles(delta.version))
        changed = delta.changed(previous)
        cron_changed = delta.cron_totals if delta.cron_totals != previous.cron_totals else None
        if changed or cron_changed:
            for listener in self._listeners:
                try:
                    listener(changed, cron_changed)
                except Exception:  # noqa: BLE001 - a listener must not stop the state
                    log.exception("a live state listener failed")

    def _compute(self, compute: list[str], spans: dict[str, list[str]], version: str | None,
                 updates: set[str]) -> dict[str, Row]:
        """Run the chain over these workflows: their `fct_workflows` rows. Adds to `updates` the live
        event ids the build already has."""
        runner, groups = self._runner, self._groups
        base = self._load_base([b for w in compute for b in spans.get(w, ())], version)
        event_rows, key_rows = [], []
        for w in compute:
            live_ids = set(groups[w])
            built = spans.get(w, ())
            for b in built:
                for row in base[b]["events"]:
                    if row["event_id"] in live_ids:
                        updates.add(row["event_id"])
                    else:
                        event_rows.append({**row, "workflow_id": w})
            event_rows.extend(fct_event_row(e, w) for e in groups[w].values())
            seen_keys = set()
            for b in built:
                for row in base[b]["keys"]:
                    seen_keys.add(row["correlation_key"])
                    key_rows.append({**row, "workflow_id": w, "is_workflow_root": row["correlation_key"] == w})
            for e in groups[w].values():
                for key in e.get("correlation_keys") or ():
                    if key not in seen_keys:
                        seen_keys.add(key)
                        kind = key.split(":", 1)[0]
                        key_rows.append({"correlation_key": key, "key_type": kind,
                                         "key_priority": PRIORITY.get(kind), "workflow_id": w,
                                         "is_workflow_root": key == w})
        runner.set_boundary("fct_workflow_events", event_rows)
        runner.set_boundary("int_correlation_keys_linked", key_rows)
        # The same events, as the correlation step lists them (sessions are attributed by them).
        runner.set_boundary("int_events_correlated", event_rows)
        computed = {r["workflow_id"]: r for r in runner.query("select * from fct_workflows")}
        return {w: computed[w] for w in compute if w in computed}

    # --- the build's side ------------------------------------------------------------------------------
    def _spans(self, live_ids: set[str], version: str | None) -> dict[str, list[str]]:
        if version is None:
            return {}
        spans: dict[str, list[str]] = {}
        for built in self.correlator.built_ids():
            w = self.correlator.root(built)
            if w in live_ids:
                spans.setdefault(w, []).append(built)
        return spans

    def _load_base(self, built: list[str], version: str | None) -> dict[str, dict[str, list[Row]]]:
        missing = sorted({b for b in built if b not in self._base})
        if missing and version is not None:
            params = {"ids": missing}
            cond = self.marts.in_list("workflow_id", "ids")
            loaded: dict[str, dict[str, list[Row]]] = {b: {"events": [], "keys": []} for b in missing}
            for part, table in (("events", "fct_workflow_events"), ("keys", "int_correlation_keys_linked")):
                for row in self.marts.query(f"select * from {table} where {cond}", params):
                    loaded[row["workflow_id"]][part].append(row)
            self._base.update(loaded)
        return {b: self._base.get(b, {"events": [], "keys": []}) for b in built}

    def _hidden_rows(self, hidden: Iterable[str], version: str | None) -> dict[str, Row]:
        missing = sorted(b for b in hidden if b not in self._base_rows)
        if missing and version is not None:
            found = {r["workflow_id"]: r for r in self.marts.query(
                "select * from fct_workflows where " + self.marts.in_list("workflow_id", "ids"), {"ids": missing})}
            for b in missing:
                self._base_rows[b] = found.get(b, {})
        return {b: self._base_rows[b] for b in hidden if self._base_rows.get(b)}

    def _cycles(self, version: str | None) -> dict[str, Decimal]:
        held = self._base_cycles
        if held is None or held[0] != version:
            held = self._base_cycles = (version, {} if version is None else {
                r["workflow_id"]: Decimal(str(r["cycle_time_hours"])) for r in self.marts.query(
                    "select workflow_id, cycle_time_hours from fct_workflows where cycle_time_hours is not null")})
        return held[1]


def _newer(held: Row, row: Row) -> bool:
    """Whether the copy held is newer than `row` by `updated_at` (a record without one: never)."""
    a, b = held.get("updated_at"), row.get("updated_at")
    return a is not None and b is not None and str(a) > str(b)


def raw_table(source: str):
    """The `RawTable` of a dbt source name: `linear.issues`, or `webhooks.linear__issues` (the
    records deliveries carried of `linear/issues`, cc_events/delivered.py)."""
    from cc_events.delivered import DELIVERED_TABLES
    from cc_events.registry import RAW_TABLES

    name, table = source.split(".", 1)
    if name == "webhooks" and "__" in table:
        return DELIVERED_TABLES[tuple(table.split("__", 1))]
    return RAW_TABLES[name, table]


def delivered_source(table: tuple[str, str]) -> str:
    """The dbt source name of the delivered twin of a polled table (`webhooks.linear__issues`)."""
    return f"webhooks.{table[0]}__{table[1]}"


def carried_by(delivery: Any, received_at: datetime) -> list[tuple[str, dict]]:
    """The raw rows a delivery carries (a PR, a Linear issue, a cron run), exactly as the next
    landing writes them (cc_events/delivered.py): the live state runs the staging models over them."""
    try:
        return [(delivered_source(table), row) for table, row in carried_rows(
            delivery.source, delivery.event, delivery.payload, received_at, with_raw=False)]
    except Exception:  # noqa: BLE001 - landed regardless; the next build has it
        log.exception("reading the records %s carries failed", delivery.id)
        return []


def _sources_of(models: compiled.LiveModels, target: str) -> set[str]:
    chain = models.chain(target)
    return {p for m in chain for p in m.parents if p in models.sources}


__all__ = ["LiveState", "Snapshot", "fct_event_row"]
