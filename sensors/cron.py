"""The cron runner's trigger: its event log polled by sequence."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, sensor

from resources.platform import PlatformResource
from sensors.triggers import changed, source_job

cron_events_job = source_job("cron_events_job", ["raw", "cron"], description="Land cron job run events.")


@sensor(job=cron_events_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="As events arrive: polls the cron runner's event log by sequence and lands new runs.")
def cron_events_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    def probe() -> str:
        after = int(context.cursor or 0)
        last = after
        for event in platform.cron().events(after_seq=after):
            if isinstance(event, dict) and isinstance(event.get("seq"), int):
                last = max(last, event["seq"])
        return str(last)

    return changed(context, platform, "cron", probe)


JOBS = [cron_events_job]
SENSORS = [cron_events_sensor]
SCHEDULES = []
