"""The alerts Dagster raises itself (cc_alerts/rules/pipeline.py), and the runs the alerts ask for.

A failed run opens `dagster_run_failed` about its job, and the job's next successful run resolves
it; a sensor or schedule whose tick failed opens `dagster_sensor_error`, its next good tick
resolves it; `alert_actions_sensor` turns the refreshes and backfills the sidecar's rules request
into runs of the source's job. Everything goes through the alert store (cc_alerts/store.py), so
the sidecar pushes, lists and notifies these like its own, with a link to the run in the UI.

These start RUNNING, unlike the sources' triggers: those start stopped because every tick asks
an outside API, while these read Dagster's own instance and the alert store, and an alert sensor
someone must remember to turn on is an alert that never comes. The action sensor launches only
what a rule asked for (one run per request, keyed by it) and never a source whose circuit is open.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date

from dagster import (
    DagsterEvent,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)

from cc_alerts.model import Finding, subject
from cc_alerts.rules.pipeline import RUN_FAILED, SENSOR_ERROR, dagster_ui_url, first_line
from cc_alerts.store import ActionRequest, alert_store
from resources.platform import PlatformResource
from sensors.reports import REPORT_JOBS
from sensors.sources import SOURCE_JOBS
from sensors.tiers import TIER_JOBS
from sensors.triggers import circuit_breaker, today

ALERTING = DefaultSensorStatus.RUNNING
# A tier move or a report that failed is retried by its next schedule and feeds no live page.
WARNING_JOBS = frozenset(job.name for job in (*TIER_JOBS, *REPORT_JOBS))


# --- failed runs ------------------------------------------------------------------------------
def run_failure_finding(run: DagsterRun, failure: DagsterEvent | None, step_failures: Sequence[DagsterEvent],
                        base_url: str) -> Finding:
    """The alert a failed run raises: its job, the failed steps and the first line of the error."""
    errors = [_step_error(event) for event in step_failures]
    if errors:
        steps = ", ".join(e.step_key or "?" for e in step_failures[:3]) + (" ..." if len(step_failures) > 3 else "")
        why = f"{len(errors)} step(s) failed ({steps}): {errors[0]}"
    else:
        why = first_line(failure.message if failure else None) or "the run failed before any step ran"
    return Finding(RUN_FAILED, subject("job", run.job_name),
                   "warning" if run.job_name in WARNING_JOBS else "critical",
                   f"{run.job_name} failed (run {run.run_id[:8]}): {why}"[:1000],
                   links={"run": f"{base_url}/runs/{run.run_id}"})


def _step_error(event: DagsterEvent) -> str:
    data = event.step_failure_data
    if data is None:
        return first_line(event.message)
    if data.user_failure_data is not None and data.user_failure_data.description:
        return first_line(data.user_failure_data.description)
    error = data.error
    # Dagster wraps what the asset raised ("Error occurred while executing op ..."): its cause says why.
    while error is not None and error.cause is not None:
        error = error.cause
    return first_line(error.message if error else event.message)


def _succeeded_since(instance: DagsterInstance, run: DagsterRun) -> str | None:
    """The id of a run of the same job that succeeded after `run` was created (the success
    sensor may see it before this sensor sees the failure)."""
    record = instance.get_run_record_by_id(run.run_id)
    after = record.create_timestamp if record else None
    later = instance.get_run_records(RunsFilter(job_name=run.job_name, statuses=[DagsterRunStatus.SUCCESS],
                                                created_after=after), limit=1)
    return later[0].dagster_run.run_id if later else None


@run_failure_sensor(default_status=ALERTING,
                    description="On every failed run (any job): opens a `dagster_run_failed` alert about its job, "
                                "with the run's link and the error's first line.")
def run_failure_alert_sensor(context: RunFailureSensorContext, platform: PlatformResource):
    settings = platform.settings()
    run = context.dagster_run
    finding = run_failure_finding(run, context.failure_event, context.get_step_failure_events(),
                                  dagster_ui_url(settings))
    with closing(alert_store(settings)) as store:
        store.raise_alert(finding)
        later = _succeeded_since(context.instance, run)
        if later is not None:
            store.resolve(RUN_FAILED, finding.subject, message=f"{run.job_name} succeeded again (run {later[:8]})")
    context.log.info(finding.message)


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, default_status=ALERTING,
                   description="On every successful run: resolves its job's `dagster_run_failed` alert.")
def run_success_alert_sensor(context: RunStatusSensorContext, platform: PlatformResource):
    run = context.dagster_run
    with closing(alert_store(platform.settings())) as store:
        change = store.resolve(RUN_FAILED, subject("job", run.job_name),
                               message=f"{run.job_name} succeeded again (run {run.run_id[:8]})")
    if change is not None:
        context.log.info(f"resolved: {change.alert.message}")


# --- sensors and schedules whose tick failed --------------------------------------------------
@dataclass(frozen=True)
class Tick:
    at: float
    failed: bool
    error: str


@dataclass(frozen=True)
class Instigator:
    name: str
    kind: str  # "sensor" or "schedule"
    location: str
    running: bool
    ticks: list[Tick]  # finished ticks after the cursor, newest first


def instigators(instance: DagsterInstance, after: dict[str, float]) -> Iterator[Instigator]:
    """Every sensor and schedule the instance knows, with its finished ticks newer than `after`
    (by name; the latest tick alone for one not seen yet).

    Dagster has no public API for ticks (the UI reads them through GraphQL): this is the one
    place that reads `dagster._core`'s instigator states and ticks."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus

    for state in instance.all_instigator_state():
        if state.instigator_type not in (InstigatorType.SENSOR, InstigatorType.SCHEDULE):
            continue
        name = state.instigator_name
        seen = after.get(name)
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=seen,
                                   limit=100 if seen is not None else 1)
        finished = []
        for tick in ticks:
            if tick.status == TickStatus.STARTED:
                continue
            error = tick.error
            while error is not None and error.cause is not None:
                error = error.cause
            finished.append(Tick(tick.timestamp, tick.status == TickStatus.FAILURE,
                                 first_line(error.message) if error else ""))
        yield Instigator(name, "schedule" if state.instigator_type == InstigatorType.SCHEDULE else "sensor",
                         state.origin.repository_origin.code_location_origin.location_name, state.is_running,
                         sorted(finished, key=lambda t: t.at, reverse=True))


