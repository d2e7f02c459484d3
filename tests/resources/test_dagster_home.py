"""The Dagster instance: embedded storage by default, Postgres storage with CC_DAGSTER_PG_URL."""

import psycopg
import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from resources.dagster_home import write_instance_config
from resources.settings import Settings


@asset
def heartbeat() -> int:
    return 1


def test_embedded_instance_keeps_runs_under_the_project_home(tmp_path):
    home = write_instance_config(Settings.from_env({}), tmp_path / "home")
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert materialize([heartbeat], instance=instance).success
        assert instance.get_latest_materialization_event(AssetKey("heartbeat")) is not None
    assert (home / "history").is_dir()


@pytest.mark.postgres
def test_postgres_instance_stores_runs_and_events_in_postgres(tmp_path, pg_database, monkeypatch):
    monkeypatch.setenv("CC_DAGSTER_PG_URL", pg_database)
    home = write_instance_config(Settings.from_env({"CC_DAGSTER_PG_URL": pg_database}), tmp_path / "home")
    assert pg_database not in (home / "dagster.yaml").read_text()  # the URL stays in the environment
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = materialize([heartbeat], instance=instance)
        assert result.success
    with psycopg.connect(pg_database) as conn:
        runs = conn.execute("select count(*) from runs where run_id = %s", (result.run_id,)).fetchone()[0]
        materializations = conn.execute(
            "select count(*) from event_logs where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
            (result.run_id,),
        ).fetchone()[0]
    assert (runs, materializations) == (1, 1)


def test_the_run_queue_limits_sources_builds_and_tiers_and_retries_all_but_dbt(tmp_path):
    from cc_assets.definitions import defs

    home = write_instance_config(Settings.from_env({"CC_DAGSTER_MAX_RUNS": "5", "CC_DAGSTER_RUN_RETRIES": "3"}),
                                 tmp_path / "home")
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
        queue = config.run_queue_config
        assert queue.max_concurrent_runs == 5
        limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
        assert limits["cc/source"] == {"key": "cc/source", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        assert limits["cc/dbt"]["limit"] == limits["cc/tiers"]["limit"] == 1
        assert config.pool_config.default_pool_limit == 1
        assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 3)

    jobs = {job.name: job for job in defs.resolve_all_job_defs()}
    # Every source's job is limited per source; so is the job that lands them all.
    sources = {name: job.tags.get("cc/source") for name, job in jobs.items() if job.metadata.get("source")}
    assert sources["github_job"] == "github" and sources["linear_job"] == "linear"
    assert sources["charlie_health_job"] == sources["charlie_activity_job"] == "charlie"
    assert all(sources.values()) and len(sources) >= 10, sources
    assert jobs["ingest_job"].tags["cc/source"] == "all"
    # Each job that builds dbt models waits for the other; a failed build is not retried.
    assert jobs["transform_job"].tags == {"cc/dbt": "build", "dagster/retry_on_asset_or_op_failure": "false"}
    assert jobs["tiers_daily_job"].tags["cc/dbt"] and jobs["tiers_daily_job"].tags["cc/tiers"]
    for name in ("hot_job", "archive_job", "retention_job"):
        assert jobs[name].tags["cc/tiers"] == "move", name
    # The normalization of a day goes one at a time across runs.
    assert defs.resolve_assets_def(AssetKey(["normalized", "events"])).op.pool == "normalize"


def test_no_retries_when_set_to_zero(tmp_path):
    home = write_instance_config(Settings.from_env({"CC_DAGSTER_RUN_RETRIES": "0"}), tmp_path / "home")
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_retries_enabled is False
