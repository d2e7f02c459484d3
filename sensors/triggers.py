"""What the sources' triggers share: a source's job, today's partition, the circuit breaker and the
change probe that runs a job only when its source moved.

Polled APIs get a sensor that asks the source, cheaply, whether anything changed since the
cursor it keeps (Dagster stores sensor cursors in the instance, where a restart finds them) and
requests a run of that source's job for today's partition only then. A source whose circuit is
open is not asked at all: the sensor skips with the breaker's reason, and the last landed data
stays in the lake and the marts.
"""

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from dagster import AssetSelection, RunRequest, SensorEvaluationContext, SkipReason, define_asset_job

from cc_assets.incremental import source_cursors
from cc_assets.normalized import EVENT_KEYS_KEY, EVENTS_KEY
from resources.http.circuit import CircuitBreaker
from resources.http.client import MalformedPage, SourceUnavailable
from resources.platform import PlatformResource

NORMALIZED = AssetSelection.assets(EVENTS_KEY, EVENT_KEYS_KEY)


def source_job(name: str, *prefixes: list[str], normalize: bool = True, description: str):
    selection = AssetSelection.key_prefixes(*prefixes)
    # `source` names what the job lands (`raw/<source>/...`): the refresh an alert asks for finds it by it.
    # The run queue lets one run per source go at a time (`cc/source`: resources/dagster_home.py).
    return define_asset_job(name, selection=selection | NORMALIZED if normalize else selection,
                            description=description, metadata={"source": prefixes[0][1]},
                            tags={"cc/source": prefixes[0][1]})


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def circuit_breaker(platform: PlatformResource, source: str) -> CircuitBreaker:
    settings = platform.settings()
    return CircuitBreaker(source, settings.state_dir / "circuits", settings.circuit_failures,
                          settings.circuit_open_s)


def changed(context: SensorEvaluationContext, platform: PlatformResource, source: str,
             probe: Callable[[], str]):
    """Run the source's job for today when `probe()` (a fingerprint of the source) moved."""
    breaker = circuit_breaker(platform, source)
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


def first_item(items) -> dict | None:
    for item in items:
        return None if isinstance(item, MalformedPage) else item
    return None
