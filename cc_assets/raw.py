"""The raw-asset factory: one daily-partitioned asset per source entity, landed as Parquet in the lake.

A source describes its entities as `RawSpec`s (cc_assets/sources/<source>.py): the raw table, a
fetch, the record time that picks the partition, and optionally an incremental cursor or a pull
that first moves pushed data into the landing log. `build_raw_asset` turns a spec into the asset.

Each run pages its source once for the whole partition window, sends records to their day's
partition as they arrive (`CHUNK_ROWS` at a time, so a run's memory does not grow with its
window), and replaces every partition of the window once the source is read to the end. Records
that break the schema and pages that cannot be read go to the dead-letter store with the reason;
the rest lands. A source that stays down fails its own asset with the client's message, and the
other sources land regardless.
"""

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    CodeReferencesMetadataValue,
    Failure,
    LocalFileCodeReference,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from cc_assets.freshness import freshness_policy
from cc_assets.incremental import Incremental, advance_cursors, incremental_since, kept_rows, note_mark
from cc_assets.partitions import Window, daily_partitions, single_run_backfill
from cc_events.model import InvalidRecord
from cc_events.raw_tables import RawTable
from resources.gc_tuning import fewer_collections
from resources.http.client import MalformedPage, SourceUnavailable, dumps
from resources.platform import PlatformResource
from resources.sources.paging import Item
from resources.storage.lake import DeadLetter, Lake, WrittenPartition, load_written, raw_schema
from resources.storage.landing import LandingLog, landing_for

# A pushed stream's run pulls for at most this long, then lands what it has: its sensor runs again soon.
PULL_BUDGET_S = 10.0

# Flattened rows a landing holds before they go to their day's file (one row group each): at
# 2-3 KB a row with its `_raw` JSON, some 50 MB whatever the window or the source's size.
CHUNK_ROWS = 20_000

# A fetched record, what the fetch knew about it (repo, PR number), and its day when the
# day comes from the fetch (a review lands in its PR's partition) rather than from the record.
Fetch = tuple[Item, dict, date | None]


@dataclass(frozen=True)
class RawSpec:
    table: RawTable
    fetch: Callable[[PlatformResource, Window], Iterator[Fetch]]
    day_column: str | None  # the record's time that picks its partition; None: the fetch decides
    deps: tuple[tuple[str, str], ...] = ()
    incremental: Incremental | None = None
    # Pushed sources: move what waits (a replication slot, log files) into the landing log first;
    # returns a line for the run's log.
    pull: Callable[[PlatformResource, logging.Logger], str] | None = None


def snapshot(items: Iterable[Item], window: Window) -> Iterator[Fetch]:
    """A listing with no time of its own (teams, the registry): the same records on every day."""
    for item in items:
        for day in window.days:
            yield item, {}, day


def from_landing(platform: PlatformResource, stream: str, days: Iterable[date],
                  identity: Callable[[dict], object], shared: bool = False) -> Iterator[Fetch]:
    """A pushed stream's records for `days` from the landing log, each identity once. `shared`:
    a stream the sidecar and the agents land, in Postgres with `CC_LANDING_URL` (`landing_for`);
    else one this process pulls into its own data dir (CDC, log files)."""
    log = landing_for(platform.settings()) if shared else LandingLog(platform.settings().landing_dir)
    seen: set[object] = set()
    for day in days:
        for record in log.read(stream, day):
            if isinstance(record, str):
                yield MalformedPage(str(log.path(stream, day)), "torn line in the landing log", record, {}), {}, None
                continue
            key = identity(record)
            if key not in seen:
                seen.add(key)
                yield record, {}, None


@dataclass
class Landing:
    written: dict[date, WrittenPartition]
    dead_letters: list[DeadLetter] = field(default_factory=list)
    marks: dict[str, datetime] = field(default_factory=dict)  # per cursor scope, the newest record landed


def land_fetched(spec: RawSpec, fetched: Iterable[Fetch], window: Window, lake: Lake, ingested_at: datetime,
                 chunk_rows: int = CHUNK_ROWS) -> Landing:
    """Flatten fetched records into their days' partitions, `chunk_rows` rows in memory at most;
    what cannot be used becomes a dead letter. Every day of the window is replaced, and only once
    the source is read to the end: a failure on the way leaves every partition as it was. An
    incremental window (`window.since`) keeps the rows already landed that were not fetched again."""
    table = spec.table
    schema = raw_schema(table)
    path = ("raw", table.source, table.entity)
    merging = spec.incremental is not None and bool(window.since)
    fetched_keys: set[tuple] = set()
    buffered: dict[date, list[dict]] = {day: [] for day in window.days}
    held = 0
    landing = Landing({})
    with ExitStack() as stack:
        writers = {day: stack.enter_context(lake.writer(path, day, schema, ingested_at)) for day in window.days}

        def flush() -> None:
            for day, rows in buffered.items():
                writers[day].write(rows)
                rows.clear()

        for item, extra, fixed_day in fetched:
            if isinstance(item, MalformedPage):
                landing.dead_letters.append(DeadLetter(table.source, table.entity,
                                                       f"{item.reason} (page {item.url})", item.body))
                continue
            try:
                row = table.flatten(item, extra)
            except InvalidRecord as exc:
                landing.dead_letters.append(DeadLetter(table.source, table.entity, str(exc),
                                                       dumps({"record": item, "context": extra})))
                continue
            row["_raw"] = dumps(item)
            day = fixed_day if fixed_day is not None else row[spec.day_column].date()
            if day not in buffered:
                continue
            buffered[day].append(row)
            if spec.incremental:
                note_mark(spec.incremental, row, landing.marks)
            if merging:
                fetched_keys.add(tuple(row[k] for k in spec.incremental.key))
            held += 1
            if held >= chunk_rows:
                flush()
                held = 0
        flush()
        if merging:
            for day in window.days:
                for rows in kept_rows(lake, table, spec.incremental.key, day, fetched_keys):
                    writers[day].write(rows)
                    for row in rows:
                        note_mark(spec.incremental, row, landing.marks)
        landing.written = {day: writer.commit() for day, writer in writers.items()}
    return landing


