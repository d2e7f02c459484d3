"""Incremental pulls of GitHub and Linear: durable cursors, and resuming after a kill.

The reference is a fresh full pull of the whole window. Pulling the same window in two steps
(the second from the cursors the first left), with the process killed with SIGKILL in the middle
of the second, then resumed, must leave exactly the reference's rows: nothing lost, nothing twice.
So must a crash between writing the partitions and moving the cursors (the cursor file from
before the run, put back).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from dagster import DagsterInstance

from cc_assets.definitions import defs
from resources.platform import PlatformResource
from resources.storage.cursors import CursorStore
from resources.storage.lake import Lake
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
DAYS = 4
EVENTS = 900
DAY_LIST = [(END - timedelta(days=n)).date() for n in range(DAYS, -1, -1)]
TABLES = [("github", "pull_requests"), ("github", "issues"), ("github", "commits"), ("github", "reviews"),
          ("linear", "issues"), ("linear", "comments")]
JOBS = ["github_job", "linear_job"]
ROOT = Path(__file__).resolve().parents[2]


def range_tags(first, last) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=EVENTS, days=DAYS, end=END) as handle:
        yield handle


def land(data_dir: Path, sandbox_url: str, first, last) -> list:
    platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox_url)
    results = []
    with DagsterInstance.ephemeral() as instance:
        for job in JOBS:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=range_tags(first, last), resources={"platform": platform},
                raise_on_error=True)
            results.append(result)
    return results


def landed(data_dir: Path) -> dict:
    """Every landed row of the followed tables by day, without the run's lineage columns."""
    lake = Lake(data_dir / "lake")
    out = {}
    for source, entity in TABLES:
        for day in DAY_LIST:
            table = lake.read(("raw", source, entity), day)
            rows = [] if table is None else table.drop_columns(["_ingested_at"]).to_pylist()
            out[source, entity, day] = sorted(rows, key=repr)
    return out


