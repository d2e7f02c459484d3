"""The sources' triggers, one module per source (its job and its sensor or schedule), on the cadence
of the seeds' data-sources table; adding a source adds its module to `SOURCES`."""

from sensors import (
    charlie,
    cron,
    github,
    linear,
    logs,
    openclaw,
    postgres_cdc,
    system_metrics,
    weather,
    webhooks,
)

SOURCES = [github, linear, charlie, openclaw, cron, weather, system_metrics, logs, postgres_cdc, webhooks]

SOURCE_JOBS = [job for source in SOURCES for job in source.JOBS]
SOURCE_SENSORS = [sensor for source in SOURCES for sensor in source.SENSORS]
SOURCE_SCHEDULES = [schedule for source in SOURCES for schedule in source.SCHEDULES]
