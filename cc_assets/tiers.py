"""Storage tiers as partitioned assets: hot (hours), cold (days), archive (months), and retention.

    normalized/events ──► hot/events       hourly: the hour's events + counters in Redis (or files), TTL
             │
             ├──────────► cold/events      daily: deduped, sorted, one zstd file per event day
             │                 │
             │                 └─► archive/events   monthly: one high-compression file + manifest
             └─ dbt ─► fct_events, fct_event_volume_1m/1d   daily warm partitions (cc_assets/dbt.py)

    retention/warm, retention/cold: drop warm days / delete cold days past their retention, only
    where the colder copy verifies (row count + checksum); the run's metadata says what was
    removed, what was freed and why anything old was kept.

The moves themselves live in `resources/storage/tiers.py` and `resources/storage/warm.py` (no Dagster there).
"""

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from cc_assets.normalized import EVENTS_KEY
from cc_assets.partitions import daily_partitions, hourly_partitions, monthly_partitions, single_run_backfill
from resources.platform import PlatformResource
from resources.storage.hot import hot_store
from resources.storage.tier_moves import (
    MoveReport,
    apply_cold_retention,
    archive_month,
    compact_day,
    landing_events,
    quarantine,
    scan_for_corrupt,
)
from resources.storage.tiers import TierStore
from resources.storage.warm import WARM_TABLES, apply_warm_retention

HOT_KEY = AssetKey(["hot", "events"])
COLD_KEY = AssetKey(["cold", "events"])
ARCHIVE_KEY = AssetKey(["archive", "events"])
WARM_KEYS = [AssetKey([name]) for name in WARM_TABLES]
GROUP = "tiers"


def _window(context: AssetExecutionContext) -> tuple[datetime, datetime]:
    window = context.partition_time_window
    return window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)


def _metadata(report: MoveReport, **extra) -> dict:
    return {
        "moved": MetadataValue.json(report.moved),
        "rows_moved": sum(report.moved.values()),
        "bytes_written": report.bytes_written,
        "bytes_freed": sum(report.freed.values()),
        "freed": MetadataValue.json(report.freed),
        "kept": MetadataValue.json(report.kept),
        **extra,
    }


@asset(key=HOT_KEY, deps=[EVENTS_KEY], partitions_def=hourly_partitions, backfill_policy=single_run_backfill,
       group_name=GROUP, kinds={"redis", "python"},
       description="Hot tier: each hour's normalized events and per-type counters in Redis (or the embedded "
                   "hot folder), replaced whole per run and expiring after CC_HOT_TTL_S.")
def hot_events(context: AssetExecutionContext, platform: PlatformResource) -> MaterializeResult:
    settings = platform.settings()
    start, end = _window(context)
    events = landing_events(TierStore.landing(settings), start, end)
    by_hour: dict[datetime, list[dict]] = defaultdict(list)
    for row in events.to_pylist() if events.num_rows else []:
        by_hour[row["event_at"].replace(minute=0, second=0, microsecond=0)].append(row)
    store = hot_store(settings)
    try:
        written = {}
        hour = start
        while hour < end:
            written[hour.strftime("%Y-%m-%dT%H")] = store.replace_hour(hour, by_hour.get(hour, []),
                                                                      settings.hot_ttl_s).events
            hour += timedelta(hours=1)
    finally:
        store.close()
    return MaterializeResult(metadata={"backend": store.backend, "ttl_s": settings.hot_ttl_s,
                                       "events_per_hour": MetadataValue.json(written),
                                       "events": sum(written.values())})


@asset(key=COLD_KEY, deps=[EVENTS_KEY], partitions_def=daily_partitions, backfill_policy=single_run_backfill,
       group_name=GROUP, kinds={"parquet", "s3"},
       description="Cold tier: one compacted zstd Parquet file per event day (deduped, sorted) under CC_LAKE_URL, "
                   "written to a temporary object and renamed into place only after it reads back verified.")
def cold_events(context: AssetExecutionContext, platform: PlatformResource) -> MaterializeResult:
    settings = platform.settings()
    landing, tiers = TierStore.landing(settings), TierStore.from_settings(settings)
    total = MoveReport()
    for key in context.partition_keys:
        report = compact_day(landing, tiers, date.fromisoformat(key))
        total.moved.update(report.moved)
        total.kept.update(report.kept)
        total.bytes_written += report.bytes_written
        total.bytes_read += report.bytes_read
    context.log.info(f"compacted {sum(total.moved.values())} events of {len(total.moved)} day(s) into {tiers.url}")
    return MaterializeResult(metadata=_metadata(
        total, landing_bytes=total.bytes_read, lake=tiers.url,
        compaction_ratio=round(total.bytes_read / total.bytes_written, 2) if total.bytes_written else 0.0))