@pytest.fixture(scope="module")
def reference(sandbox, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("reference")
    land(data_dir, sandbox.url, DAY_LIST[0], DAY_LIST[-1])
    rows = landed(data_dir)
    assert sum(len(v) for v in rows.values()) > 300, "the sandbox window should hold a few hundred records"
    return rows


def cursors(data_dir: Path) -> dict:
    return {k: v for k, v in CursorStore(data_dir / "state" / "cursors.json").all().items()
            if k.startswith("incremental/")}


def start_killable_run(data_dir: Path, sandbox_url: str, first, last) -> subprocess.Popen:
    script = textwrap.dedent(f"""
        from dagster import DagsterInstance
        from cc_assets.definitions import defs
        from resources.platform import PlatformResource
        platform = PlatformResource(data_dir={str(data_dir)!r}, sandbox_url={sandbox_url!r})
        tags = {range_tags(first, last)!r}
        with DagsterInstance.ephemeral() as instance:
            for job in {JOBS!r}:
                defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags,
                                                             resources={{"platform": platform}})
    """)
    env = {**os.environ, "CC_HTTP_BACKOFF_S": "2"}
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_two_step_pull_killed_midway_and_resumed_lands_exactly_the_full_pull(sandbox, reference, tmp_path):
    # Step 1: the first days, whole. Every followed scope now has a cursor in the window's last day.
    land(tmp_path, sandbox.url, DAY_LIST[0], DAY_LIST[2])
    first_cursors = cursors(tmp_path)
    scopes = {key.split("/")[1] + "/" + key.split("/")[2] for key in first_cursors}
    assert {"github/pull_requests", "github/issues", "github/commits", "linear/issues", "linear/comments"} <= scopes
    assert all(datetime.fromisoformat(v).date() <= DAY_LIST[2] for v in first_cursors.values())

    # Step 2: from the cursor's day on. Reviews and PR commits fail (503 until cleared), over REST
    # or GraphQL, so the run is still retrying after pull requests landed when it is killed with SIGKILL.
    repos = [r["full_name"] for r in requests.get(f"{sandbox.github_url}/orgs/acme/repos", timeout=10).json()]
    try:
        sandbox.set_faults([{"match": f"/github/repos/{repo}/pulls/", "status": 503} for repo in repos] + [
            {"match": f"/github/graphql#{operation}", "status": 503}
            for operation in ("PullRequestReviews", "PullRequestCommits")])
        proc = start_killable_run(tmp_path, sandbox.url, DAY_LIST[2], DAY_LIST[-1])
        prs_today = tmp_path / "lake" / "raw" / "github" / "pull_requests" / f"date={DAY_LIST[-1]}"
        deadline = time.monotonic() + 120
        while not prs_today.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert prs_today.exists(), "the killed run should have landed pull requests before the kill"
        time.sleep(1.0)
        assert proc.poll() is None, "the run should still be retrying the failing review requests"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        sandbox.clear_faults()

    # Step 3: resume (what the next sensor tick does): the same range, from whatever cursors remain.
    before_resume = tmp_path / "cursors-before-resume.json"
    shutil.copy(tmp_path / "state" / "cursors.json", before_resume)
    results = land(tmp_path, sandbox.url, DAY_LIST[2], DAY_LIST[-1])
    assert landed(tmp_path) == reference

    # The resumed pull really was incremental: it fetched from the cursors, not the window start.
    prs = next(m for m in results[0].asset_materializations_for_node("raw__github__pull_requests"))
    assert prs.metadata["incremental_from"].value, "the resumed run should have started from its cursors"
    assert cursors(tmp_path) != first_cursors

    # Step 4: a crash after the partitions were written but before the cursors moved: the next run
    # fetches the same records again, and the merge keeps one copy of each.
    shutil.copy(before_resume, tmp_path / "state" / "cursors.json")
    land(tmp_path, sandbox.url, DAY_LIST[2], DAY_LIST[-1])
    assert landed(tmp_path) == reference


def test_a_backfill_of_older_days_ignores_the_cursors_and_leaves_them_alone(sandbox, reference, tmp_path):
    land(tmp_path, sandbox.url, DAY_LIST[0], DAY_LIST[-1])
    newest = cursors(tmp_path)
    results = land(tmp_path, sandbox.url, DAY_LIST[0], DAY_LIST[1])
    prs = next(m for m in results[0].asset_materializations_for_node("raw__github__pull_requests"))
    assert prs.metadata["incremental_from"].value == {}
    assert cursors(tmp_path) == newest
    assert landed(tmp_path) == reference


def test_etags_survive_the_process_so_an_unchanged_page_costs_no_rate_limit(sandbox, tmp_path):
    from resources.settings import Settings
    from resources.sources.github import GitHubClient

    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path), "CC_SANDBOX_URL": sandbox.url})
    first = GitHubClient.from_settings(settings)
    listed = [item for item in first.items("/repos/acme/api/pulls", {"state": "all"})]
    assert listed and first.not_modified == 0
    second = GitHubClient.from_settings(settings)  # a new client, as in the next run's process
    again = [item for item in second.items("/repos/acme/api/pulls", {"state": "all"})]
    assert again == listed
    assert second.not_modified >= 1


def test_a_pull_request_that_is_gone_is_a_dead_letter_and_the_other_pulls_land(sandbox, tmp_path):
    from cc_events.registry import RAW_TABLES
    from resources.storage.lake import raw_schema

    day = DAY_LIST[-1]
    land(tmp_path, sandbox.url, day, day)
    lake = Lake(tmp_path / "lake")
    reviews = lake.read(("raw", "github", "reviews"), day).num_rows
    # A PR the lake still holds but GitHub no longer has (deleted, or transferred to another repo).
    prs = lake.read(("raw", "github", "pull_requests"), day).drop_columns(["_partition_date", "_ingested_at"])
    rows = prs.to_pylist()
    rows.append({**rows[0], "id": 987654321, "number": 99999})
    lake.write(("raw", "github", "pull_requests"), day, rows,
               raw_schema(RAW_TABLES["github", "pull_requests"]), datetime(2026, 11, 20))

    land(tmp_path, sandbox.url, day, day)  # the merge keeps the gone PR; GitHub answers 404 or NOT_FOUND
    assert lake.read(("raw", "github", "reviews"), day).num_rows == reviews
    letters = lake.read(("dead_letter", "github", "reviews"), day).to_pylist()
    assert len(letters) == 1
    assert letters[0]["reason"].startswith(f"pull request {rows[0]['repo']}#99999 is gone (")
