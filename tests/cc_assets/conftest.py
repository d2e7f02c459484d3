"""One sandbox world for the cc_assets tests, landed and built once per session.

`built_world`: four days of sandbox data ending 2026-11-20 15:30, landed and built on DuckDB (with
the catalog's row counts and column types), then landed again; tests/cc_assets/test_pipeline.py
checks the build and the re-run. `tiered`: a copy of it moved through every tier; test_tiers.py checks
the tiers on it, test_reports.py renders the operations reports from it. Each build of the project
takes tens of seconds, so the modules share these instead of each landing and building its own.

The world's shape and the job helpers are in `assets_world` (importlib mode: conftest is not importable)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance

from resources.platform import PlatformResource
from resources.settings import Settings
from resources.storage.tiers import FINGERPRINT_SQL, Fingerprint, TierStore
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
DAYS = 4
EVENTS = 1500
PARTITIONS = [(END - timedelta(days=n)).date().isoformat() for n in range(DAYS, -1, -1)]
MONTH = "2026-11-01"


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def run_job(job: str, platform: PlatformResource, instance: DagsterInstance, definitions=None, **kwargs):
    """`job` of `definitions` (the embedded DuckDB's by default) in process on `platform`."""
    if definitions is None:
        from cc_assets.definitions import defs as definitions
    result = definitions.resolve_job_def(job).execute_in_process(
        instance=instance, resources={"platform": platform}, raise_on_error=False, **kwargs)
    for event in result.all_events:
        if event.is_step_failure:  # shown with the test's output when an assertion on it fails
            print(f"{job}: step {event.step_key} failed: {event.event_specific_data.error.message}")
    return result


def run_pipeline(platform: PlatformResource, instance: DagsterInstance, definitions=None):
    """ingest_job over the world's days, then transform_job if it succeeded (else None)."""
    ingest = run_job("ingest_job", platform, instance, definitions, tags=range_tags(PARTITIONS[0], PARTITIONS[-1]))
    transform = run_job("transform_job", platform, instance, definitions) if ingest.success else None
    return ingest, transform


def catalog_metadata(result, key: AssetKey) -> dict:
    """What the catalog shows for `key` after the run: its materialization's row count and column types."""
    [materialization] = [m for m in result.asset_materializations_for_node("dbt_models") if m.asset_key == key]
    schema = materialization.metadata.get("dagster/column_schema")
    return {"row_count": getattr(materialization.metadata.get("dagster/row_count"), "value", None),
            "types": {c.name: c.type for c in schema.schema.columns} if schema else {}}


def lake_rows(data_dir: Path) -> dict[str, int]:
    """Rows per raw and normalized lake table."""
    from cc_events.registry import RAW_TABLES

    counts = {}
    for source, entity in [*RAW_TABLES, ("normalized", "events"), ("normalized", "event_keys")]:
        parts = ("raw", source, entity) if source != "normalized" else ("normalized", entity)
        files = sorted(data_dir.joinpath("lake", *parts).glob("date=*/part-0.parquet"))
        counts["/".join(parts)] = sum(pq.read_metadata(f).num_rows for f in files)
    return counts


def _landing_truth(data_dir) -> dict[str, Fingerprint]:
    """Per event day, the distinct events the landing lake holds (latest copy), fingerprinted."""
    files = sorted(str(p) for p in (data_dir / "lake" / "normalized" / "events").glob("date=*/*.parquet"))
    with duckdb.connect() as con:
        rows = con.execute(f"""
            with events as (select * from read_parquet($files)),
            latest as (select * from events qualify row_number() over (
                partition by event_id order by _ingested_at desc, _partition_date desc) = 1)
            select cast(event_at as date)::varchar, {FINGERPRINT_SQL} from latest group by 1
        """, {"files": files}).fetchall()  # noqa: S608
    return {day: Fingerprint(int(n), str(c)) for day, n, c in rows}


@pytest.fixture(scope="session")
def assets_world() -> SimpleNamespace:
    """The shared world's shape and the helpers that run jobs on it."""
    return SimpleNamespace(END=END, DAYS=DAYS, EVENTS=EVENTS, PARTITIONS=PARTITIONS, MONTH=MONTH,
                           range_tags=range_tags, run=run_job, run_pipeline=run_pipeline,
                           catalog_metadata=catalog_metadata, lake_rows=lake_rows)


@pytest.fixture(scope="session")
def built_world(tmp_path_factory) -> Iterator[dict]:
    """The world landed and built on DuckDB, then landed again, with the sandbox still serving.
    Nothing may change `data_dir`: copy it first."""
    from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
    from resources.ingest.metrics_agent import sample
    from resources.storage.landing import LandingLog

    data_dir = tmp_path_factory.mktemp("world-data")
    # A host metrics sample the agent left in the landing log, which the ingest lands.
    reading = {**sample("host-a"), "sampled_at": (END - timedelta(hours=1)).isoformat()}
    LandingLog(data_dir / "landing").append(METRICS_STREAM, [reading], END - timedelta(hours=1))
    with run_sandbox(tmp_path_factory.mktemp("world-sandbox"), events=EVENTS, days=DAYS, end=END) as sandbox:
        platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url, warehouse="duckdb")
        out = {"data_dir": data_dir, "sandbox": sandbox, "platform": platform}
        # This build shows what the Dagster catalog gets: row counts and column types
        # (tests/conftest.py turns their reading off for every other build).
        with DagsterInstance.ephemeral() as instance, pytest.MonkeyPatch.context() as env:
            env.setenv("CC_DBT_CATALOG_METADATA", "true")
            ingest, transform = run_pipeline(platform, instance)
            assert ingest.success, "ingest failed"
            assert transform is not None and transform.success, "dbt build failed"
            out["first_rows"] = lake_rows(data_dir)
            out["shown"] = catalog_metadata(transform, AssetKey("fct_workflows"))
            # The build ends with the analysts' catalog file (serving/catalog), before any tier moved.
            with duckdb.connect(str(data_dir / "catalog.duckdb"), read_only=True) as con:
                out["catalog_after_build"] = {r[0] for r in con.execute("show tables").fetchall()}
            # The range landed again: the lake must not change (its build is checked elsewhere:
            # tests/cc_assets/test_tiers.py builds over a built warehouse, scripts/parity.py twice).
            rerun = run_job("ingest_job", platform, instance, tags=range_tags(PARTITIONS[0], PARTITIONS[-1]))
            assert rerun.success, "the re-run's ingest failed"
            out["rerun_rows"] = lake_rows(data_dir)
        yield out


