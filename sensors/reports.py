"""The job and schedule that export the daily operations report (cc_assets/reports.py)."""

from datetime import UTC, datetime, timedelta

from dagster import AssetSelection, RunRequest, ScheduleEvaluationContext, define_asset_job, schedule

from cc_assets.reports import REPORT_KEY

reports_job = define_asset_job(
    "reports_job", selection=AssetSelection.assets(REPORT_KEY),
    description="Write a day's operations report (CSV + Markdown) to $CC_DATA_DIR/reports/<day>/.")


@schedule(job=reports_job, cron_schedule="0 1 * * *", execution_timezone="UTC",
          description="01:00 UTC: yesterday's operations report, after tiers_daily_schedule (00:30) has moved the "
                      "day into the cold and warm tiers.")
def reports_schedule(context: ScheduleEvaluationContext):
    moment = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC)
    day = (moment - timedelta(days=1)).date().isoformat()
    return RunRequest(run_key=f"report-{day}", partition_key=day)


REPORT_JOBS = [reports_job]
REPORT_SCHEDULES = [reports_schedule]
