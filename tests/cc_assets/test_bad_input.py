"""Bad input from sources: bad records and pages are dead-lettered, a down source fails alone."""

from datetime import datetime, timedelta

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance

from cc_assets.definitions import defs
from resources.platform import PlatformResource
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
DAY = END.date().isoformat()
PREV = (END - timedelta(days=1)).date().isoformat()


@pytest.fixture
def sandbox(tmp_path):
    with run_sandbox(tmp_path / "sandbox", events=600, days=2, end=END) as handle:
        yield handle


def ingest(platform):
    return defs.resolve_job_def("ingest_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), resources={"platform": platform}, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": PREV, "dagster/asset_partition_range_end": DAY})


def test_bad_record_and_malformed_page_go_to_dead_letters_and_the_rest_lands(sandbox, tmp_path):
    sandbox.set_faults([
        {"match": "/github/repos/acme/api/pulls", "kind": "bad_record", "times": 1},  # REST
        {"match": "/github/graphql#PullRequests", "kind": "bad_record", "times": 1},  # GraphQL (the default)
        {"match": "/linear/graphql", "kind": "malformed_json", "times": 1},
        {"match": "/github/repos/acme/api/actions/runs", "kind": "bad_record", "times": 1},
    ])
    data_dir = tmp_path / "data"
    result = ingest(PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url))
    assert result.success
    letters = pq.read_table(data_dir / "lake/dead_letter/github/pull_requests" / f"date={DAY}" / "part-0.parquet")
    assert letters.num_rows == 1
    assert "missing required field" in letters.column("reason")[0].as_py()
    assert letters.column("raw")[0].as_py()  # the record is kept whole
    # Whichever Linear query ran first got the broken page; its stream stops there, kept whole.
    [linear_file] = (data_dir / "lake/dead_letter/linear").glob(f"*/date={DAY}/part-0.parquet")
    assert "invalid JSON" in pq.read_table(linear_file).column("reason")[0].as_py()
    [runs_file] = (data_dir / "lake/dead_letter/github/workflow_runs").glob("date=*/part-0.parquet")
    assert "created_at" in pq.read_table(runs_file).column("reason")[0].as_py()
    prs = sum(pq.read_metadata(f).num_rows
              for f in (data_dir / "lake/raw/github/pull_requests").glob("date=*/part-0.parquet"))
    assert prs > 0
    checks = {(e.asset_check_evaluation_data.asset_check_key.asset_key, e.asset_check_evaluation_data.passed)
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert (AssetKey(["raw", "github", "pull_requests"]), False) in checks
    assert (AssetKey(["raw", "github", "issues"]), True) in checks
    assert (AssetKey(["raw", "github", "workflow_runs"]), False) in checks


def test_a_source_that_is_down_fails_its_assets_and_the_others_land(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("CC_HTTP_MAX_RETRIES", "2")
    monkeypatch.setenv("CC_HTTP_BACKOFF_S", "0.05")
    sandbox.set_faults([{"match": "/charlie", "kind": "down"}])
    data_dir = tmp_path / "data"
    result = ingest(PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url))
    assert not result.success
    failures = {e.step_key: e.event_specific_data.error.message for e in result.all_events if e.is_step_failure}
    assert set(failures) == {"raw__charlie__instances"}
    assert "charlie is unavailable" in failures["raw__charlie__instances"]
    assert "after 3 attempts" in failures["raw__charlie__instances"]
    for source, entity in [("github", "pull_requests"), ("linear", "issues"), ("github", "reviews")]:
        assert (data_dir / "lake/raw" / source / entity / f"date={DAY}" / "part-0.parquet").exists()
