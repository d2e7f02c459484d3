"""The pipeline's metrics: what Dagster ran (durations by job and status, per asset, rows landed and
dead letters per source) written for Prometheus by `pipeline_metrics_sensor`, each run counted once,
and served by the sidecar's `/metrics` after its own."""

from __future__ import annotations

import requests
from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    MaterializeResult,
    asset,
    build_sensor_context,
    job,
    materialize,
    op,
)
from prometheus_client.parser import text_string_to_metric_families

from cc_assets.definitions import defs
from resources.platform import PlatformResource
from scripts.chaos.harness import SECRETS, Sidecar
from sensors.pipeline_metrics import FILE, pipeline_metrics_sensor


@asset(key=["raw", "github", "pull_requests"])
def pull_requests() -> MaterializeResult:
    return MaterializeResult(metadata={"rows_in_run": 5, "dead_letters_in_run": 1})


@op
def fails() -> None:
    raise OSError("the disk is full")


@job(name="tiers_daily_job")
def failing_job():
    fails()


def samples(path) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(path.read_text()) for s in family.samples}


def tick(instance, platform) -> str:
    context = build_sensor_context(instance=instance, resources={"platform": platform})
    return pipeline_metrics_sensor(context).skip_message


def test_runs_assets_rows_and_dead_letters_are_exported_once_each_and_served_by_the_sidecar(tmp_path):
    platform = PlatformResource(data_dir=str(tmp_path / "data"))
    exported = platform.settings().metrics_dir / FILE
    with DagsterInstance.ephemeral() as instance:
        for _ in range(2):
            assert materialize([pull_requests], instance=instance).success
        assert not failing_job.execute_in_process(instance=instance, raise_on_error=False).success
        assert tick(instance, platform) == "3 run(s) added to the pipeline metrics"
        first = samples(exported)
        assert first[("cc_dagster_runs_total", (("job", "__ephemeral_asset_job__"), ("status", "success")))] == 2
        assert first[("cc_dagster_runs_total", (("job", "tiers_daily_job"), ("status", "failure")))] == 1
        assert first[("cc_dagster_run_duration_seconds_count", (("job", "tiers_daily_job"), ("status", "failure")))] == 1
        assert first[("cc_dagster_rows_landed_total", (("source", "github"),))] == 10
        assert first[("cc_dagster_dead_letters_total", (("source", "github"),))] == 2
        assert first[("cc_dagster_asset_duration_seconds_count", (("asset", "raw/github/pull_requests"),))] == 2

        assert tick(instance, platform) == "no run ended since the last look"
        assert samples(exported) == first  # nothing counted twice
        assert materialize([pull_requests], instance=instance).success
        tick(instance, platform)
        assert samples(exported)[("cc_dagster_rows_landed_total", (("source", "github"),))] == 15

    server = Sidecar(tmp_path / "data", dict(SECRETS)).start()
    try:
        served = requests.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
    families = {f.name for f in text_string_to_metric_families(served)}
    assert {"cc_webhook_deliveries", "cc_dagster_runs", "cc_dagster_rows_landed"} <= families


def test_the_sensor_is_registered_and_running_from_the_start():
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    assert sensors["pipeline_metrics_sensor"].default_status == DefaultSensorStatus.RUNNING
    assert sensors["pipeline_metrics_sensor"].description
