"""OpenClaw's schedule: every minute, the sessions updated today."""

from dagster import RunRequest, schedule

from sensors.triggers import source_job, today

openclaw_job = source_job("openclaw_job", ["raw", "openclaw"], description="Land OpenClaw agent sessions and costs.")


@schedule(job=openclaw_job, cron_schedule="* * * * *", execution_timezone="UTC",
          description="Every minute: OpenClaw sessions updated today (status, tokens, cost).")
def openclaw_schedule(context):
    return RunRequest(partition_key=today())


JOBS = [openclaw_job]
SENSORS = []
SCHEDULES = [openclaw_schedule]
