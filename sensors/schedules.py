"""Schedules and sensors that keep the warehouse current."""

from datetime import UTC, datetime

from dagster import (
    DagsterRunStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    run_status_sensor,
    schedule,
)

from sensors.jobs import ingest_job, transform_job
from sensors.sources import SOURCE_JOBS


@schedule(job=ingest_job, cron_schedule="*/15 * * * *", execution_timezone="UTC",
          description="Every 15 minutes, re-land today's partition of every polled source.")
def sources_schedule(context: ScheduleEvaluationContext):
    moment = context.scheduled_execution_time or datetime.now(UTC)
    day = moment.astimezone(UTC).date().isoformat()
    return RunRequest(run_key=f"{day}-{moment:%H%M}", partition_key=day)


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job, *SOURCE_JOBS],
                   request_job=transform_job,
                   description="After a successful ingest, rebuild the dbt models from the fresh lake "
                               "(at most one build per 5 minutes; the sidecar serves what is newer).")
def transform_after_ingest_sensor(context):
    run = context.dagster_run
    if run is None:
        return SkipReason("no run")
    if run.job_name == ingest_job.name:
        return RunRequest(run_key=f"after-{run.run_id}")
    # Source jobs run every few seconds to minutes: coalesce their builds per 5-minute window.
    window = int(datetime.now(UTC).timestamp() // 300)
    return RunRequest(run_key=f"window-{window}")
