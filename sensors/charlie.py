"""Charlie's triggers: instance health every 30 s, activity when an instance has a newer event."""

from datetime import UTC, datetime, timedelta

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from resources.platform import PlatformResource
from sensors.triggers import changed, circuit_breaker, source_job, today

charlie_health_job = source_job("charlie_health_job", ["raw", "charlie", "instances"], ["raw", "charlie", "health"],
                                normalize=False, description="Land the Charlie registry and instance health.")
charlie_activity_job = source_job("charlie_activity_job", ["raw", "charlie", "activity"],
                                  description="Land Charlie activity events.")


@sensor(job=charlie_health_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Every 30 s: the Charlie registry and each instance's health.")
def charlie_health_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    breaker = circuit_breaker(platform, "charlie")
    if breaker.is_open():
        return SkipReason(breaker.reason())
    return RunRequest(partition_key=today())


@sensor(job=charlie_activity_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Every minute: lands Charlie activity when any instance has a newer event.")
def charlie_activity_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    def probe() -> str:
        charlie = platform.charlie()
        now = datetime.now(UTC).replace(tzinfo=None)
        marks = []
        for instance in charlie.instances():
            if isinstance(instance, dict):
                events = [e for e in charlie.activity(instance["id"], now - timedelta(hours=1), now)
                          if isinstance(e, dict)]
                marks.append(f"{instance['id']}={events[-1]['id'] if events else ''}")
        return ";".join(marks)

    return changed(context, platform, "charlie", probe)


JOBS = [charlie_health_job, charlie_activity_job]
SENSORS = [charlie_health_sensor, charlie_activity_sensor]
SCHEDULES = []
