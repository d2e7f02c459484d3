"""GitHub's trigger: a conditional request per repo (ETag), and its job."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, sensor

from resources.platform import PlatformResource
from sensors.triggers import changed, first_item, source_job

github_job = source_job("github_job", ["raw", "github"], description="Land GitHub PRs, issues, commits, reviews.")


@sensor(job=github_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.STOPPED,
        description="Every minute: a conditional request per repo (newest PR update, ETag); lands GitHub on change.")
def github_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    def probe() -> str:
        github = platform.github()
        marks = []
        for repo in github.repos():
            newest = first_item(github.items(f"/repos/{repo}/pulls",
                                         {"state": "all", "sort": "updated", "direction": "desc", "per_page": 1}))
            marks.append(f"{repo}={(newest or {}).get('updated_at')}")
        return ";".join(marks)

    return changed(context, platform, "github", probe)


JOBS = [github_job]
SENSORS = [github_sensor]
SCHEDULES = []
