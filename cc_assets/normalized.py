"""The normalized event stream: every raw record through the one normalizer (`cc_events`).

Per day it reads the raw partitions of every entity that carries events and writes two lake
tables: `normalized/events` (one row per event) and `normalized/event_keys` (one row per
correlation key an event names), which dbt's correlation reads. Records the normalizer refuses
go to `dead_letter/normalized/<source>__<entity>` with the reason. The work itself, and the pool
of processes a big window's days are spread over, is in `cc_assets/normalizing.py`.
"""

from datetime import date, datetime

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from cc_assets.normalizing import normalize_days
from cc_assets.partitions import daily_partitions, single_run_backfill
from cc_assets.raw import column_schema
from cc_events.latest import CONTEXT_TABLES, context_from_lake
from cc_events.registry import NORMALIZERS
from resources.platform import PlatformResource
from resources.storage.lake import EVENT_KEYS_SCHEMA, EVENTS_SCHEMA

EVENTS_KEY = AssetKey(["normalized", "events"])
EVENT_KEYS_KEY = AssetKey(["normalized", "event_keys"])


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
    settings = platform.settings()
    pg_url = settings.pg_url if settings.warehouse == "postgres" else None
    days = [date.fromisoformat(key) for key in context.partition_keys]
    done = normalize_days(lake, pg_url, ctx, days, ingested_at, settings.normalize_workers)
    counts = {d.day.isoformat(): d.events for d in done}
    key_count = sum(d.keys for d in done)
    dead_total = sum(d.dead_letters for d in done)
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
