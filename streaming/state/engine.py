"""Runs the compiled dbt chain (`streaming/state/compiled.py`) in an in-memory DuckDB.

Each model becomes a view over the views of its parents, with dbt's relation names replaced by
local ones: the boundary models (`fct_workflow_events`, `int_correlation_keys_linked`,
`int_events_correlated`) are tables the caller fills with the affected workflows' rows
before each run, and each raw source is `base ∪ live`: the lake's rows as of the last refresh
(`load_sources`) and the rows the deliveries since then carried (what the next ingest will write
to the same raw tables). Not thread-safe: one thread runs it (`LiveState`'s worker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from streaming.state.compiled import LiveModels

log = logging.getLogger(__name__)

# The live state's thread runs below the event loop's priority (a nice value): its runs are DuckDB
# work with the interpreter released, and a core they take while webhooks arrive is a core the
# answers wait for (bench-stream at 1,000 x 100: p99 47 against 51-80 ms, p50 8-9 against 11-13).
# Its runs are spaced to a sliver of a core (`workflows.BUSY_SHARE`); with cores idle, nice changes nothing.
NICE = 10


def below_the_loop() -> None:
    """Lower the calling thread's scheduling priority to `NICE` (Linux; elsewhere it stays)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)

# The boundary tables' columns, as the build writes them (tests/streaming/test_live_state.py
# checks them against a built warehouse, so a model change that adds one is noticed).
BOUNDARY_COLUMNS: dict[str, dict[str, str]] = {
    "fct_workflow_events": {
        "event_id": "varchar", "workflow_id": "varchar", "source": "varchar", "event_type": "varchar",
        "actor_id": "varchar", "actor_name": "varchar", "actor_type": "varchar", "actor_instance_id": "varchar",
        "target_type": "varchar", "target_id": "varchar", "target_title": "varchar", "target_url": "varchar",
        "correlation_id": "varchar", "parent_event_id": "varchar", "correlation_key_count": "bigint",
        "correlation_keys": "varchar", "tags": "varchar", "payload": "varchar", "event_at": "timestamp",
        "ingested_at": "timestamp"},
    "int_correlation_keys_linked": {
        "correlation_key": "varchar", "key_type": "varchar", "key_priority": "bigint", "workflow_id": "varchar",
        "is_workflow_root": "boolean"},
    "int_events_correlated": {
        "event_id": "varchar", "workflow_id": "varchar", "correlation_key_count": "bigint",
        "correlation_keys": "varchar"},
}


def local(name: str) -> str:
    """The in-memory relation for a model, boundary table or source (`linear.issues` → `src_linear__issues`)."""
    return f"src_{name.replace('.', '__')}" if "." in name else name


class ChainRunner:
    def __init__(self, models: LiveModels, source_schemas: Mapping[str, pa.Schema], data_dir: Path) -> None:
        self.models = models
        self.locations = models.locations(data_dir)
        # One thread: a run computes the few workflows that changed, where DuckDB's worker threads
        # cost more to wake and join than they save (two threads took twice the CPU of one per
        # run, a tenth of the sidecar's CPU per webhook at 1,000/s).
        self.con = duckdb.connect(":memory:", config={"threads": 1})
        self.schemas = dict(source_schemas)
        for name, columns in BOUNDARY_COLUMNS.items():
            self._create(name, columns)
        for source in models.sources:
            schema = self.schemas[source]
            for prefix in ("base", "live"):
                self.con.register(f"_empty_{prefix}", schema.empty_table())
                self.con.execute(f'create table "{prefix}_{local(source)}" as select * from "_empty_{prefix}"')
                self.con.unregister(f"_empty_{prefix}")
            self.con.execute(f'create view "{local(source)}" as select * from "base_{local(source)}"'
                             f' union all by name select * from "live_{local(source)}"')
        for model in models.models:
            sql = model.sql
            # Longest first: no relation text is a prefix of another's replacement.
            for parent in sorted(model.parents, key=lambda p: -len(models.relations[p])):
                sql = sql.replace(models.relations[parent], f'"{local(parent)}"')
            self.con.execute(f'create view "{model.name}" as {sql}')

    def _create(self, name: str, columns: Mapping[str, str]) -> None:
        cols = ", ".join(f'"{c}" {t}' for c, t in columns.items())
        self.con.execute(f'create or replace table "{name}" ({cols})')

    def load_sources(self) -> None:
        """Read each raw source's lake files again (after a build: what it was built from, and newer)."""
        for source in self.models.sources:
            table = f"base_{local(source)}"
            try:
                self.con.execute(f'create or replace table "{table}" as select * from {self.locations[source]}')
            except duckdb.IOException:  # no file yet (a source never ingested): no rows
                self.con.register("_empty", self.schemas[source].empty_table())
                self.con.execute(f'create or replace table "{table}" as select * from "_empty"')
                self.con.unregister("_empty")

    def change_live_rows(self, source: str, changes: Mapping[Any, dict[str, Any] | None]) -> None:
        """Apply to a raw source's live rows the records noted since the last run, by `id`: a row
        replaces the one of its id (or is added), None removes it. What it costs is the changes, not
        every record the live window carries."""
        if not changes:
            return
        schema = self.schemas[source]
        table = f'"live_{local(source)}"'
        ids = [k for k in changes if k is not None]
        if ids:
            self.con.register("_ids", pa.table({"id": pa.array(ids, type=schema.field("id").type)}))
            self.con.execute(f'delete from {table} where id in (select id from "_ids")')
            self.con.unregister("_ids")
        if None in changes:
            self.con.execute(f"delete from {table} where id is null")
        times = [f.name for f in schema if pa.types.is_timestamp(f.type) or pa.types.is_date(f.type)]
        rows = [_times(row, times) for row in changes.values() if row is not None]
        if rows:
            self.con.register("_live", pa.Table.from_pylist(rows, schema=schema))
            self.con.execute(f'insert into {table} by name select * from "_live"')
            self.con.unregister("_live")

    def replace_live_rows(self, source: str, rows: Mapping[Any, dict[str, Any]]) -> None:
        """A raw source's live rows, all of them anew (by `id`)."""
        self.con.execute(f'delete from "live_{local(source)}"')
        self.change_live_rows(source, rows)

    def set_boundary(self, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
        columns = BOUNDARY_COLUMNS[name]
        rows = [{c: _plain(r.get(c)) for c in columns} for r in rows]
        self.con.execute(f'delete from "{name}"')
        if not rows:
            return
        arrays = {c: pa.array([r[c] for r in rows], type=_ARROW.get(columns[c].split("(")[0])) for c in columns}
        self.con.register("_rows", pa.table(arrays))
        self.con.execute(f'insert into "{name}" by name select * from "_rows"')
        self.con.unregister("_rows")

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params or [])
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        self.con.close()


_ARROW = {"varchar": pa.string(), "bigint": pa.int64(), "integer": pa.int32(), "boolean": pa.bool_(),
          "timestamp": pa.timestamp("us"), "hugeint": pa.int64(), "decimal": pa.decimal128(28, 4)}


def _times(row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Times that crossed the broker as text (another replica's carried rows) back to times."""
    if not any(isinstance(row.get(n), str) for n in names):
        return row
    row = dict(row)
    for name in names:
        if isinstance(row.get(name), str):
            value = datetime.fromisoformat(row[name])
            row[name] = value.date() if name.endswith("_date") else value
    return row


def _plain(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        from datetime import UTC

        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return value


__all__ = ["BOUNDARY_COLUMNS", "ChainRunner", "local"]
