"""Historical queries across tiers: one interface that reads warm for recent days and the cold and
archive tiers for older ones, so callers (the sidecar's REST API, reports) never pick a tier.

    reader = HistoryReader(Settings.from_env())
    reader.event_volume(datetime(2026, 1, 1), datetime(2026, 12, 1), grain="day")  # -> rows
    reader.events(start, end, source="github", actor_id="github:alice", limit=100)

A window is split at `today - CC_WARM_DAYS`: the part after it comes from the warm tables (the
serving snapshot in the embedded setup, never the warehouse file dbt may hold; `CC_PG_SCHEMA` on
Postgres), the part before it from the archive months and the cold days not archived yet, read
through the same `TierStore` whether the lake is a folder or S3. Every filter is a bound value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import duckdb
import psycopg
import pyarrow as pa
from psycopg import sql

from resources.lake import EVENTS_SCHEMA
from resources.serving import snapshot_path
from resources.settings import Settings
from resources.tiers import ROLLUP, TierStore

Grain = Literal["hour", "day"]
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


def _rows(cursor_rows: list[tuple], names: list[str]) -> list[Row]:
    return [dict(zip(names, r, strict=True)) for r in cursor_rows]


class HistoryReader:
    def __init__(self, settings: Settings, today: date | None = None) -> None:
        self.settings = settings
        self.today = today or datetime.now(UTC).date()
        self.tiers = TierStore.from_settings(settings)

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

    # Warm ----------------------------------------------------------------------------------------
    def _warm(self, query: str, params: dict[str, Any]) -> tuple[list[tuple], list[str]]:
        """Run `query` (with `{schema}` for the warm tables' schema, `%(name)s` parameters)."""
        if self.settings.warehouse == "postgres":
            with psycopg.connect(self.settings.pg_url) as conn:
                cur = conn.execute(sql.SQL(query).format(schema=sql.Identifier(self.settings.pg_schema)), params)
                return cur.fetchall(), [d.name for d in cur.description]
        path = snapshot_path(self.settings)
        if not path.exists():
            return [], []
        names = list(params)
        duck_query = query.replace("{schema}", "main")
        for name in names:
            duck_query = duck_query.replace(f"%({name})s", f"${name}")
        with duckdb.connect(str(path), read_only=True) as con:
            present = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
            if "fct_event_volume_1d" not in present:
                return [], []
            cur = con.execute(duck_query, params)
            return cur.fetchall(), [d[0] for d in cur.description]

    # History (cold + archive) --------------------------------------------------------------------
    def history_relation(self, con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                         name: str = "history_events", table: str = "events") -> None:
        """Register `name` in `con`: the cold and archive events (or their hourly rollup) of
        [start, end), pruned to the files of those days."""
        paths = self.tiers.history_files(start.date(), (end - timedelta(microseconds=1)).date() + timedelta(days=1),
                                         table)
        self.tiers.register(con, name, paths, EVENTS_SCHEMA if table == "events" else ROLLUP_SCHEMA)

    def _history(self, query: str, start: datetime, end: datetime, params: dict[str, Any], table: str = "events"):
        with duckdb.connect() as con:
            self.history_relation(con, start, end, table=table)
            cur = con.execute(query, {**params, "start": start, "end": end})
            return cur.fetchall(), [d[0] for d in cur.description]

    # Queries -------------------------------------------------------------------------------------
    def event_volume(self, start: datetime, end: datetime, grain: Grain = "day",
                     source: str | None = None) -> list[Row]:
        """Events per `grain` bucket and source in [start, end), oldest first, with the tier read."""
        if grain not in ("hour", "day"):
            raise ValueError("grain must be hour or day")
        out: list[Row] = []
        filters = {"source": source}
        for segment in self.plan(start, end):
            if segment.tier == "warm":
                table = "fct_event_volume_1d" if grain == "day" else "fct_event_volume_1m"
                rows, names = self._warm(
                    f"select date_trunc('{grain}', bucket_start_at) as bucket_start_at, source, "  # noqa: S608
                    f"sum(event_count)::bigint as event_count from {{schema}}.{table} "
                    f"where bucket_start_at >= %(start)s and bucket_start_at < %(end)s {_where(filters, '%')} "
                    "group by 1, 2 order by 1, 2", {**_given(filters), "start": segment.start, "end": segment.end})
            else:
                # The cold and archive tiers keep an hourly rollup beside the events: a year of
                # volume reads ~9k rows per month instead of every event.
                rows, names = self._history(
                    f"select date_trunc('{grain}', bucket_start_at) as bucket_start_at, source, "  # noqa: S608
                    "sum(event_count)::bigint as event_count from history_events "
                    f"where bucket_start_at >= $start and bucket_start_at < $end {_where(filters, '$')} "
                    "group by 1, 2 order by 1, 2", segment.start, segment.end, _given(filters), table=ROLLUP)
            out += [{**r, "tier": segment.tier} for r in _rows(rows, names)]
        return out

    def events(self, start: datetime, end: datetime, *, source: str | None = None,
               event_type: str | None = None, actor_id: str | None = None, limit: int = 100) -> list[Row]:
        """The first `limit` events in [start, end) matching the filters, oldest first."""
        out: list[Row] = []
        filters = {"source": source, "event_type": event_type, "actor_id": actor_id}
        for segment in self.plan(start, end):
            want = limit - len(out)
            if want <= 0:
                break
            if segment.tier == "warm":
                rows, names = self._warm(
                    f"select {', '.join(EVENT_COLUMNS)} from {{schema}}.fct_events "  # noqa: S608
                    f"where event_at >= %(start)s and event_at < %(end)s {_where(filters, '%')} "
                    "order by event_at, event_id limit %(limit)s",
                    {**_given(filters), "start": segment.start, "end": segment.end, "limit": want})
            else:
                rows, names = self._history(
                    f"select {', '.join(EVENT_COLUMNS)} from history_events "  # noqa: S608
                    f"where event_at >= $start and event_at < $end {_where(filters, '$')} "
                    "order by event_at, event_id limit $limit", segment.start, segment.end,
                    {**_given(filters), "limit": want})
            out += [{**r, "tier": segment.tier} for r in _rows(rows, names)]
        return out


def _given(filters: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in filters.items() if v is not None}


def _where(filters: dict[str, str | None], style: str) -> str:
    """`and column = <parameter>` for each filter given (names are ours, values stay bound), so the
    conditions are plain equalities the Parquet reader can push down."""
    marker = (lambda k: f"%({k})s") if style == "%" else (lambda k: f"${k}")
    return " ".join(f"and {k} = {marker(k)}" for k in _given(filters))
