"""The log files' trigger: a file matching CC_LOG_PATHS grew or was rotated."""

import glob
import os

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from resources.platform import PlatformResource
from sensors.triggers import source_job, today

logs_job = source_job("logs_job", ["raw", "logs"], description="Tail the log files and land new lines.")


@sensor(job=logs_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Every 30 s: tails CC_LOG_PATHS (rotation and truncation followed by inode + offset).")
def logs_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    patterns = platform.settings().log_patterns
    files = [path for pattern in patterns for path in glob.glob(pattern)]
    if not files:
        return SkipReason(f"no log files match {', '.join(patterns)} (set CC_LOG_PATHS)")
    mark = ";".join(f"{p}={os.stat(p).st_size}:{os.stat(p).st_ino}" for p in sorted(files))
    if mark == context.cursor:
        return SkipReason("no log file changed")
    context.update_cursor(mark)
    return RunRequest(partition_key=today())


JOBS = [logs_job]
SENSORS = [logs_sensor]
SCHEDULES = []
