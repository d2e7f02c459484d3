"""The webhook deliveries' trigger: the sidecar's landing log grew (today's or yesterday's)."""

import json
from datetime import UTC, datetime, timedelta

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from cc_events.sources.webhooks import LANDING_STREAM as WEBHOOKS_STREAM
from resources.platform import PlatformResource
from resources.storage.landing import landing_for
from sensors.triggers import source_job

webhooks_job = source_job("webhooks_job", ["raw", "webhooks"],
                          description="Land the webhook deliveries the streaming sidecar acknowledged.")


@sensor(job=webhooks_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Every 30 s: lands the sidecar's webhook deliveries for each day whose landing log grew.")
def webhooks_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    # Yesterday too: deliveries acknowledged just before midnight sit in yesterday's file.
    log = landing_for(platform.settings())  # the files, or the shared landing in Postgres (lines, not bytes)
    now = datetime.now(UTC).date()
    seen = json.loads(context.cursor) if context.cursor else {}
    sizes, requests = {}, []
    for day in (now - timedelta(days=1), now):
        sizes[day.isoformat()] = log.size(WEBHOOKS_STREAM, day)  # every sidecar worker's files
        if sizes[day.isoformat()] != seen.get(day.isoformat(), 0):
            requests.append(RunRequest(run_key=f"webhooks-{day.isoformat()}-{sizes[day.isoformat()]}",
                                       partition_key=day.isoformat()))
    if not requests:
        return SkipReason("no new webhook deliveries (is the sidecar `uvicorn streaming.app:app` running?)")
    context.update_cursor(json.dumps(sizes))
    return requests


JOBS = [webhooks_job]
SENSORS = [webhooks_sensor]
SCHEDULES = []
