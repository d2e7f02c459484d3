"""The Parquet lake: one zstd file per (layer, source, entity, day), replaced atomically.

Layout (docs/contract.md §4): `<root>/<table path>/date=YYYY-MM-DD/part-0.parquet`, e.g.
`raw/github/pull_requests` or `normalized/events`.
A partition is written to a temporary file beside its target and moved over it with
`os.replace`, so a reader sees the old partition or the new one, never half of either, and a
re-run replaces rows instead of adding them. A big partition is written in chunks as its rows
arrive (`PartitionWriter`: one Parquet row group per chunk), so memory is bounded by the chunk,
not by the partition or the window.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cc_events.raw_tables import RawTable

PART_FILE = "part-0.parquet"

# A lake table's folder parts: ("raw", "github", "pull_requests"), ("normalized", "events").
TablePath = tuple[str, ...]

ARROW_TYPES = {
    "str": pa.string(), "int": pa.int64(), "float": pa.float64(), "time": pa.timestamp("us"), "date": pa.date32(),
    "json": pa.string(),
}

LINEAGE_FIELDS = [pa.field("_partition_date", pa.date32()), pa.field("_ingested_at", pa.timestamp("us"))]

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_at", pa.timestamp("us"), nullable=False),
        *[pa.field(name, pa.string()) for name in (
            "source", "event_type", "actor_id", "actor_name", "actor_type", "actor_instance", "target_type",
            "target_id", "target_title", "target_url", "correlation_id", "parent_event_id", "tags", "payload",
        )],
        *LINEAGE_FIELDS,
    ]
)

EVENT_KEYS_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("correlation_key", pa.string(), nullable=False),
        pa.field("key_type", pa.string()),
        pa.field("key_priority", pa.int64()),
        *LINEAGE_FIELDS,
    ]
)

DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("entity", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("raw", pa.string()),
        pa.field("failed_at", pa.timestamp("us")),
        *LINEAGE_FIELDS,
    ]
)


def with_lineage(data: pa.Table, day: date, ingested_at: datetime) -> pa.Table:
    """`data` with its lineage filled in: a row that brings its own `_ingested_at` (or
    `_partition_date`) keeps it, since a delivered record counts as landed when it was received
    (cc_events/delivered.py), whenever its partition is rewritten; the others get the run's.
    Filled column by column in Arrow rather than by copying every row's dict."""
    for name, value in (("_partition_date", day), ("_ingested_at", ingested_at)):
        index = data.schema.get_field_index(name)
        if index < 0:
            continue
        column = data.column(index)
        if column.null_count:
            field = data.schema.field(index)
            data = data.set_column(index, field, pc.fill_null(column, pa.scalar(value, field.type)))
    return data


def raw_schema(table: RawTable) -> pa.Schema:
    return pa.schema(
        [pa.field(c.name, ARROW_TYPES[c.type]) for c in table.columns]
        + [pa.field("_raw", pa.string())]
        + LINEAGE_FIELDS
    )


@dataclass(frozen=True)
class DeadLetter:
    """A record or page that could not be used, kept whole with the reason."""

    source: str
    entity: str
    reason: str
    raw: str


@dataclass(frozen=True)
class WrittenPartition:
    path: Path
    rows: int
    bytes: int
    schema: pa.Schema

    def batches(self, rows: int = 50_000) -> pa.RecordBatchReader:
        """What was written, read back a batch at a time (for loaders that take the same rows elsewhere)."""
        return pa.RecordBatchReader.from_batches(self.schema, pq.ParquetFile(self.path).iter_batches(batch_size=rows))


class PartitionWriter:
    """One partition written a chunk at a time: each `write` appends its rows to a temporary file
    beside the target as a row group, `commit` moves the file over the partition, `abort` (or an
    exception inside `with`) deletes it and leaves the previous partition as it was."""

    def __init__(self, lake: Lake, table: TablePath, day: date, schema: pa.Schema, ingested_at: datetime) -> None:
        self.day, self.schema, self.ingested_at = day, schema, ingested_at
        self.target = lake.partition_dir(table, day) / PART_FILE
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.parent / f".{PART_FILE}.{uuid.uuid4().hex}.tmp"
        self.rows = 0
        self._writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def write_table(self, data: pa.Table) -> None:
        data = with_lineage(data, self.day, self.ingested_at)
        self._writer.write_table(data)
        self.rows += data.num_rows

    def commit(self) -> WrittenPartition:
        self._writer.close()
        os.replace(self.tmp, self.target)
        return WrittenPartition(self.target, self.rows, self.target.stat().st_size, self.schema)

    def abort(self) -> None:
        self._writer.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> PartitionWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.abort()


