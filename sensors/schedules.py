"""Schedules and sensors that keep the warehouse current."""

from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    run_status_sensor,
    schedule,
    sensor,
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


# A build per this many seconds at most for the source jobs' landings (ingest_job's build at once).
BUILD_WINDOW_S = 300
UNFINISHED = (DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED)


def _newest_landing(instance: DagsterInstance):
    """The landing run (ingest_job or a source's job) that succeeded last, or None."""
    newest = None
    for name in (ingest_job.name, *(job.name for job in SOURCE_JOBS)):
        for record in instance.get_run_records(RunsFilter(job_name=name, statuses=[DagsterRunStatus.SUCCESS]),
                                               limit=1):
            if record.end_time is not None and (newest is None or record.end_time > newest.end_time):
                newest = record
    return newest


def catch_up(instance: DagsterInstance, now: float) -> RunRequest | SkipReason:
    """A build for a landing no build has started after, once the 5-minute window allows it.

    `transform_after_ingest_sensor` asks for one build per 5-minute window: a source job that
    succeeds later in a window whose build was already asked for (or while that build runs) is
    in no build until the next landing's window. This asks for that build, the window after."""
    landed = _newest_landing(instance)
    if landed is None:
        return SkipReason("nothing landed yet")
    builds = instance.get_run_records(RunsFilter(job_name=transform_job.name), limit=1)
    if builds:
        build = builds[0]
        if build.dagster_run.status in UNFINISHED:
            return SkipReason(f"build {build.dagster_run.run_id[:8]} is {build.dagster_run.status.value.lower()}; "
                              "what landed before it starts is in it")
        started = build.start_time or build.create_timestamp.timestamp()
        if started >= landed.end_time:
            return SkipReason(f"the last landing ({landed.dagster_run.job_name}) is in the build since")
        wait = started + BUILD_WINDOW_S - now
        if wait > 0:
            return SkipReason(f"{landed.dagster_run.job_name} landed after the last build started; "
                              f"building it in {wait:.0f} s (one build per {BUILD_WINDOW_S // 60} minutes)")
    return RunRequest(run_key=f"catch-up-{landed.dagster_run.run_id}")


@sensor(job=transform_job, minimum_interval_seconds=30,
        description="A dbt build for data a source job landed after the last build started, when "
                    "transform_after_ingest_sensor's 5-minute window had already asked for its build.")
def transform_catch_up_sensor(context: SensorEvaluationContext):
    return catch_up(context.instance, datetime.now(UTC).timestamp())
