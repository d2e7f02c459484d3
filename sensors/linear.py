"""Linear's trigger: the newest issue update, and its job."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, sensor

from resources.platform import PlatformResource
from sensors.triggers import changed, source_job

linear_job = source_job("linear_job", ["raw", "linear"], description="Land Linear issues, teams and users.")


@sensor(job=linear_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Every minute: the newest Linear issue update (updatedAt); lands Linear on change.")
def linear_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    return changed(context, platform, "linear", lambda: platform.linear().newest_update() or "")


JOBS = [linear_job]
SENSORS = [linear_sensor]
SCHEDULES = []
