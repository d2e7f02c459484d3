"""Normalizing days of raw partitions into `normalized/events` and `normalized/event_keys`.

No Dagster here (`cc_assets/normalized.py` is the asset): a big window is normalized one day per
worker process, and a spawned worker imports only this module and what it needs. Days are
independent: each reads its own raw partitions and writes its own normalized and dead-letter
partitions (and, on Postgres, loads its own day's rows), so workers never write the same file.
The normalizer is pure Python, about 25k events a second on one core here: at a million events
a run spends most of a minute in it, and a pool cuts that by the cores it gets.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cc_events import InvalidRecord, NormalizeContext, normalize
from cc_events.registry import NORMALIZERS
from resources.gc_tuning import fewer_collections
from resources.storage.lake import (
    EVENT_KEYS_SCHEMA,
    EVENTS_SCHEMA,
    PART_FILE,
    DeadLetter,
    Lake,
    TablePath,
    WrittenPartition,
    load_written,
    warehouse_table_name,
)
from resources.storage.postgres import PostgresWarehouse

EVENTS_TABLE = ("normalized", "events")
EVENT_KEYS_TABLE = ("normalized", "event_keys")
# Below this many raw records in the window, starting workers (about a second each: imports) costs
# more than it saves; the tests' and the sensors' small runs stay in process.
POOL_MIN_RECORDS = 100_000
# At most this many workers by default: each normalizes one day, one batch at a time.
DEFAULT_MAX_WORKERS = 4
# Raw records normalized (and events written) per batch: what a worker holds as Python rows.
BATCH_ROWS = 20_000
# What DuckDB may hold while it orders a day's events; beyond it, it spills to the scratch folder.
SORT_MEMORY = "512MB"


@dataclass(frozen=True)
class DayNormalized:
    day: date
    events: int
    keys: int
    dead_letters: int


KEY_COLUMNS = ("event_id", "correlation_key", "key_type", "key_priority")
_SPILL_EVENTS = pa.schema([*(f for f in EVENTS_SCHEMA if not f.name.startswith("_")), pa.field("_seq", pa.int64())])
_SPILL_KEYS = pa.schema([f for f in EVENT_KEYS_SCHEMA if not f.name.startswith("_")])
# The day's events in order, each id once: the last copy of an event wins (a commit listed on the
# default branch and in its PR is one event), as it did when a day was a dict in memory.
_EVENTS_SQL = """
with spilled as (select * from read_parquet($events)),
last_copies as (select event_id, max(_seq) as _seq from spilled group by event_id),
final as (
    select spilled.* exclude (_seq), null::date as _partition_date, null::timestamp as _ingested_at
    from spilled
    inner join last_copies using (event_id, _seq)
)
select * from final order by event_at, event_id
"""
# The union of the keys every copy of an event named.
_KEYS_SQL = """
with final as (
    select distinct *, null::date as _partition_date, null::timestamp as _ingested_at
    from read_parquet($keys)
)
select * from final order by event_id, correlation_key, key_type, key_priority
"""


def normalized_batches(lake: Lake, ctx: NormalizeContext, day: date,
                       dead: dict[tuple[str, str], list[DeadLetter]]) -> Iterator[tuple[list[dict], list[dict]]]:
    """A day's events and their keys, `BATCH_ROWS` raw records at a time, in the order the raw
    partitions hold them (copies of an event not merged yet); refused records go to `dead`."""
    for source, entity in NORMALIZERS:
        path = lake.partition_dir(("raw", source, entity), day) / PART_FILE
        if not path.exists():
            continue
        extra_columns = [c for c in ("repo", "pull_number") if c in pq.read_schema(path).names]
        for rows in lake.iter_rows(("raw", source, entity), day, ["_raw", *extra_columns], BATCH_ROWS):
            events, keys = [], []
            for row in rows:
                extra = {c: row[c] for c in extra_columns}
                try:
                    produced = normalize(source, entity, json.loads(row["_raw"]), ctx, extra)
                except InvalidRecord as exc:
                    dead.setdefault((source, entity), []).append(DeadLetter(source, entity, str(exc), row["_raw"]))
                    continue
                for event in produced:
                    events.append(event.to_row())
                    keys.extend(event.key_rows())
            yield events, keys


def land_day(lake_root: str, pg_url: str | None, ctx: NormalizeContext, day: date,
             ingested_at: datetime) -> DayNormalized:
    """Normalize one day and write it: the lake's two partitions, Postgres' rows, the dead letters.

    The events go to a scratch Parquet file batch by batch as they are normalized; DuckDB then
    merges the copies of an event and orders the day within `SORT_MEMORY` (spilling the rest to
    the scratch folder), and the result is written a batch at a time: a worker's memory is bounded
    by the batch, not by the day (a day held as Python rows took ~0.6 GiB at a million events a week)."""
    lake = Lake(Path(lake_root))
    warehouse = PostgresWarehouse(pg_url) if pg_url else None
    dead: dict[tuple[str, str], list[DeadLetter]] = {}
    with tempfile.TemporaryDirectory(prefix=f"cc-normalize-{day}-") as scratch:
        spilled_events, spilled_keys = Path(scratch) / "events.parquet", Path(scratch) / "keys.parquet"
        seq = 0
        with fewer_collections(), pq.ParquetWriter(spilled_events, _SPILL_EVENTS) as events_out, \
                pq.ParquetWriter(spilled_keys, _SPILL_KEYS) as keys_out:
            for events, keys in normalized_batches(lake, ctx, day, dead):
                data = pa.Table.from_pylist(events, schema=_SPILL_EVENTS.remove(len(_SPILL_EVENTS) - 1))
                events_out.write_table(data.append_column("_seq", pa.array(range(seq, seq + len(events)), pa.int64())))
                keys_out.write_table(pa.Table.from_pylist(keys, schema=_SPILL_KEYS))
                seq += len(events)
        with duckdb.connect(config={"memory_limit": SORT_MEMORY, "threads": 1,
                                    "temp_directory": str(Path(scratch) / "duckdb")}) as con:
            written = [_write_sorted(lake, warehouse, con, table, schema, day, ingested_at, query, params)
                       for table, schema, query, params in (
                           (EVENTS_TABLE, EVENTS_SCHEMA, _EVENTS_SQL, {"events": str(spilled_events)}),
                           (EVENT_KEYS_TABLE, EVENT_KEYS_SCHEMA, _KEYS_SQL, {"keys": str(spilled_keys)}))]
    for (source, entity), letters in dead.items():
        lake.write_dead_letters("normalized", f"{source}__{entity}", day, letters, ingested_at)
    return DayNormalized(day, written[0].rows, written[1].rows, sum(len(letters) for letters in dead.values()))


def _write_sorted(lake: Lake, warehouse: PostgresWarehouse | None, con: duckdb.DuckDBPyConnection,
                  table: TablePath, schema: pa.Schema, day: date, ingested_at: datetime, query: str,
                  params: dict) -> WrittenPartition:
    """One normalized partition from DuckDB's ordered result, a batch at a time, then into Postgres."""
    with lake.writer(table, day, schema, ingested_at) as writer:
        for batch in con.execute(query, params).to_arrow_reader(BATCH_ROWS):
            writer.write_table(pa.Table.from_batches([batch]).cast(schema))
        written = writer.commit()
    load_written(warehouse, table, written, day)
    return written


