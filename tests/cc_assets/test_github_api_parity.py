"""One sandbox world pulled over GitHub REST and over GraphQL (`CC_GITHUB_API`) lands the same
partitions: every GitHub raw table row by row, and the same events from them, with GraphQL asking
at least ten times fewer requests for the pull requests, reviews, PR commits and check runs.

`_raw` is compared through the events the normalizer makes of it: it keeps the record as the API
sent it, and a GraphQL record carries fewer of REST's fields (API URLs, avatars, labels)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from dagster import DagsterInstance

from cc_assets.definitions import defs
from cc_assets.normalizing import land_day
from cc_events import NormalizeContext
from resources.platform import PlatformResource
from resources.storage.lake import Lake
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
DAYS = 4
DAY_LIST = [(END - timedelta(days=n)).date() for n in range(DAYS, -1, -1)]
TABLES = ["pull_requests", "issues", "reviews", "commits", "workflow_runs", "check_runs"]
# The REST routes GraphQL replaces: the pull request listing, and per pull request its reviews,
# its commits and its head commit's check runs.
REPLACED = ("pulls", "reviews", "pull_commits", "check_runs")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=1500, days=DAYS, end=END) as handle:
        yield handle


@pytest.fixture(scope="module")
def pulls(sandbox, tmp_path_factory):
    """Each API's landing of the window, and the GitHub requests the sandbox received for it."""
    out = {}
    with pytest.MonkeyPatch.context() as env:
        for api in ("rest", "graphql"):
            env.setenv("CC_GITHUB_API", api)
            data_dir = tmp_path_factory.mktemp(f"data-{api}")
            before = sandbox.info()["github_requests"]
            with DagsterInstance.ephemeral() as instance:
                result = defs.resolve_job_def("github_job").execute_in_process(
                    instance=instance, resources={"platform": PlatformResource(data_dir=str(data_dir),
                                                                               sandbox_url=sandbox.url)},
                    tags={"dagster/asset_partition_range_start": DAY_LIST[0].isoformat(),
                          "dagster/asset_partition_range_end": DAY_LIST[-1].isoformat()})
            assert result.success
            after = sandbox.info()["github_requests"]
            out[api] = (Lake(data_dir / "lake"), {k: after[k] - before.get(k, 0) for k in after})
    return out


def rows(lake: Lake, entity: str) -> dict:
    out = {}
    for day in DAY_LIST:
        table = lake.read(("raw", "github", entity), day)
        out[day] = [] if table is None else table.drop_columns(["_ingested_at", "_raw"]).to_pylist()
    return out


@pytest.mark.parametrize("entity", TABLES)
def test_both_apis_land_the_same_rows(pulls, entity):
    over_rest, over_graphql = rows(pulls["rest"][0], entity), rows(pulls["graphql"][0], entity)
    assert sum(len(r) for r in over_rest.values()) > 10, f"the window should hold {entity}"
    for day in DAY_LIST:
        assert over_graphql[day] == over_rest[day], f"{entity} on {day}"


def normalized(lake: Lake, day) -> tuple[list[dict], list[dict], int]:
    """A day's normalized events and keys as its partitions hold them, and its dead letters."""
    done = land_day(str(lake.root), None, NormalizeContext(frozenset({"ENG", "OPS"})), day, END)
    return (lake.read(("normalized", "events"), day).to_pylist(),
            lake.read(("normalized", "event_keys"), day).to_pylist(), done.dead_letters)


def test_both_apis_give_the_same_events(pulls):
    for day in DAY_LIST:
        rest_events, rest_keys, rest_dead = normalized(pulls["rest"][0], day)
        events, keys, dead = normalized(pulls["graphql"][0], day)
        assert rest_events and (events, keys) == (rest_events, rest_keys), day
        assert not dead and not rest_dead


def test_graphql_asks_ten_times_fewer_requests_for_the_same_records(pulls):
    rest, graphql = pulls["rest"][1], pulls["graphql"][1]
    replaced = sum(rest.get(route, 0) for route in REPLACED)
    assert graphql.get("graphql", 0) * 10 <= replaced, (rest, graphql)
    assert not any(graphql.get(route) for route in REPLACED), "GraphQL mode should not call the replaced routes"
    # What stays on REST costs the same in both.
    for route in ("issues", "commits", "workflow_runs"):
        assert graphql.get(route) == rest.get(route), route
