"""Host metrics' trigger: the agents' landing log grew."""

from datetime import UTC, datetime

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.platform import PlatformResource
from resources.storage.landing import landing_for
from sensors.triggers import source_job, today

system_metrics_job = source_job("system_metrics_job", ["raw", "system"], normalize=False,
                                description="Land host metrics from the agents' landing log.")


@sensor(job=system_metrics_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Every 30 s: lands host metrics when the agents' landing log grew.")
def system_metrics_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    size = str(landing_for(platform.settings()).size(METRICS_STREAM, datetime.now(UTC).date()))
    if size == (context.cursor or "0"):
        return SkipReason("no new metrics samples (is `python -m resources.ingest.metrics_agent` running?)")
    context.update_cursor(size)
    return RunRequest(partition_key=today())


JOBS = [system_metrics_job]
SENSORS = [system_metrics_sensor]
SCHEDULES = []
