"""The report jobs, and the sensor that asks for a period's reports once the data they describe is
built: after a successful `transform_job` (the marts) and `tiers_daily_job` (the warm volume and the
cold copy) that both started after the period ended. Not a clock: a build that is late makes the
report late, never wrong. Once per period (the run key), whatever number of builds follow; a
backfill or a re-run is a normal materialization of the partition (README "Reports")."""

from __future__ import annotations

from datetime import UTC, datetime

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    RunRequest,
    RunsFilter,
    SkipReason,
    define_asset_job,
    run_status_sensor,
)

from cc_assets.reports import REPORT_KEYS
from cc_assets.reports.data import KINDS, Period
from sensors.jobs import transform_job
from sensors.tiers import tiers_daily_job

REPORT_JOBS = [
    define_asset_job(f"reports_{kind}_job", selection=AssetSelection.assets(REPORT_KEYS[kind]),
                     description=f"Render, file and e-mail the {kind} operations report of a period (or a range).")
    for kind in KINDS
]
JOB_OF = dict(zip(KINDS, REPORT_JOBS, strict=True))
BUILT_BY = (transform_job.name, tiers_daily_job.name)


def _built_after(instance, job_name: str, moment: datetime) -> bool:
    runs = instance.get_run_records(RunsFilter(job_name=job_name, statuses=[DagsterRunStatus.SUCCESS],
                                               created_after=moment.replace(tzinfo=UTC)), limit=1)
    return bool(runs)


def due(instance, now: datetime) -> list[RunRequest]:
    """A run per kind for its latest finished period, when both builds ran after it ended."""
    requests = []
    for kind in KINDS:
        period = Period.last_complete(kind, now)
        if all(_built_after(instance, job, period.end_at) for job in BUILT_BY):
            requests.append(RunRequest(run_key=f"{kind}-{period.key}", job_name=JOB_OF[kind].name,
                                       partition_key=period.key))
    return requests


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[transform_job, tiers_daily_job],
                   request_jobs=REPORT_JOBS,
                   description="After the marts and the warm tier are built past the end of a day, week or "
                               "month: that period's operations report (once per period).")
def reports_after_build_sensor(context):
    requests = due(context.instance, datetime.now(UTC).replace(tzinfo=None))
    return requests or SkipReason("no finished period has both its builds yet")


REPORT_SENSORS = [reports_after_build_sensor]
