"""One trigger per source, on the cadence of the seeds' data-sources table.

Polled APIs get a sensor that asks the source, cheaply, whether anything changed since the
cursor it keeps (Dagster stores sensor cursors in the instance, where a restart finds them) and
requests a run of that source's job for today's partition only then. A source whose circuit is
open is not asked at all: the sensor skips with the breaker's reason, and the last landed data
stays in the lake and the marts.
"""

import glob
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from cc_assets.normalized import EVENT_KEYS_KEY, EVENTS_KEY
from cc_assets.raw import source_cursors
from cc_events.webhooks import LANDING_STREAM as WEBHOOKS_STREAM
from resources.http.circuit import CircuitBreaker
from resources.http.client import MalformedPage, SourceUnavailable
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.platform import PlatformResource
from resources.storage.landing import LandingLog

NORMALIZED = AssetSelection.assets(EVENTS_KEY, EVENT_KEYS_KEY)


def source_job(name: str, *prefixes: list[str], normalize: bool = True, description: str):
    selection = AssetSelection.key_prefixes(*prefixes)
    return define_asset_job(name, selection=selection | NORMALIZED if normalize else selection,
                            description=description)


github_job = source_job("github_job", ["raw", "github"], description="Land GitHub PRs, issues, commits, reviews.")
linear_job = source_job("linear_job", ["raw", "linear"], description="Land Linear issues, teams and users.")
charlie_health_job = source_job("charlie_health_job", ["raw", "charlie", "instances"], ["raw", "charlie", "health"],
                                normalize=False, description="Land the Charlie registry and instance health.")
charlie_activity_job = source_job("charlie_activity_job", ["raw", "charlie", "activity"],
                                  description="Land Charlie activity events.")
openclaw_job = source_job("openclaw_job", ["raw", "openclaw"], description="Land OpenClaw agent sessions and costs.")
cron_events_job = source_job("cron_events_job", ["raw", "cron"], description="Land cron job run events.")
weather_job = source_job("weather_job", ["raw", "weather"], description="Land weather-arbitrage opportunities.")
system_metrics_job = source_job("system_metrics_job", ["raw", "system"], normalize=False,
                                description="Land host metrics from the agents' landing log.")
logs_job = source_job("logs_job", ["raw", "logs"], description="Tail the log files and land new lines.")
postgres_cdc_job = source_job("postgres_cdc_job", ["raw", "postgres_cdc"], normalize=False,
                              description="Pull the business databases' replication slot and land the changes.")
webhooks_job = source_job("webhooks_job", ["raw", "webhooks"],
                          description="Land the webhook deliveries the streaming sidecar acknowledged.")

SOURCE_JOBS = [github_job, linear_job, charlie_health_job, charlie_activity_job, openclaw_job, cron_events_job,
               weather_job, system_metrics_job, logs_job, postgres_cdc_job, webhooks_job]


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def _breaker(platform: PlatformResource, source: str) -> CircuitBreaker:
    settings = platform.settings()
    return CircuitBreaker(source, settings.state_dir / "circuits", settings.circuit_failures,
                          settings.circuit_open_s)


def _changed(context: SensorEvaluationContext, platform: PlatformResource, source: str,
             probe: Callable[[], str]):
    """Run the source's job for today when `probe()` (a fingerprint of the source) moved."""
    breaker = _breaker(platform, source)
    if breaker.is_open():
        return SkipReason(breaker.reason())
    try:
        fingerprint = probe()
    except SourceUnavailable as exc:
        return SkipReason(f"{source} did not answer the change probe: {exc}")
    if fingerprint == context.cursor:
        return SkipReason(f"no change in {source} since the last run")
    context.update_cursor(fingerprint)
    run_key = f"{source}-{hashlib.sha1(fingerprint.encode()).hexdigest()[:12]}"
    first = catch_up_from(platform, source)
    if first == today():
        return RunRequest(run_key=run_key, partition_key=first)
    # The last pull ended on an earlier day: land every day since, from the cursors, in one run.
    return RunRequest(run_key=run_key, tags={"dagster/asset_partition_range_start": first,
                                             "dagster/asset_partition_range_end": today()})