def raw_records(lake: Lake, days: Sequence[date]) -> int:
    """Raw records the normalizer would read for `days`, from the Parquet footers (no data read)."""
    total = 0
    for source, entity in NORMALIZERS:
        for day in days:
            path = lake.partition_dir(("raw", source, entity), day) / PART_FILE
            if path.exists():
                total += pq.read_metadata(path).num_rows
    return total


def pool_size(workers: int, days: int, records: int) -> int:
    """Processes to normalize with: `workers` (0: the cores, at most DEFAULT_MAX_WORKERS), no more
    than there are days, and 1 (in this process) for a small window."""
    if records < POOL_MIN_RECORDS:
        return 1
    wanted = workers or min(DEFAULT_MAX_WORKERS, os.cpu_count() or 1)
    return max(1, min(wanted, days))


def normalize_days(lake: Lake, pg_url: str | None, ctx: NormalizeContext, days: Sequence[date],
                   ingested_at: datetime, workers: int = 0) -> list[DayNormalized]:
    """Normalize and write every day of `days`, in a pool of processes when the window is big."""
    size = pool_size(workers, len(days), raw_records(lake, days))
    if size == 1:
        return [land_day(str(lake.root), pg_url, ctx, day, ingested_at) for day in days]
    if pg_url:
        # Made once here: workers creating the same table at once would race in the catalog.
        warehouse = PostgresWarehouse(pg_url)
        for table, schema in ((EVENTS_TABLE, EVENTS_SCHEMA), (EVENT_KEYS_TABLE, EVENT_KEYS_SCHEMA)):
            warehouse.ensure_table(warehouse_table_name(table), schema)
    # Spawned, not forked: the parent holds threads (Dagster's, the HTTP pools) a fork would copy mid-state.
    with ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(land_day, str(lake.root), pg_url, ctx, day, ingested_at) for day in days]
        return [f.result() for f in futures]