@asset_check(asset=COLD_KEY, name="lake_parquet_readable", blocking=False,
             description="Every Parquet file of the landing lake and the cold and archive tiers reads; a corrupt "
                         "or truncated one is moved to quarantine/ with the reason and named here.")
def lake_parquet_readable(platform: PlatformResource) -> AssetCheckResult:
    settings = platform.settings()
    state = settings.state_dir / "lake_scan.json"
    seen = json.loads(state.read_text()) if state.exists() else {}
    stores = {s.url: s for s in (TierStore.landing(settings), TierStore.from_settings(settings))}
    quarantined, scanned = {}, 0
    next_seen: dict = {}
    for store in stores.values():
        bad, store_seen = scan_for_corrupt(store, seen)
        next_seen.update(store_seen)
        scanned += len(store_seen) + len(bad)
        for path, reason in bad.items():
            target = quarantine(store, path, reason)
            quarantined[store.relative(path)] = {"reason": reason, "moved_to": store.relative(target)}
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(next_seen))
    return AssetCheckResult(
        passed=not quarantined, severity=AssetCheckSeverity.ERROR,
        description=(f"{len(quarantined)} corrupt file(s) quarantined: {', '.join(quarantined)}"
                     if quarantined else f"{scanned} file(s) readable"),
        metadata={"files": scanned, "quarantined": MetadataValue.json(quarantined)})


@asset(key=ARCHIVE_KEY, deps=[COLD_KEY], partitions_def=monthly_partitions, backfill_policy=single_run_backfill,
       group_name=GROUP, kinds={"parquet", "s3"},
       description="Archive tier: one high-compression Parquet file per month of cold days, with a manifest "
                   "(rows, checksum, sha256, min/max time, per-day rows and checksums) written last.")
def archive_events(context: AssetExecutionContext, platform: PlatformResource) -> MaterializeResult:
    tiers = TierStore.from_settings(platform.settings())
    total = MoveReport()
    for key in context.partition_keys:
        report = archive_month(tiers, date.fromisoformat(key))
        total.moved.update(report.moved)
        total.kept.update(report.kept)
        total.bytes_written += report.bytes_written
        total.bytes_read += report.bytes_read
    return MaterializeResult(metadata=_metadata(
        total, cold_bytes=total.bytes_read, lake=tiers.url,
        compression_ratio=round(total.bytes_read / total.bytes_written, 2) if total.bytes_written else 0.0))


class RetentionConfig(Config):
    """`as_of` (YYYY-MM-DD): the day retention counts back from; empty means today (UTC)."""

    as_of: str = ""

    def today(self) -> date:
        return date.fromisoformat(self.as_of) if self.as_of else datetime.now(UTC).date()


@asset(key=["retention", "warm"], deps=[*WARM_KEYS, COLD_KEY, ARCHIVE_KEY], group_name=GROUP,
       kinds={"python"},
       description="Drops warm days older than CC_WARM_DAYS (Postgres: the day's partitions) whose cold or "
                   "archive copy has the same row count and checksum; reports what it dropped and kept.")
def warm_retention(context: AssetExecutionContext, config: RetentionConfig,
                   platform: PlatformResource) -> MaterializeResult:
    settings = platform.settings()
    cutoff = config.today() - timedelta(days=settings.warm_days)
    report = apply_warm_retention(settings, TierStore.from_settings(settings), cutoff)
    context.log.info(f"warm retention before {cutoff}: dropped {sorted(report.moved)}, kept {report.kept}")
    return MaterializeResult(metadata=_metadata(report, cutoff=cutoff.isoformat(), warehouse=settings.warehouse))


@asset(key=["retention", "cold"], deps=[COLD_KEY, ARCHIVE_KEY], group_name=GROUP, kinds={"python"},
       description="Deletes cold days older than CC_COLD_DAYS whose month's archive verifies (file sha256, the "
                   "day's rows and checksum in the manifest); reports bytes freed and why anything was kept.")
def cold_retention(context: AssetExecutionContext, config: RetentionConfig,
                   platform: PlatformResource) -> MaterializeResult:
    settings = platform.settings()
    cutoff = config.today() - timedelta(days=settings.cold_days)
    report = apply_cold_retention(TierStore.from_settings(settings), cutoff)
    context.log.info(f"cold retention before {cutoff}: deleted {sorted(report.freed)}, kept {report.kept}")
    return MaterializeResult(metadata=_metadata(report, cutoff=cutoff.isoformat()))


tier_assets = [hot_events, cold_events, archive_events, warm_retention, cold_retention]
tier_checks = [lake_parquet_readable]
