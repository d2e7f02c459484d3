"""The CDC source's trigger: pull the replication slot every 15 s when configured."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from resources.platform import PlatformResource
from sensors.triggers import source_job, today

postgres_cdc_job = source_job("postgres_cdc_job", ["raw", "postgres_cdc"], normalize=False,
                              description="Pull the business databases' replication slot and land the changes.")


@sensor(job=postgres_cdc_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.STOPPED,
        description="Every 15 s: pulls the replication slot of CC_CDC_PG_URL and lands its changes.")
def postgres_cdc_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    if not platform.settings().cdc_pg_url:
        return SkipReason("the CDC source is not configured: set CC_CDC_PG_URL")
    return RunRequest(partition_key=today())


JOBS = [postgres_cdc_job]
SENSORS = [postgres_cdc_sensor]
SCHEDULES = []