@sensor(minimum_interval_seconds=30, default_status=ALERTING,
        description="Every 30 s: opens a `dagster_sensor_error` alert per sensor or schedule whose last tick failed "
                    "(with the error); resolves it at its next successful or skipped tick, or when it is stopped.")
def sensor_error_alert_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    settings = platform.settings()
    base = dagster_ui_url(settings)
    cursor: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
    failing, resolved = [], []
    with closing(alert_store(settings)) as store:
        live = {a.subject for a in store.list(rule=SENSOR_ERROR, state=("open", "acknowledged"), limit=1000)}
        for found in instigators(context.instance, cursor):
            if found.name == context.sensor_name:
                continue
            about = subject("sensor", found.name)
            if not found.running:
                if about in live:
                    store.resolve(SENSOR_ERROR, about, message=f"{found.kind} {found.name} was stopped")
                    resolved.append(found.name)
                continue
            if not found.ticks:
                if about in live:
                    failing.append(found.name)
                continue
            latest = found.ticks[0]
            if latest.failed:
                failures = sum(t.failed for t in found.ticks)
                store.raise_alert(Finding(
                    SENSOR_ERROR, about, "warning",
                    f"{found.kind} {found.name} failed: {latest.error or 'no error message'}"[:1000],
                    links={found.kind: f"{base}/locations/{found.location}/{found.kind}s/{found.name}"},
                    count=failures))
                failing.append(found.name)
            elif about in live:
                store.resolve(SENSOR_ERROR, about, message=f"{found.kind} {found.name} ticks again")
                resolved.append(found.name)
            cursor[found.name] = latest.at
    context.update_cursor(json.dumps(cursor, sort_keys=True))
    said = [f"failing: {', '.join(sorted(failing))}" if failing else "no sensor or schedule is failing",
            f"resolved: {', '.join(sorted(resolved))}" if resolved else ""]
    return SkipReason("; ".join(s for s in said if s))


# --- refreshes and backfills the rules asked for ---------------------------------------------
def jobs_by_source() -> dict[str, list[str]]:
    """Each source's jobs (`source_job` records the source): Charlie's health and activity are two."""
    out: dict[str, list[str]] = {}
    for job in SOURCE_JOBS:
        out.setdefault(str(job.metadata["source"]), []).append(job.name)
    return out


def action_runs(request: ActionRequest, jobs: Sequence[str]) -> list[RunRequest]:
    """A refresh lands today; a backfill lands `start`..`end` (ISO days) in one run per job."""
    tags = {"cc/alert_action": request.kind, **({"cc/alert_id": request.alert_id} if request.alert_id else {})}
    start = request.start or today()
    end = request.end or today()
    if request.kind == "backfill" and start > end:
        start, end = end, start
    runs = []
    for job in jobs:
        key = f"alert-action-{request.id}-{job}"
        if request.kind == "refresh" or start == end:
            day = today() if request.kind == "refresh" else date.fromisoformat(start).isoformat()
            runs.append(RunRequest(run_key=key, job_name=job, partition_key=day, tags=tags))
        else:
            runs.append(RunRequest(run_key=key, job_name=job, tags={
                **tags, "dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}))
    return runs


@sensor(jobs=SOURCE_JOBS, minimum_interval_seconds=30, default_status=ALERTING,
        description="Every 30 s: runs the source's job for each refresh (today) or backfill (a range) an alert "
                    "rule requested; a source whose circuit is open is skipped with the breaker's reason.")
def alert_actions_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    with closing(alert_store(platform.settings())) as store:
        requests = store.take_actions()
    if not requests:
        return SkipReason("no refresh or backfill requested")
    by_source = jobs_by_source()
    runs, skipped = [], []
    for request in requests:
        jobs = by_source.get(request.source)
        if not jobs:
            skipped.append(f"{request.kind} of {request.source}: no job lands that source")
            continue
        breaker = circuit_breaker(platform, request.source)
        if breaker.is_open():
            skipped.append(f"{request.kind} of {request.source} skipped: {breaker.reason()}")
            continue
        runs += action_runs(request, jobs)
    for reason in skipped:
        context.log.info(reason)
    if not runs:
        return SkipReason("; ".join(skipped))
    return SensorResult(run_requests=runs)


ALERT_SENSORS = [run_failure_alert_sensor, run_success_alert_sensor, sensor_error_alert_sensor, alert_actions_sensor]
