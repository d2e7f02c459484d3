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


@schedule(job=ingest_job, cron_schedule="*/15 * * * *", execution_timezone="UTC",
          description="Every 15 minutes, re-land today's partition of every polled source.")
def sources_schedule(context: ScheduleEvaluationContext):
    moment = context.scheduled_execution_time or datetime.now(UTC)
    day = moment.astimezone(UTC).date().isoformat()
    return RunRequest(run_key=f"{day}-{moment:%H%M}", partition_key=day)


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[ingest_job], request_job=transform_job,
                   description="After a successful ingest, rebuild the dbt models from the fresh lake.")
def transform_after_ingest_sensor(context):
    run = context.dagster_run
    if run is None:
        return SkipReason("no run")
    return RunRequest(run_key=f"after-{run.run_id}")
