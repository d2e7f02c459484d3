"""Jobs and schedules that move data between the storage tiers and apply retention."""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    define_asset_job,
    schedule,
)

from cc_assets.tiers import ARCHIVE_KEY, COLD_KEY, HOT_KEY, lake_parquet_readable

# The warm dbt models group as "warm" (their dbt layer).
WARM = AssetSelection.groups("warm")

# The queue runs one tier move at a time (`cc/tiers`); the daily job also rebuilds the warm dbt
# models, so it waits for a running dbt build too (`cc/dbt`).
TIERS = {"cc/tiers": "move"}

hot_job = define_asset_job("hot_job", selection=AssetSelection.assets(HOT_KEY), tags=TIERS,
                           description="Put an hour's events and counters into the hot tier.")
tiers_daily_job = define_asset_job(
    "tiers_daily_job", selection=AssetSelection.assets(COLD_KEY) | WARM, tags={**TIERS, "cc/dbt": "warm"},
    description="For a day (or a range, as one run): compact the cold file and rebuild the warm partitions.")
archive_job = define_asset_job("archive_job", selection=AssetSelection.assets(ARCHIVE_KEY), tags=TIERS,
                               description="Archive a month of cold days into one file with its manifest.")
retention_job = define_asset_job(
    "retention_job", selection=AssetSelection.key_prefixes(["retention"]), tags=TIERS,
    description="Drop warm days and delete cold days past their retention whose colder copy verifies.")
lake_scan_job = define_asset_job(
    "lake_scan_job", selection=AssetSelection.checks(lake_parquet_readable),
    description="Read every lake Parquet file not read since it changed; quarantine corrupt ones.")

TIER_JOBS = [hot_job, tiers_daily_job, archive_job, retention_job, lake_scan_job]


def _moment(context: ScheduleEvaluationContext) -> datetime:
    return (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)


@schedule(job=hot_job, cron_schedule="*/5 * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.STOPPED,
          description="Every 5 minutes: refresh the current hour and the one before in the hot tier (one run).")
def hot_schedule(context: ScheduleEvaluationContext):
    # The hour before too: its last minutes' events land after it ends, and the sidecar counts
    # the last hour from the hot tier, so an hour last written at :55 would stay short.
    hour = _moment(context).replace(minute=0, second=0, microsecond=0)
    return RunRequest(run_key=f"hot-{_moment(context):%Y%m%d%H%M}", tags={
        "dagster/asset_partition_range_start": f"{hour - timedelta(hours=1):%Y-%m-%d-%H}:00",
        "dagster/asset_partition_range_end": f"{hour:%Y-%m-%d-%H}:00"})


@schedule(job=tiers_daily_job, cron_schedule="30 0 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.STOPPED,
          description="00:30 UTC: compact yesterday into the cold tier and rebuild its warm partition.")
def tiers_daily_schedule(context: ScheduleEvaluationContext):
    day = (_moment(context) - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"tiers-{day}", partition_key=day)


@schedule(job=archive_job, cron_schedule="0 1 2 * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.STOPPED,
          description="The 2nd of each month, 01:00 UTC: archive the previous month.")
def archive_schedule(context: ScheduleEvaluationContext):
    month = (_moment(context).replace(day=1) - timedelta(days=1)).replace(day=1).isoformat()[:10]
    return RunRequest(run_key=f"archive-{month}", partition_key=month)


@schedule(job=retention_job, cron_schedule="0 2 * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.STOPPED,
          description="02:00 UTC: apply warm and cold retention (verified colder copies only).")
def retention_schedule(context: ScheduleEvaluationContext):
    return RunRequest(run_key=f"retention-{_moment(context):%Y-%m-%d}")


@schedule(job=lake_scan_job, cron_schedule="15 * * * *", execution_timezone="UTC",
          default_status=DefaultScheduleStatus.STOPPED,
          description="Hourly: check that every new or changed lake file reads; quarantine corrupt ones.")
def lake_scan_schedule(context: ScheduleEvaluationContext):
    return RunRequest(run_key=f"lake-scan-{_moment(context):%Y%m%d%H}")


TIER_SCHEDULES = [hot_schedule, tiers_daily_schedule, archive_schedule, retention_schedule, lake_scan_schedule]