def column_schema(schema) -> TableSchema:
    """A Parquet schema as the catalog shows it (the lineage columns say what they are)."""
    notes = {"_raw": "the record as the source sent it (JSON)", "_partition_date": "the partition's day",
             "_ingested_at": "when the record landed"}
    return TableSchema(columns=[TableColumn(f.name, str(f.type), description=notes.get(f.name)) for f in schema])


def spec_reference(spec: RawSpec) -> LocalFileCodeReference:
    """Where a raw table is specified: its source module's fetch (the factory is referenced too)."""
    fetch = inspect.unwrap(spec.fetch)
    try:
        return LocalFileCodeReference(file_path=inspect.getsourcefile(fetch),
                                      line_number=inspect.getsourcelines(fetch)[1], label="fetch")
    except (TypeError, OSError):  # a partial or builtin: its module
        module = inspect.getmodule(fetch) or inspect.getmodule(spec)
        return LocalFileCodeReference(file_path=inspect.getsourcefile(module), label="source")


def build_raw_asset(spec: RawSpec):
    table = spec.table
    key = AssetKey(["raw", table.source, table.entity])
    schema = raw_schema(table)

    @asset(
        key=key,
        description=table.description,
        group_name=f"raw_{table.source}",
        partitions_def=daily_partitions,
        backfill_policy=single_run_backfill,
        deps=[AssetKey(["raw", *dep]) for dep in spec.deps],
        kinds={"parquet", table.source},
        check_specs=[AssetCheckSpec("no_dead_letters", asset=key,
                                    description="Every fetched record and page of the run was usable.")],
        metadata={"lake_path": f"lake/raw/{table.source}/{table.entity}/date=YYYY-MM-DD/part-0.parquet",
                  "dagster/column_schema": column_schema(schema),
                  "dagster/code_references": CodeReferencesMetadataValue(code_references=[spec_reference(spec)])},
        freshness_policy=freshness_policy(table.source, table.entity),
    )
    def raw_asset(context: AssetExecutionContext, platform: PlatformResource) -> MaterializeResult:
        window = Window([date.fromisoformat(k) for k in context.partition_keys])
        ingested_at = datetime.utcnow().replace(microsecond=0)
        cursors = platform.cursors()
        if spec.incremental:
            overlap = timedelta(seconds=platform.settings().incremental_overlap_s)
            window = Window(window.days, incremental_since(table, cursors.all(), window, overlap))
            for scope, start in sorted(window.since.items()):
                context.log.info("incremental: %s from %s", scope, start.isoformat())
        try:
            if spec.pull is not None:
                context.log.info(spec.pull(platform, context.log))
            with fewer_collections():
                landing = land_fetched(spec, spec.fetch(platform, window), window, platform.lake(), ingested_at)
        except SourceUnavailable as exc:
            raise Failure(description=f"{table.source} is unavailable, nothing landed for "
                                      f"{table.source}/{table.entity}: {exc}") from exc
        warehouse = platform.postgres()
        for day, written in landing.written.items():
            load_written(warehouse, ("raw", table.source, table.entity), written, day)
        per_day = {day.isoformat(): written.rows for day, written in landing.written.items()}
        total_bytes = sum(written.bytes for written in landing.written.values())
        if landing.dead_letters:
            platform.lake().write_dead_letters(table.source, table.entity, window.days[-1],
                                               landing.dead_letters, ingested_at)
            context.log.warning("%d dead letter(s) for %s/%s, first: %s", len(landing.dead_letters),
                                table.source, table.entity, landing.dead_letters[0].reason)
        # Cursors move only once every partition (and its dead letters) is durably written.
        moved = advance_cursors(cursors, landing.marks) if spec.incremental else {}
        # A range run records these on every partition it wrote: they describe the run.
        table_rows = platform.lake().row_count(("raw", table.source, table.entity))
        return MaterializeResult(
            metadata={
                # The table's rows after this run (every partition); a one-day run also says its day's.
                "dagster/row_count": table_rows,
                **({"dagster/partition_row_count": next(iter(per_day.values()))} if len(per_day) == 1 else {}),
                "rows_in_run": sum(per_day.values()),
                "rows_per_day": MetadataValue.json(per_day),
                "bytes_in_run": total_bytes,
                "dead_letters_in_run": len(landing.dead_letters),
                "incremental_from": MetadataValue.json({k: v.isoformat() for k, v in window.since.items()}),
                "cursors_moved": MetadataValue.json(moved),
            },
            check_results=[AssetCheckResult(
                check_name="no_dead_letters", passed=not landing.dead_letters,
                severity=AssetCheckSeverity.WARN,
                metadata={"dead_letters": len(landing.dead_letters),
                          "first_reason": landing.dead_letters[0].reason if landing.dead_letters else ""},
            )],
        )

    return raw_asset
