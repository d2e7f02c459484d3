"""The normalized event stream: every raw record through the one normalizer (`cc_events`).

Per day it reads the raw partitions of every entity that carries events and writes two lake
tables: `normalized/events` (one row per event) and `normalized/event_keys` (one row per
correlation key an event names), which dbt's correlation reads. Records the normalizer refuses
go to `dead_letter/normalized/<source>__<entity>` with the reason.
"""

import json
from datetime import date, datetime

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from cc_assets.partitions import daily_partitions, single_run_backfill
from cc_assets.raw import column_schema
from cc_events import InvalidRecord, NormalizeContext, normalize
from cc_events.latest import CONTEXT_TABLES, context_from_lake
from cc_events.registry import NORMALIZERS
from resources.platform import PlatformResource
from resources.storage.lake import EVENT_KEYS_SCHEMA, EVENTS_SCHEMA, DeadLetter, Lake

EVENTS_KEY = AssetKey(["normalized", "events"])
EVENT_KEYS_KEY = AssetKey(["normalized", "event_keys"])

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


@multi_asset(
    specs=[
        AssetSpec(EVENTS_KEY, description="Every source event in the one normalized contract, per day.",
                  group_name="normalized", kinds={"parquet", "python"},
                  metadata={"lake_path": "lake/normalized/events/date=YYYY-MM-DD/part-0.parquet",
                            "dagster/column_schema": column_schema(EVENTS_SCHEMA)},
                  deps=[AssetKey(["raw", s, e]) for s, e in [*NORMALIZERS, *CONTEXT_TABLES]]),
        AssetSpec(EVENT_KEYS_KEY, description="The correlation keys each normalized event names.",
                  group_name="normalized", kinds={"parquet", "python"}, deps=[EVENTS_KEY],
                  metadata={"lake_path": "lake/normalized/event_keys/date=YYYY-MM-DD/part-0.parquet",
                            "dagster/column_schema": column_schema(EVENT_KEYS_SCHEMA)}),
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    # Two sources' runs may land side by side, but each rewrites the whole day from every raw
    # partition: one normalization at a time, so the later one reads what both landed (the pool's
    # limit is the instance's, resources/dagster_home.py).
    pool="normalize",
)
def normalized_events(context: AssetExecutionContext, platform: PlatformResource):
    lake = platform.lake()
    ctx = context_from_lake(lake)
    ingested_at = datetime.utcnow().replace(microsecond=0)
    counts: dict[str, int] = {}
    key_count = 0
    dead_total = 0
    for key in context.partition_keys:
        day = date.fromisoformat(key)
        events, key_rows, dead = normalize_day(lake, ctx, day)
        platform.land(("normalized", "events"), day, events, EVENTS_SCHEMA, ingested_at)
        platform.land(("normalized", "event_keys"), day, key_rows, EVENT_KEYS_SCHEMA, ingested_at)
        for (source, entity), letters in dead.items():
            lake.write_dead_letters("normalized", f"{source}__{entity}", day, letters, ingested_at)
            dead_total += len(letters)
        counts[key] = len(events)
        key_count += len(key_rows)
    if dead_total:
        context.log.warning("%d record(s) could not be normalized; see lake/dead_letter/normalized/", dead_total)
    # A range run records these on every partition it wrote: they describe the run.
    yield MaterializeResult(asset_key=EVENTS_KEY, metadata={
        "dagster/row_count": lake.row_count(("normalized", "events")),
        "events_in_run": sum(counts.values()), "events_per_day": MetadataValue.json(counts),
        "dead_letters_in_run": dead_total, "linear_teams_known": len(ctx.linear_team_keys),
    })
    yield MaterializeResult(asset_key=EVENT_KEYS_KEY, metadata={
        "dagster/row_count": lake.row_count(("normalized", "event_keys")), "keys_in_run": key_count})