@pytest.fixture(scope="session")
def tiered(built_world, tmp_path_factory):
    """A copy of the built world, then every tier job once, recording what each run reported.
    Tests that change the world copy `data_dir` first."""
    data_dir = tmp_path_factory.mktemp("tiered") / "data"
    shutil.copytree(built_world["data_dir"], data_dir)
    platform = PlatformResource(data_dir=str(data_dir), sandbox_url=built_world["sandbox"].url, warehouse="duckdb")
    out = {"data_dir": data_dir, "platform": platform, "catalog_after_build": built_world["catalog_after_build"],
           "truth": _landing_truth(data_dir)}
    with DagsterInstance.ephemeral() as instance:
        daily = run_job("tiers_daily_job", platform, instance, tags=range_tags(PARTITIONS[0], PARTITIONS[-1]))
        assert daily.success, "tiers backfill failed"
        out["daily"] = daily
        out["cold_after_first"] = TierStore.landing(Settings.from_env({"CC_DATA_DIR": str(data_dir)})).cold_days()
        hours = run_job("hot_job", platform, instance, tags=range_tags("2026-11-20-12:00", "2026-11-20-14:00"))
        assert hours.success
        out["hot"] = hours
        archive = run_job("archive_job", platform, instance, partition_key=MONTH)
        assert archive.success
        out["archive"] = archive
        # A re-run of two days of the backfill: nothing may change.
        again = run_job("tiers_daily_job", platform, instance, tags=range_tags(PARTITIONS[1], PARTITIONS[2]))
        assert again.success
    return out
