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
