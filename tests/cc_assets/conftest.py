"""A world moved through every tier, built once per session: tests/cc_assets/test_tiers.py checks the
tiers on it, tests/cc_assets/test_reports.py renders the operations reports from it."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest
from dagster import DagsterInstance

from resources.platform import PlatformResource
from resources.settings import Settings
from resources.storage.tiers import FINGERPRINT_SQL, Fingerprint, TierStore
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
DAYS = 4
EVENTS = 1200
PARTITIONS = [(END - timedelta(days=n)).date().isoformat() for n in range(DAYS, -1, -1)]
MONTH = "2026-11-01"


def _range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def _run(job: str, platform: PlatformResource, instance: DagsterInstance, **kwargs):
    from cc_assets.definitions import defs

    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, resources={"platform": platform}, raise_on_error=False, **kwargs)
    for event in result.all_events:
        if event.is_step_failure:  # shown with the test's output when an assertion on it fails
            print(f"{job}: step {event.step_key} failed: {event.event_specific_data.error.message}")
    return result


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
def tiered(tmp_path_factory):
    """Ingest + dbt over four days of sandbox data, then every tier job once, recording what each
    run reported. Tests that change the world copy `data_dir` first."""
    data_dir = tmp_path_factory.mktemp("tiered-data")
    with run_sandbox(tmp_path_factory.mktemp("tiered-sandbox"), events=EVENTS, days=DAYS, end=END) as sandbox:
        platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url, warehouse="duckdb")
        out = {"data_dir": data_dir, "platform": platform}
        with DagsterInstance.ephemeral() as instance:
            assert _run("ingest_job", platform, instance, tags=_range_tags(PARTITIONS[0], PARTITIONS[-1])).success
            assert _run("transform_job", platform, instance).success
            # The build ends with the analysts' catalog file (serving/catalog), before any tier moved.
            with duckdb.connect(str(data_dir / "catalog.duckdb"), read_only=True) as con:
                out["catalog_after_build"] = {r[0] for r in con.execute("show tables").fetchall()}
            out["truth"] = _landing_truth(data_dir)
            daily = _run("tiers_daily_job", platform, instance, tags=_range_tags(PARTITIONS[0], PARTITIONS[-1]))
            assert daily.success, "tiers backfill failed"
            out["daily"] = daily
            out["cold_after_first"] = TierStore.landing(Settings.from_env({"CC_DATA_DIR": str(data_dir)})).cold_days()
            hours = _run("hot_job", platform, instance, tags=_range_tags("2026-11-20-12:00", "2026-11-20-14:00"))
            assert hours.success
            out["hot"] = hours
            archive = _run("archive_job", platform, instance, partition_key=MONTH)
            assert archive.success
            out["archive"] = archive
            # A re-run of two days of the backfill: nothing may change.
            again = _run("tiers_daily_job", platform, instance, tags=_range_tags(PARTITIONS[1], PARTITIONS[2]))
            assert again.success
    return out
