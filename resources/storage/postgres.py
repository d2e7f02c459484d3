"""Postgres as a warehouse target: raw lake partitions loaded into schema `raw` with COPY.

A partition load is one transaction: delete the partition's rows, COPY the new ones. A re-run
therefore replaces, never duplicates, and a failed load leaves the previous rows in place.
Identifiers go through `psycopg.sql`, never string formatting.

The rows go from Arrow to COPY as CSV written by Arrow's own writer, a chunk at a time, never as
Python objects (a million rows one `write_row` at a time cost minutes). Arrow quotes every string
and writes a null as nothing, and Postgres' CSV reads an unquoted empty field as NULL and `""` as
the empty string, so NULL and '' stay apart; inside quotes commas, newlines, quotes (doubled) and
backslashes are plain data. Timestamps are written as ISO `YYYY-MM-DD HH:MM:SS.ffffff`, doubles in
their shortest exact form (`inf`, `nan` and `-0` included).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

RAW_SCHEMA = "raw"
# Rows per CSV chunk handed to COPY: 10-20 MB of text with the `_raw` JSON, whatever the partition.
COPY_CHUNK_ROWS = 10_000
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")

_PG_TYPES = {
    pa.string(): "text",
    pa.int64(): "bigint",
    pa.float64(): "double precision",
    pa.timestamp("us"): "timestamp",
    pa.date32(): "date",
}


def pg_type(arrow_type: pa.DataType) -> str:
    try:
        return _PG_TYPES[arrow_type]
    except KeyError:
        raise TypeError(f"no Postgres type for Arrow {arrow_type}") from None


class PostgresWarehouse:
    """Loads lake partitions into `raw.<source>__<entity>` tables."""

    def __init__(self, url: str, schema: str = RAW_SCHEMA) -> None:
        self.url = url
        self.schema = schema

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with psycopg.connect(self.url, connect_timeout=10) as conn:
            yield conn

    def ensure_table(self, table: str, schema: pa.Schema) -> None:
        """Create `raw.<table>` for `schema`, or add the columns it lacks (see `_ensure_table`)."""
        with self.connect() as conn, conn.cursor() as cur:
            self._ensure_table(cur, table, schema)

    def _ensure_table(self, cur: psycopg.Cursor, table: str, schema: pa.Schema) -> None:
        # DDL only when something is missing: `alter table` and `create index` lock the table
        # against writers until commit, which would queue loads of other days of the same table.
        existing = {row[0] for row in cur.execute(
            "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
            (self.schema, table))}
        name = sql.Identifier(self.schema, table)
        if not existing:
            cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(self.schema)))
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f.type))) for f in schema
            )
            cur.execute(sql.SQL("create table if not exists {} ({})").format(name, columns))
            cur.execute(sql.SQL("create index if not exists {} on {} (_partition_date)").format(
                sql.Identifier(f"{table}__partition_idx"), name))
            return
        # Columns added to the contract later arrive as new nullable columns.
        for f in schema:
            if f.name not in existing:
                cur.execute(sql.SQL("alter table {} add column if not exists {} {}").format(
                    name, sql.Identifier(f.name), sql.SQL(pg_type(f.type))))

    def load_partition(self, table: str, day: date, data: pa.Table | pa.RecordBatchReader) -> int:
        """Replace `day`'s rows of `raw.<table>` with `data` in one transaction; a reader (a
        partition read back from the lake a batch at a time) is copied as it is read."""
        rows = 0
        with self.connect() as conn, conn.cursor() as cur:
            self._ensure_table(cur, table, data.schema)
            name = sql.Identifier(self.schema, table)
            cur.execute(sql.SQL("delete from {} where _partition_date = %s").format(name), (day,))
            columns = sql.SQL(", ").join(sql.Identifier(n) for n in data.schema.names)
            # Arrow writes UTF-8 whatever the database's encoding: say so, and Postgres converts.
            cur.execute("set local client_encoding to 'UTF8'")
            with cur.copy(sql.SQL("copy {} ({}) from stdin (format csv)").format(name, columns)) as copy:
                for batch in data.to_batches() if isinstance(data, pa.Table) else data:
                    for start in range(0, batch.num_rows, COPY_CHUNK_ROWS):
                        chunk = batch.slice(start, COPY_CHUNK_ROWS)
                        copy.write(csv_chunk(chunk))
                        rows += chunk.num_rows
            return rows


def csv_chunk(batch: pa.RecordBatch) -> bytes:
    """One batch as the CSV text COPY reads (see the module's note on NULL and quoting)."""
    out = io.BytesIO()
    pa_csv.write_csv(batch, out, _CSV_OPTIONS)
    return out.getvalue()
