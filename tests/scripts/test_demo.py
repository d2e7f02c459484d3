"""`make demo` as a new user runs it (`python -m scripts.run scripts.demo`, as the Makefile does), on
the embedded DuckDB warehouse and on Postgres: it exits 0, prints its steps and a summary read from
the warehouse it built, stays short, and ends with the exact ground-truth match.

A small world (the demo's sizes are settings: 300 events over one day, more than every line the
test reads needs) keeps each run to a minute or two here."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.chaos.harness import throwaway_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_pg_url(pg_admin_url: str) -> Iterator[str]:
    """A database of the demo's own: it writes schemas `raw` and `analytics`, which other tests' share."""
    with throwaway_database(pg_admin_url, "cc_demo") as url:
        yield url


def run_demo(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    home = tmp_path / "dagster_home"
    home.mkdir()
    return subprocess.run(
        [sys.executable, "-m", "scripts.run", "scripts.demo"], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**base, "CC_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(home),
             "CC_DEMO_EVENTS": "300", "CC_DEMO_DAYS": "1",
             # The session's niceness for dbt builds (tests/conftest.py): the test waits for the demo's; and
             # no catalog row counts and column types, which no line the test reads shows (test_pipeline
             # checks them), read per model as dbt builds it: seconds per build, most on Postgres.
             "CC_DBT_NICENESS": os.environ["CC_DBT_NICENESS"],
             "CC_DBT_CATALOG_METADATA": os.environ["CC_DBT_CATALOG_METADATA"], **env})


def _check(done: subprocess.CompletedProcess, warehouse_line: str) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) <= 80, f"{len(lines)} lines:\n{done.stdout}"
    assert "\x1b[" not in done.stdout, "colour codes in output that is not a terminal"
    truth = next(i for i, line in enumerate(lines) if line.startswith("Correlation vs the generator's ground truth:"))
    assert lines[truth].endswith("exact"), lines[truth]
    assert lines[truth + 1].startswith("Live state vs the build"), lines[truth + 1]
    assert any(line.startswith(warehouse_line) for line in lines), done.stdout
    assert any(line.startswith("  dbt: ") and ", 0 failed" in line for line in lines), done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    # The daily and the weekly report, each printed as a path that exists.
    reports = [line.split("  (")[0].split()[-1] for line in done.stdout.splitlines() if "report.html" in line]
    assert [Path(r).parts[-3] for r in reports] == ["daily", "weekly"], done.stdout
    assert all(Path(r).exists() and Path(r).with_name("report.pdf").exists() for r in reports), reports


def test_demo_on_duckdb(tmp_path: Path) -> None:
    done = run_demo(tmp_path)
    _check(done, "Marts (DuckDB):")
    # Beside the ground truth: the world replayed through the sidecar, its live state equal to its build.
    parity = next(line for line in done.stdout.splitlines() if line.startswith("Live state vs the build"))
    assert "workflows equal field by field" in parity and parity.endswith("exact"), parity
    # Its "Next:" one-liner on the analysts' catalog works while a dbt build holds the warehouse.
    shown = next(line for line in done.stdout.splitlines() if "duckdb -readonly" in line).strip().strip("`")
    argv = shlex.split(shown)
    assert argv[0] == ".venv/bin/duckdb"
    argv[0] = str(Path(sys.executable).parent / "duckdb")  # the same shared venv's duckdb-cli
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(120)", str(tmp_path / "data" / "warehouse.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        shell = subprocess.run([argv[0], "-csv", *argv[1:]], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.startswith("workflow_id,") and len(shell.stdout.splitlines()) == 6


@pytest.mark.postgres
def test_demo_on_postgres_prints_its_summary_from_postgres(tmp_path: Path, demo_pg_url: str) -> None:
    done = run_demo(tmp_path, CC_WAREHOUSE="postgres", CC_PG_URL=demo_pg_url)
    dbname = demo_pg_url.rsplit("/", 1)[1]
    _check(done, f"Marts (Postgres 127.0.0.1:5432/{dbname}, schema analytics):")
