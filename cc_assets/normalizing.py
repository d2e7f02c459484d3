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
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from cc_events import InvalidRecord, NormalizeContext, normalize
from cc_events.registry import NORMALIZERS
from resources.storage.lake import (
    EVENT_KEYS_SCHEMA,
    EVENTS_SCHEMA,
    DeadLetter,
    Lake,
    land,
    warehouse_table_name,
)
from resources.storage.postgres import PostgresWarehouse

EVENTS_TABLE = ("normalized", "events")
EVENT_KEYS_TABLE = ("normalized", "event_keys")
# Below this many raw records in the window, starting workers (about a second each: imports) costs
# more than it saves; the tests' and the sensors' small runs stay in process.
POOL_MIN_RECORDS = 100_000
# At most this many workers by default: each holds one day's events in memory.
DEFAULT_MAX_WORKERS = 4


@dataclass(frozen=True)
class DayNormalized:
    day: date
    events: int
    keys: int
    dead_letters: int


def normalize_day(lake: Lake, ctx: NormalizeContext, day: date):
    """All events of one day's raw partitions, their keys, and what could not be normalized."""
    events: dict[str, dict] = {}
    keys: set[tuple] = set()
    dead: dict[tuple[str, str], list[DeadLetter]] = {}
    for source, entity in NORMALIZERS:
        table = lake.read(("raw", source, entity), day)
        if table is None:
            continue
        extra_columns = [c for c in ("repo", "pull_number") if c in table.column_names]
        for row in table.select(["_raw", *extra_columns]).to_pylist():
            extra = {c: row[c] for c in extra_columns}
            try:
                produced = normalize(source, entity, json.loads(row["_raw"]), ctx, extra)
            except InvalidRecord as exc:
                dead.setdefault((source, entity), []).append(DeadLetter(source, entity, str(exc), row["_raw"]))
                continue
            for event in produced:
                # The same event can come from two copies of a record (a commit listed on the
                # default branch and in its PR): one row, the union of the keys.
                events[event.id] = event.to_row()
                keys.update(tuple(k.values()) for k in event.key_rows())
    key_rows = [dict(zip(("event_id", "correlation_key", "key_type", "key_priority"), k, strict=True))
                for k in sorted(keys)]
    return sorted(events.values(), key=lambda r: (r["event_at"], r["event_id"])), key_rows, dead


def land_day(lake_root: str, pg_url: str | None, ctx: NormalizeContext, day: date,
             ingested_at: datetime) -> DayNormalized:
    """Normalize one day and write it: the lake's two partitions, Postgres' rows, the dead letters."""
    lake = Lake(Path(lake_root))
    warehouse = PostgresWarehouse(pg_url) if pg_url else None
    events, key_rows, dead = normalize_day(lake, ctx, day)
    land(lake, warehouse, EVENTS_TABLE, day, events, EVENTS_SCHEMA, ingested_at)
    land(lake, warehouse, EVENT_KEYS_TABLE, day, key_rows, EVENT_KEYS_SCHEMA, ingested_at)
    for (source, entity), letters in dead.items():
        lake.write_dead_letters("normalized", f"{source}__{entity}", day, letters, ingested_at)
    return DayNormalized(day, len(events), len(key_rows), sum(len(letters) for letters in dead.values()))


def raw_records(lake: Lake, days: Sequence[date]) -> int:
    """Raw records the normalizer would read for `days`, from the Parquet footers (no data read)."""
    from pyarrow import parquet

    total = 0
    for source, entity in NORMALIZERS:
        for day in days:
            path = lake.partition_dir(("raw", source, entity), day) / "part-0.parquet"
            if path.exists():
                total += parquet.read_metadata(path).num_rows
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