def catch_up_from(platform: PlatformResource, source: str, max_days: int = 7) -> str:
    """The first day the next pull of `source` must cover: its oldest incremental cursor's day
    (less the overlap), so updates made after the last pull but before midnight still land."""
    settings = platform.settings()
    marks = source_cursors(platform.cursors().all(), source)
    now = datetime.now(UTC).replace(tzinfo=None)
    if not marks:
        return now.date().isoformat()
    oldest = min(marks.values()) - timedelta(seconds=settings.incremental_overlap_s)
    return min(max(oldest.date(), (now - timedelta(days=max_days)).date()), now.date()).isoformat()


def _first(items) -> dict | None:
    for item in items:
        return None if isinstance(item, MalformedPage) else item
    return None


@sensor(job=github_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Every minute: a conditional request per repo (newest PR update, ETag); lands GitHub on change.")
def github_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    def probe() -> str:
        github = platform.github()
        marks = []
        for repo in github.repos():
            newest = _first(github.items(f"/repos/{repo}/pulls",
                                         {"state": "all", "sort": "updated", "direction": "desc", "per_page": 1}))
            marks.append(f"{repo}={(newest or {}).get('updated_at')}")
        return ";".join(marks)

    return _changed(context, platform, "github", probe)


@sensor(job=linear_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Every minute: the newest Linear issue update (updatedAt); lands Linear on change.")
def linear_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    return _changed(context, platform, "linear", lambda: platform.linear().newest_update() or "")


@sensor(job=charlie_health_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Every 30 s: the Charlie registry and each instance's health.")
def charlie_health_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    breaker = _breaker(platform, "charlie")
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

    return _changed(context, platform, "charlie", probe)


@schedule(job=openclaw_job, cron_schedule="* * * * *", execution_timezone="UTC",
          description="Every minute: OpenClaw sessions updated today (status, tokens, cost).")
def openclaw_schedule(context):
    return RunRequest(partition_key=today())


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

    return _changed(context, platform, "cron", probe)


@schedule(job=weather_job, cron_schedule="0 */2 * * *", execution_timezone="UTC",
          description="Every 2 hours: weather-arbitrage opportunities.")
def weather_schedule(context):
    return RunRequest(partition_key=today())


@sensor(job=system_metrics_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Every 30 s: lands host metrics when the agents' landing log grew.")
def system_metrics_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    path = LandingLog(platform.settings().landing_dir).path(METRICS_STREAM, datetime.now(UTC).date())
    size = str(path.stat().st_size) if path.exists() else "0"
    if size == (context.cursor or "0"):
        return SkipReason("no new metrics samples (is `python -m resources.ingest.metrics_agent` running?)")
    context.update_cursor(size)
    return RunRequest(partition_key=today())


@sensor(job=postgres_cdc_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.STOPPED,
        description="Every 15 s: pulls the replication slot of CC_CDC_PG_URL and lands its changes.")
def postgres_cdc_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    if not platform.settings().cdc_pg_url:
        return SkipReason("the CDC source is not configured: set CC_CDC_PG_URL")
    return RunRequest(partition_key=today())


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


@sensor(job=webhooks_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.STOPPED,
        description="Every 30 s: lands the sidecar's webhook deliveries for each day whose landing log grew.")
def webhooks_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    # Yesterday too: deliveries acknowledged just before midnight sit in yesterday's file.
    log = LandingLog(platform.settings().landing_dir)
    now = datetime.now(UTC).date()
    seen = json.loads(context.cursor) if context.cursor else {}
    sizes, requests = {}, []
    for day in (now - timedelta(days=1), now):
        path = log.path(WEBHOOKS_STREAM, day)
        sizes[day.isoformat()] = path.stat().st_size if path.exists() else 0
        if sizes[day.isoformat()] != seen.get(day.isoformat(), 0):
            requests.append(RunRequest(run_key=f"webhooks-{day.isoformat()}-{sizes[day.isoformat()]}",
                                       partition_key=day.isoformat()))
    if not requests:
        return SkipReason("no new webhook deliveries (is the sidecar `uvicorn streaming.app:app` running?)")
    context.update_cursor(json.dumps(sizes))
    return requests


SOURCE_SENSORS = [github_sensor, linear_sensor, charlie_health_sensor, charlie_activity_sensor, cron_events_sensor,
                  system_metrics_sensor, logs_sensor, postgres_cdc_sensor, webhooks_sensor]
SOURCE_SCHEDULES = [openclaw_schedule, weather_schedule]
