"""Historical queries across tiers: one interface that reads warm for recent days and the cold and
archive tiers for older ones, so callers (the sidecar's REST API, reports) never pick a tier.

    reader = HistoryReader(Settings.from_env())
    reader.event_volume(datetime(2026, 1, 1), datetime(2026, 12, 1), grain="day")  # -> rows
    reader.event_counts(start, end, grain="hour", filters={"source": ["github", "linear"]})
    reader.events(start, end, source="github", actor_id="github:alice", limit=100)
    reader.marts("select count(*) as n from {schema}.fct_workflows")  # the marts beside the warm tables

A window is split at `today - CC_WARM_DAYS`: the part after it comes from the warm tables (the
serving snapshot in the embedded setup, never the warehouse file dbt may hold; `CC_PG_SCHEMA` on
Postgres), the part before it from the archive months and the cold days not archived yet, read
through the same `TierStore` whether the lake is a folder or S3. Every filter is a bound value.

Every DuckDB read (the serving snapshot and the lake) goes through one in-memory DuckDB per process
(`DuckEngine`), a cursor per query: opening a database per query cost more than most queries.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from resources.settings import Settings
from resources.storage.lake import EVENTS_SCHEMA
from resources.storage.serving import snapshot_path
from resources.storage.tiers import ROLLUP, TierStore

Grain = Literal["hour", "day"]
# What the volume rollups count events by, in every tier.
DIMENSIONS = ("source", "event_type", "actor_type")
ROLLUP_SCHEMA = pa.schema([("bucket_start_at", pa.timestamp("us")), ("source", pa.string()),
                           ("event_type", pa.string()), ("actor_type", pa.string()), ("event_count", pa.int64())])
Row = dict[str, Any]
EVENT_COLUMNS = ["event_id", "event_at", "source", "event_type", "actor_id", "actor_name", "actor_type",
                 "target_type", "target_id", "target_title"]


@dataclass(frozen=True)
class Segment:
    tier: Literal["warm", "history"]
    start: datetime
    end: datetime


@dataclass
class _Attached:
    """One version of the serving snapshot, attached to the engine."""

    alias: str
    version: tuple[int, int, int]  # inode, mtime, size: a build renames a new file over the old
    tables: frozenset[str]
    engine: duckdb.DuckDBPyConnection  # attached to (a forked child makes its own)
    users: int = 0
    current: bool = True


class DuckEngine:
    """The process's one DuckDB (in memory) for history and warm reads, made on first use (and again
    in a forked child); each query gets its own cursor, so threads never share a connection.

    Opening a database per query cost more than the query itself: ~9 ms to open the serving
    snapshot and its thread pool, as much for an in-memory one, the same again to close them (and
    over 100 ms when the machine is busy), and every Parquet footer read again. Kept open, the
    threads, the parsed Parquet footers (`parquet_metadata_cache`, checked against the file's
    mtime) and the attached snapshot serve the next query.

    The serving snapshot is ATTACHed read-only under a new name whenever its file changes, never
    opened with `duckdb.connect(path)`: DuckDB's instance cache hands back the old file's database
    while anything in the process still holds it. A replaced version is detached once its last
    query has ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._snapshots: dict[str, _Attached] = {}
        self._generation = 0
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # A forked child has the parent's DuckDB in its copy of memory but not its threads:
        # destroying it would wait for them forever (at the latest when the child exits), so it is
        # never freed, and the child makes its own on first use.
        if self._con is not None:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._con))
        self._lock, self._con, self._snapshots = threading.Lock(), None, {}

    def _base(self) -> duckdb.DuckDBPyConnection:
        """The engine's own connection (call with the lock held)."""
        if self._con is None:
            self._con = duckdb.connect()
            self._con.execute("set global parquet_metadata_cache = true")
            # The OS page cache already keeps the lake's files; DuckDB's own copy would only pin
            # them in this long-lived process (~1 GB after one year-long scan at 10M events/month).
            self._con.execute("set global enable_external_file_cache = false")
            # A top-N reads the columns it does not sort or filter by only for the rows it keeps
            # ("late materialization") up to this many rows. DuckDB's default, 50, is below the REST
            # API's pages (limit + 1 <= 501 workflows, up to 1000 events), which then read every
            # column of every row they scanned: a cursor page of /api/workflows at 728k workflows
            # took 29 ms, 8 ms with this.
            self._con.execute("set global late_materialization_max_rows = 1001")
        return self._con

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            cursor = self._base().cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    @contextmanager
    def snapshot(self, path: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, frozenset[str]] | None]:
        """A cursor whose default database is the current version of the DuckDB file at `path`
        (read-only), and the tables it has; None when there is no such file."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            with self._lock:
                if (gone := self._snapshots.pop(str(path), None)) is not None:
                    gone.current = False
                    self._detach_unused(gone)
            yield None
            return
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            con = self._base()
            attached = self._snapshots.get(str(path))
            if attached is None or attached.version != version:
                self._generation += 1
                alias = f"snapshot_{self._generation}"
                # ATTACH takes no parameters; the path is ours (settings), quoted as a literal.
                con.execute("attach '{}' as {} (read_only)".format(str(path).replace("'", "''"), alias))
                tables = frozenset(r[0] for r in con.execute(
                    "select table_name from information_schema.tables where table_catalog = ?", [alias]).fetchall())
                if attached is not None:
                    attached.current = False
                    self._detach_unused(attached)
                attached = self._snapshots[str(path)] = _Attached(alias, version, tables, con)
            attached.users += 1
            cursor = con.cursor()
        try:
            cursor.execute(f"use {attached.alias}")
            yield cursor, attached.tables
        finally:
            cursor.close()
            with self._lock:
                attached.users -= 1
                self._detach_unused(attached)

    def _detach_unused(self, attached: _Attached) -> None:
        if not attached.current and attached.users == 0 and attached.engine is self._con:
            self._con.execute(f"detach {attached.alias}")


ENGINE = DuckEngine()


def _rows(cursor_rows: list[tuple], names: list[str]) -> list[Row]:
    return [dict(zip(names, r, strict=True)) for r in cursor_rows]


class HistoryReader:
    def __init__(self, settings: Settings, today: date | None = None) -> None:
        self.settings = settings
        self.today = today or datetime.now(UTC).date()

    @cached_property
    def tiers(self) -> TierStore:
        # Made on first use: a window inside the warm tier never needs the lake (on S3, a client).
        return TierStore.from_settings(self.settings)

    @property
    def warm_from(self) -> datetime:
        return datetime.combine(self.today - timedelta(days=self.settings.warm_days), time())

    def plan(self, start: datetime, end: datetime) -> list[Segment]:
        """Which tier answers which part of [start, end)."""
        split = min(max(self.warm_from, start), end)
        segments = []
        if start < split:
            segments.append(Segment("history", start, split))
        if split < end:
            segments.append(Segment("warm", split, end))
        return segments

    def held_days(self, start: datetime, end: datetime) -> set[date]:
        """Days of [start, end) whose events (and their hourly rollup) the cold or archive tier holds;
        for any other day before `warm_from` the history answers nothing, not zero."""
        return self.tiers.history_index(start.date(), _end_day(end), ROLLUP)[1]

    # Warm ----------------------------------------------------------------------------------------
    def _warm(self, query: str, params: dict[str, Any],
              require: str | None = "fct_event_volume_1d") -> tuple[list[tuple], list[str]]:
        """Run `query` (with `{schema}` for the warm tables' schema, `%(name)s` parameters). With
        `require`, a serving snapshot without that table (no warm build yet) answers no rows."""
        if self.settings.warehouse == "postgres":
            import psycopg  # here: the sidecar imports this module before serving its first webhook
            from psycopg import sql

            with psycopg.connect(self.settings.pg_url) as conn:
                cur = conn.execute(sql.SQL(query).format(schema=sql.Identifier(self.settings.pg_schema)), params)
                return cur.fetchall(), [d.name for d in cur.description]
        path = snapshot_path(self.settings)
        names = list(params)
        duck_query = query.replace("{schema}", "main")
        for name in names:
            duck_query = duck_query.replace(f"%({name})s", f"${name}")
        with ENGINE.snapshot(path) as snapshot:
            if snapshot is None:
                if require is None:
                    raise FileNotFoundError(f"no serving snapshot at {path} yet: run a dbt build (transform_job)")
                return [], []
            con, tables = snapshot
            if require is not None and require not in tables:
                return [], []
            cur = con.execute(duck_query, params)
            return cur.fetchall(), [d[0] for d in cur.description]

    def marts(self, query: str, params: dict[str, Any] | None = None) -> list[Row]:
        """Rows of `query` over the marts, which sit beside the warm tables (the serving snapshot in the
        embedded setup, `CC_PG_SCHEMA` on Postgres): `{schema}.<mart>`, `%(name)s` parameters. No
        marts yet is an error, not an empty answer."""
        rows, names = self._warm(query, params or {}, require=None)
        return _rows(rows, names)

    # History (cold + archive) --------------------------------------------------------------------
    def history_relation(self, con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                         name: str = "history_events", table: str = "events") -> None:
        """Register `name` in `con`: the cold and archive events (or their hourly rollup) of
        [start, end), pruned to the files of those days."""
        paths = self.tiers.history_files(start.date(), _end_day(end), table)
        self.tiers.register(con, name, paths, EVENTS_SCHEMA if table == "events" else ROLLUP_SCHEMA)

    def _history(self, query: str, start: datetime, end: datetime, params: dict[str, Any], table: str = "events"):
        with ENGINE.cursor() as con:
            self.history_relation(con, start, end, table=table)
            cur = con.execute(query, {**params, "start": start, "end": end})
            return cur.fetchall(), [d[0] for d in cur.description]

    # Queries -------------------------------------------------------------------------------------
    def event_volume(self, start: datetime, end: datetime, grain: Grain = "day",
                     source: str | None = None) -> list[Row]:
        """Events per `grain` bucket and source in [start, end), oldest first, with the tier read."""
        return self.event_counts(start, end, grain=grain, by=("source",),
                                 filters={"source": [source]} if source is not None else None)

    def event_counts(self, start: datetime, end: datetime, *, grain: Grain = "hour",
                     by: Sequence[str] = DIMENSIONS, filters: Mapping[str, Sequence[str]] | None = None,
                     days: Collection[date] | None = None) -> list[Row]:
        """Events per `grain` bucket and the `by` columns (of source, event_type, actor_type) in
        [start, end), oldest first, each row with the tier read. `filters` keep the events whose
        column is one of the values given (bound, never SQL); `days` limits the cold and archive part
        to those days (e.g. the `held_days` a caller planned with)."""
        if grain not in ("hour", "day"):
            raise ValueError("grain must be hour or day")
        unknown = set(by) - set(DIMENSIONS) or set(filters or {}) - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"events are counted by {', '.join(DIMENSIONS)}, not {', '.join(sorted(unknown))}")
        groups = ", ".join(by)
        columns = f"date_trunc('{grain}', bucket_start_at) as bucket_start_at{', ' if by else ''}{groups}"
        order = ", ".join(str(n) for n in range(1, len(by) + 2))
        given = {k: list(v) for k, v in (filters or {}).items()}
        out: list[Row] = []
        for segment in self.plan(start, end):
            if segment.tier == "warm":
                table = "fct_event_volume_1d" if grain == "day" else "fct_event_volume_1m"
                where, params = _where(given, "%")
                rows, names = self._warm(
                    f"select {columns}, sum(event_count)::bigint as event_count from {{schema}}.{table} "  # noqa: S608
                    f"where bucket_start_at >= %(start)s and bucket_start_at < %(end)s {where} "
                    f"group by {order} order by {order}", {**params, "start": segment.start, "end": segment.end})
            else:
                # The cold and archive tiers keep an hourly rollup beside the events: a year of
                # volume reads ~9k rows per month instead of every event.
                where, params = _where(given, "$")
                if days is not None:
                    where += " and list_contains($days, cast(bucket_start_at as date))"
                    params["days"] = sorted(days)
                rows, names = self._history(
                    f"select {columns}, sum(event_count)::bigint as event_count from history_events "  # noqa: S608
                    f"where bucket_start_at >= $start and bucket_start_at < $end {where} "
                    f"group by {order} order by {order}", segment.start, segment.end, params, table=ROLLUP)
            out += [{**r, "tier": segment.tier} for r in _rows(rows, names)]
        return out

    def events(self, start: datetime, end: datetime, *, source: str | None = None,
               event_type: str | None = None, actor_id: str | None = None, limit: int = 100) -> list[Row]:
        """The first `limit` events in [start, end) matching the filters, oldest first."""
        out: list[Row] = []
        filters = {k: [v] for k, v in {"source": source, "event_type": event_type, "actor_id": actor_id}.items()
                   if v is not None}
        for segment in self.plan(start, end):
            want = limit - len(out)
            if want <= 0:
                break
            if segment.tier == "warm":
                where, params = _where(filters, "%")
                rows, names = self._warm(
                    f"select {', '.join(EVENT_COLUMNS)} from {{schema}}.fct_events "  # noqa: S608
                    f"where event_at >= %(start)s and event_at < %(end)s {where} "
                    "order by event_at, event_id limit %(limit)s",
                    {**params, "start": segment.start, "end": segment.end, "limit": want})
            else:
                where, params = _where(filters, "$")
                rows, names = self._history(
                    f"select {', '.join(EVENT_COLUMNS)} from history_events "  # noqa: S608
                    f"where event_at >= $start and event_at < $end {where} "
                    "order by event_at, event_id limit $limit", segment.start, segment.end,
                    {**params, "limit": want})
            out += [{**r, "tier": segment.tier} for r in _rows(rows, names)]
        return out


def _end_day(end: datetime) -> date:
    """The first day after the last one [.., end) touches."""
    return (end - timedelta(microseconds=1)).date() + timedelta(days=1)


def _where(filters: Mapping[str, Sequence[str]], style: str) -> tuple[str, dict[str, Any]]:
    """`and column = <parameter>` (or `in (<parameters>)` for several values) for each filter, and
    the parameters: the column names are ours, the values stay bound, and the conditions are plain
    comparisons the Parquet reader can push down. A filter with no values matches nothing."""
    marker = (lambda k: f"%({k})s") if style == "%" else (lambda k: f"${k}")
    conditions, params = [], {}
    for column, values in filters.items():
        if column not in DIMENSIONS and column != "actor_id":
            raise ValueError(f"no filter on {column!r}")
        names = [f"{column}_{n}" for n in range(len(values))]
        params.update(zip(names, values, strict=True))
        if not names:
            conditions.append("and false")
        elif len(names) == 1:
            conditions.append(f"and {column} = {marker(names[0])}")
        else:
            conditions.append(f"and {column} in ({', '.join(marker(n) for n in names)})")
    return " ".join(conditions), params
