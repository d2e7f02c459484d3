"""The GitHub client's CI listings and the Linear client's comments and cycles, against the sandbox
over real HTTP: windows, paging, GitHub's 1,000-result cap, team filters and bad records."""

from datetime import datetime, timedelta

import pytest

from resources.http.client import HttpClient, MalformedPage
from resources.sources.github import GitHubClient
from resources.sources.linear import LinearClient
from sandbox import generate
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
START = END - timedelta(days=3)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=800, days=3, end=END, rate_limit=100_000) as handle:
        yield handle


@pytest.fixture(scope="module")
def org():
    return generate(7, 800, 3, END)


@pytest.fixture(autouse=True)
def no_faults(sandbox):
    sandbox.clear_faults()
    yield
    sandbox.clear_faults()


def github(sandbox) -> GitHubClient:
    return GitHubClient(HttpClient("github", sleep=lambda _: None, backoff_s=0.01), sandbox.github_url, "acme",
                        page_size=10)


def linear(sandbox, **kwargs) -> LinearClient:
    return LinearClient(HttpClient("linear", sleep=lambda _: None), sandbox.linear_url, page_size=5, **kwargs)


def _epoch(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds())


def test_workflow_runs_of_a_window_arrive_once_each(sandbox, org):
    start, end = END - timedelta(days=2), END - timedelta(hours=6)
    runs = list(github(sandbox).workflow_runs("acme/api", start, end))
    expected = {r.id for r in org.workflow_runs
                if r.repo.full_name == "acme/api" and _epoch(start) <= r.created_at < _epoch(end)}
    assert [r["id"] for r in runs if isinstance(r, dict)] and len(runs) == len({r["id"] for r in runs})
    assert {r["id"] for r in runs} == expected


def test_a_range_over_the_result_cap_is_fetched_in_halves(sandbox):
    whole = list(github(sandbox).workflow_runs("acme/api", START, END))
    # A cap smaller than the window's runs makes the client split as it must above GitHub's 1,000.
    client = github(sandbox)
    client.actions_results_cap = 7
    split = list(client.workflow_runs("acme/api", START, END))
    assert sorted(r["id"] for r in split) == sorted(r["id"] for r in whole) and len(whole) > 7
    assert client.http.requests_made > len(whole) // 10 + 2


def test_check_runs_of_a_pr_head_include_every_attempt(sandbox, org):
    pull = next(p for p in org.pulls for r in p.runs if r.commit.sha == p.head_sha and r.checks)
    checks = list(github(sandbox).check_runs(pull.repo.full_name, pull.head_sha))
    expected = {c.id for r in pull.runs if r.commit.sha == pull.head_sha for c in r.checks}
    assert {c["id"] for c in checks} == expected
    assert all(c["pull_requests"][0]["number"] == pull.number for c in checks)


def test_a_bad_run_record_is_handed_on_and_the_rest_arrive(sandbox):
    clean = list(github(sandbox).workflow_runs("acme/api", START, END))
    sandbox.set_faults([{"match": "/github/repos/acme/api/actions/runs", "kind": "bad_record", "times": 1}])
    spoiled = list(github(sandbox).workflow_runs("acme/api", START, END))
    assert len(spoiled) == len(clean)
    assert sum("created_at" not in r for r in spoiled) == 1  # the caller dead-letters it


def test_a_malformed_checks_page_comes_back_as_a_malformed_page(sandbox, org):
    pull = next(p for p in org.pulls if any(r.checks for r in p.runs))
    sandbox.set_faults([{"match": f"/github/repos/{pull.repo.full_name}/commits/", "kind": "malformed_json",
                         "times": 1}])
    items = list(github(sandbox).check_runs(pull.repo.full_name, pull.head_sha))
    assert len(items) == 1 and isinstance(items[0], MalformedPage)


def test_linear_comments_of_an_updated_window(sandbox, org):
    start, end = END - timedelta(days=2), END
    comments = list(linear(sandbox).comments(start, end))
    expected = {c.id for c in org.comments if _epoch(start) <= c.updated_at < _epoch(end)}
    assert len(comments) == len(expected) > 5  # several pages of 5
    assert {c["id"] for c in comments} == expected
    assert all(c["issue"]["identifier"] and c["user"]["id"] for c in comments)


def test_linear_comments_and_cycles_follow_only_the_configured_teams(sandbox, org):
    comments = list(linear(sandbox, teams=("OPS",)).comments(START, END + timedelta(minutes=1)))
    assert comments and {c["issue"]["identifier"].split("-")[0] for c in comments} == {"OPS"}
    assert len(comments) == sum(c.issue.team.key == "OPS" for c in org.comments)
    cycles = list(linear(sandbox, teams=("OPS",)).cycles())
    assert cycles and {c["team"]["key"] for c in cycles} == {"OPS"}
    assert len(list(linear(sandbox).cycles())) == len(org.cycles)


def test_linear_issues_carry_their_cycle(sandbox, org):
    issues = list(linear(sandbox).issues(START, END + timedelta(minutes=1)))
    planned = {i.id: (i.cycle.id, i.cycle.number) for i in org.linear_issues if i.cycle}
    got = {i["id"]: (i["cycle"]["id"], i["cycle"]["number"]) for i in issues if i["cycle"]}
    assert got and got == {k: v for k, v in planned.items() if k in {i["id"] for i in issues}}
