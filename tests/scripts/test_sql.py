"""`make sql`: the DuckDB shell on the catalog, through `python -m scripts.run scripts.sql` as the
Makefile runs it, on a small data folder (a serving snapshot and an empty lake)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from resources.storage.history import ROLLUP_SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def sql(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CC_")}, "CC_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "scripts.run", "scripts.sql", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "serving").mkdir(parents=True)
    with duckdb.connect(str(data / "serving" / "marts.duckdb")) as con:
        con.execute("create table fct_workflows as select 'linear:ENG-' || i as workflow_id, "
                    "'active' as status from range(3) t(i)")
    # One cold day of the hourly rollup: the tiers as the tier jobs leave them.
    rollup = data / "lake" / "cold" / "event_volume_1h" / "date=2026-11-01" / "part-0.parquet"
    rollup.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"bucket_start_at": datetime(2026, 11, 1, 9), "source": "github",
                                          "event_type": "github.pr.opened", "actor_type": "human",
                                          "event_count": 4}], schema=ROLLUP_SCHEMA), rollup)
    return data


def test_a_statement_runs_in_the_duckdb_shell_on_the_catalog(data_dir: Path) -> None:
    done = sql(data_dir, "-csv", "-c", "select (select count(*) from fct_workflows) as workflows, "
                                       "(select sum(event_count) from event_volume_history) as events")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "workflows,events\n3,4\n"


def test_it_opens_while_dbt_holds_the_warehouse(data_dir: Path) -> None:
    with duckdb.connect(str(data_dir / "warehouse.duckdb")):  # a dbt build holds the file's write lock
        done = sql(data_dir, "-c", "select count(*) from fct_workflows")
    assert done.returncode == 0, done.stderr
    assert " 3 " in done.stdout


@pytest.mark.parametrize(("statement", "message"), [
    ("selec 1", 'Parser Error: syntax error at or near "selec"'),
    ("from fct_workflow", "Catalog Error: Table with name fct_workflow does not exist!"),
])
def test_a_sql_typo_is_duckdbs_one_line_error(data_dir: Path, statement: str, message: str) -> None:
    done = sql(data_dir, "-c", statement)
    assert done.returncode != 0
    assert (done.stdout, done.stderr) == ("", message + "\n")


def test_no_data_yet_says_to_run_the_demo(tmp_path: Path) -> None:
    done = sql(tmp_path / "empty")
    assert done.returncode == 1
    assert (done.stdout, done.stderr) == ("", f"no data in {tmp_path / 'empty'}: run `make demo` first\n")


def test_the_init_file_goes_with_the_shell(data_dir: Path, tmp_path: Path) -> None:
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CC_")}, "CC_DATA_DIR": str(data_dir),
           "TMPDIR": str(env_tmp)}
    done = subprocess.run([sys.executable, "-m", "scripts.run", "scripts.sql", "-c", "from tier_partitions"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not any(p.name.startswith("cc-sql-") for p in env_tmp.iterdir())


def test_the_catalog_file_is_written_where_configured_and_rewritten_when_stale(data_dir: Path, tmp_path: Path) -> None:
    catalog = tmp_path / "bi" / "catalog.duckdb"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CC_")}, "CC_DATA_DIR": str(data_dir),
           "CC_CATALOG_PATH": str(catalog)}

    def events() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scripts.run", "scripts.sql", "-csv", "-noheader", "-c",
                               "select sum(event_count) from event_volume_history"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert events().stdout == "4\n"
    written = catalog.stat().st_mtime_ns
    assert events().stdout == "4\n" and catalog.stat().st_mtime_ns == written  # current: opened as it is
    # A tier job adds a cold day: the next `make sql` rewrites the file first.
    day = data_dir / "lake" / "cold" / "event_volume_1h" / "date=2026-11-02" / "part-0.parquet"
    day.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"bucket_start_at": datetime(2026, 11, 2, 9), "source": "linear",
                                          "event_type": "linear.issue.created", "actor_type": "human",
                                          "event_count": 6}], schema=ROLLUP_SCHEMA), day)
    assert events().stdout == "10\n"
    assert sorted(p.name for p in catalog.parent.iterdir()) == ["catalog.duckdb"]  # no temporary file left
    assert not (data_dir / "catalog.duckdb").exists()


def test_the_catalog_file_is_read_only_in_the_shell(data_dir: Path) -> None:
    done = sql(data_dir, "-c", "create table notes (x int)")
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and "read-only" in done.stderr
