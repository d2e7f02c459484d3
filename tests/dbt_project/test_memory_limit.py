"""`CC_DBT_DUCKDB_MEMORY_LIMIT` reaches the DuckDB a dbt build runs in (the 10M-event build took
13.8 GiB with DuckDB's default of 80 % of RAM), and a value DuckDB could not take is refused
when the settings are read, not half-way through a build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resources.settings import Settings, SettingsError

PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"


def _build_memory_limit(settings: Settings, tmp_path: Path) -> str:
    from dbt.cli.main import dbtRunner

    old = dict(os.environ)
    os.environ.update(settings.dbt_env())
    try:
        result = dbtRunner().invoke(["show", "--quiet", "--inline", "select current_setting('memory_limit') as m",
                                     "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT), "--target", "duckdb",
                                     "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path)])
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert result.success, result.exception
    return str(result.result.results[0].agate_table.rows[0][0])


def test_the_build_runs_under_the_limit_set(tmp_path):
    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path), "CC_DBT_DUCKDB_MEMORY_LIMIT": "1536MiB"})
    assert _build_memory_limit(settings, tmp_path) == "1.5 GiB"


def test_unset_it_is_duckdbs_own_default(tmp_path):
    import duckdb

    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path)})
    default = duckdb.connect().execute("select current_setting('memory_limit')").fetchone()[0]
    assert _build_memory_limit(settings, tmp_path) == default


def test_a_limit_duckdb_cannot_read_is_refused_up_front():
    with pytest.raises(SettingsError, match="CC_DBT_DUCKDB_MEMORY_LIMIT"):
        Settings.from_env({"CC_DBT_DUCKDB_MEMORY_LIMIT": "80%"})