class Lake:
    """Reads and writes the lake's partitions under `root` (normally `$CC_DATA_DIR/lake`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def table_dir(self, table: TablePath) -> Path:
        return self.root.joinpath(*table)

    def partition_dir(self, table: TablePath, day: date) -> Path:
        return self.table_dir(table) / f"date={day.isoformat()}"

    def write(
        self,
        table: TablePath,
        day: date,
        rows: Sequence[Mapping[str, Any]],
        schema: pa.Schema,
        ingested_at: datetime,
    ) -> WrittenPartition:
        with self.writer(table, day, schema, ingested_at) as writer:
            writer.write(rows)
            return writer.commit()

    def writer(self, table: TablePath, day: date, schema: pa.Schema, ingested_at: datetime) -> PartitionWriter:
        return PartitionWriter(self, table, day, schema, ingested_at)

    def write_dead_letters(
        self, source: str, entity: str, day: date, letters: Iterable[DeadLetter], failed_at: datetime
    ) -> WrittenPartition:
        """Add `letters` to the day's dead letters. A letter the day already holds (the same record
        refused again for the same reason: every run re-reads its window, the normalizer the whole
        day) keeps the time it first failed, so `failed_at` says when a record was first dropped and
        an earlier run's letters are not lost to a later run's."""
        table = ("dead_letter", source, entity)
        existing = self.read(table, day)
        rows = [] if existing is None else existing.drop_columns(["_partition_date"]).to_pylist()
        seen = {(r["source"], r["entity"], r["reason"], r["raw"]) for r in rows}
        for d in letters:
            if (d.source, d.entity, d.reason, d.raw) not in seen:
                seen.add((d.source, d.entity, d.reason, d.raw))
                rows.append({"source": d.source, "entity": d.entity, "reason": d.reason, "raw": d.raw,
                             "failed_at": failed_at, "_ingested_at": failed_at})
        return self.write(table, day, rows, DEAD_LETTER_SCHEMA, failed_at)

    def read(self, table: TablePath, day: date) -> pa.Table | None:
        path = self.partition_dir(table, day) / PART_FILE
        return pq.read_table(path) if path.exists() else None

    def read_all(self, table: TablePath, columns: Sequence[str] | None = None) -> pa.Table | None:
        """Every partition of a table (small dimension tables such as teams or instances), or only
        `columns` of it."""
        files = sorted(self.table_dir(table).glob(f"date=*/{PART_FILE}"))
        if not files:
            return None
        return pa.concat_tables([pq.read_table(f, columns=columns) for f in files], promote_options="default")

    def iter_rows(self, table: TablePath, day: date, columns: Sequence[str] | None = None,
                  rows: int = 10_000) -> Iterator[list[dict]]:
        """A partition's rows (or `columns` of them) as dicts, `rows` at a time; nothing when it is missing."""
        path = self.partition_dir(table, day) / PART_FILE
        if path.exists():
            for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns):
                yield batch.to_pylist()

    def row_count(self, table: TablePath) -> int:
        """Rows in every partition of a table, from the Parquet footers (no data is read)."""
        return sum(pq.read_metadata(f).num_rows for f in self.table_dir(table).glob(f"date=*/{PART_FILE}"))

    def glob(self, table: TablePath) -> str:
        return str(self.table_dir(table) / "date=*" / "*.parquet")


def warehouse_table_name(table: TablePath) -> str:
    """`raw/github/pull_requests` → `github__pull_requests`; `normalized/events` → `normalized__events`."""
    parts = table[1:] if table[0] == "raw" else table
    return "__".join(parts)


class PartitionLoader(Protocol):
    """A warehouse that takes a lake partition's rows as well (`resources.storage.postgres`)."""

    def load_partition(self, table: str, day: date, data: pa.Table | pa.RecordBatchReader) -> int: ...


def load_written(warehouse: PartitionLoader | None, table: TablePath, written: WrittenPartition,
                 day: date) -> None:
    """With a warehouse besides the lake, load a written partition's rows there, read back from its file."""
    if warehouse is not None:
        warehouse.load_partition(warehouse_table_name(table), day, written.batches())


def land(lake: Lake, warehouse: PartitionLoader | None, table: TablePath, day: date,
         rows: Sequence[Mapping[str, Any]], schema: pa.Schema, ingested_at: datetime) -> WrittenPartition:
    """Write one lake partition and, with a warehouse besides the lake, load the same rows there."""
    written = lake.write(table, day, rows, schema, ingested_at)
    load_written(warehouse, table, written, day)
    return written
