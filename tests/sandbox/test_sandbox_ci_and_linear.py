"""The sandbox serves CI (Actions runs, check runs) and Linear comments and cycles like the real APIs,
consistent with the generated world and its ground truth."""

from __future__ import annotations

from collections import Counter

from sandbox import generate
from sandbox import truth as truth_mod
from sandbox.model import iso

EVENTS = 900
END = "2026-11-20T12:00:00Z"
DAYS = 7  # run_sandbox's default window


def _org():
    return generate(7, EVENTS, DAYS, END)


def _runs(http, sandbox, repo: str, **params) -> tuple[list[dict], int]:
    """Every run of a listing, following Link headers; and the total_count of its first page."""
    url, query, runs, total = f"{sandbox.github_url}/repos/{repo}/actions/runs", {"per_page": 10, **params}, [], None
    while url:
        response = http.get(url, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        total = body["total_count"] if total is None else total
        runs += body["workflow_runs"]
        url, query = response.links.get("next", {}).get("url"), None
    return runs, total


def test_workflow_runs_page_newest_first_and_match_the_world(sandbox, http):
    org = _org()
    expected = {r.id: r for r in org.workflow_runs if r.repo.full_name == "acme/api"}
    runs, total = _runs(http, sandbox, "acme/api")
    assert total == len(expected) == len(runs) > 10  # several pages
    assert [r["id"] for r in runs] == sorted(expected, key=lambda i: (expected[i].created_at, i), reverse=True)
    for run in runs:
        truth = expected[run["id"]]
        assert run["head_sha"] == truth.commit.sha and run["status"] == truth.status
        assert run["conclusion"] == truth.conclusion and run["run_attempt"] == truth.run_attempt
        if truth.pull is not None:
            assert run["event"] == "pull_request" and run["head_branch"] == truth.pull.head_ref
            assert [p["number"] for p in run["pull_requests"]] == [truth.pull.number]
        else:
            assert run["event"] == "push" and run["head_branch"] == "main" and run["pull_requests"] == []
    conclusions = Counter(r["conclusion"] for r in runs)
    assert conclusions["success"] > conclusions["failure"] > 0


def test_created_filter_takes_githubs_date_syntax(sandbox, http):
    org = _org()
    created = sorted(r.created_at for r in org.workflow_runs if r.repo.full_name == "acme/api")
    middle = created[len(created) // 2]
    day = iso(middle)[:10]
    on_day = [t for t in created if iso(t)[:10] == day]
    assert _runs(http, sandbox, "acme/api", created=day)[1] == len(on_day)
    assert _runs(http, sandbox, "acme/api", created=f"{day}..{day}")[1] == len(on_day)
    assert _runs(http, sandbox, "acme/api", created=f">={iso(middle)}")[1] == sum(t >= middle for t in created)
    assert _runs(http, sandbox, "acme/api", created=f"<{iso(middle)}")[1] == sum(t < middle for t in created)
    assert _runs(http, sandbox, "acme/api", created=f"{iso(middle)}..*")[1] == sum(t >= middle for t in created)
    bad = http.get(f"{sandbox.github_url}/repos/acme/api/actions/runs", params={"created": "last tuesday"})
    assert bad.status_code == 422 and "Validation Failed" in bad.json()["message"]


def test_check_runs_of_a_pr_head_show_the_latest_attempt_unless_asked_for_all(sandbox, http):
    org = _org()
    rerun = next(r for r in org.workflow_runs if r.run_attempt == 2 and r.pull is not None)
    pull = rerun.pull
    url = f"{sandbox.github_url}/repos/{pull.repo.full_name}/commits/{pull.head_sha}/check-runs"
    latest = http.get(url).json()
    everything = http.get(url, params={"filter": "all"}).json()
    assert latest["total_count"] == len(latest["check_runs"]) == 2  # lint and test, re-run green
    assert {c["conclusion"] for c in latest["check_runs"]} == {"success"}
    assert everything["total_count"] == 4 and "failure" in {c["conclusion"] for c in everything["check_runs"]}
    for check in everything["check_runs"]:
        assert check["head_sha"] == pull.head_sha and check["app"]["slug"] == "github-actions"
        assert [p["number"] for p in check["pull_requests"]] == [pull.number]
    by_branch = http.get(f"{sandbox.github_url}/repos/{pull.repo.full_name}/commits/{pull.head_ref}/check-runs",
                         params={"filter": "all"}).json()
    assert by_branch == everything
    assert http.get(f"{sandbox.github_url}/repos/acme/api/commits/{'0' * 40}/check-runs").json() == {
        "total_count": 0, "check_runs": []}


def _graphql(http, sandbox, query: str, variables: dict | None = None) -> dict:
    response = http.post(sandbox.linear_url, json={"query": query, "variables": variables or {}})
    assert response.status_code == 200 and "errors" not in response.json(), response.text
    return response.json()["data"]


COMMENTS = ("query C($after: String, $filter: CommentFilter) { comments(first: 7, after: $after, filter: $filter,"
            " orderBy: updatedAt) { nodes { id body createdAt updatedAt user { id name } issue { id identifier } }"
            " pageInfo { hasNextPage endCursor } } }")


def test_linear_comments_page_by_cursor_within_an_updated_window(sandbox, http):
    org = _org()
    start, end = org.end - 3 * 86400, org.end - 86400
    expected = {c.id: c for c in org.comments if start <= c.updated_at < end}
    window = {"updatedAt": {"gte": iso(start), "lt": iso(end)}}
    seen, after, pages = [], None, 0
    while True:
        page = _graphql(http, sandbox, COMMENTS, {"after": after, "filter": window})["comments"]
        seen += page["nodes"]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages > 1 and len(seen) == len({c["id"] for c in seen}) == len(expected) > 0
    for node in seen:
        comment = expected[node["id"]]
        assert node["issue"]["identifier"] == comment.issue.identifier and node["body"] == comment.body
    assert [n["updatedAt"] for n in seen] == sorted((n["updatedAt"] for n in seen), reverse=True)


def test_linear_cycles_per_team_and_the_issues_in_them(sandbox, http):
    org = _org()
    query = ("query Y($filter: CycleFilter) { cycles(first: 50, filter: $filter) { nodes { id number name startsAt"
             " endsAt completedAt team { key } issues(first: 250) { nodes { identifier cycle { id number } } } } } }")
    cycles = _graphql(http, sandbox, query)["cycles"]["nodes"]
    assert len(cycles) == len(org.cycles) and {c["team"]["key"] for c in cycles} == {"ENG", "OPS", "DATA"}
    ops = _graphql(http, sandbox, query, {"filter": {"team": {"key": {"eq": "OPS"}}}})["cycles"]["nodes"]
    assert ops and {c["team"]["key"] for c in ops} == {"OPS"}
    planned = {i.identifier: i.cycle.id for i in org.linear_issues if i.cycle}
    listed = {n["identifier"]: c["id"] for c in cycles for n in c["issues"]["nodes"]}
    assert listed == planned and planned
    for cycle in cycles:
        assert all(n["cycle"] == {"id": cycle["id"], "number": cycle["number"]} for n in cycle["issues"]["nodes"])
        assert (cycle["completedAt"] is None) == (cycle["endsAt"] > iso(org.end).replace("Z", ".000Z"))


def test_truth_has_the_new_events_in_their_pr_and_issue_workflows():
    org = _org()
    truth = truth_mod.build(org)
    workflow = dict(zip(truth.event_id, truth.workflow_id, strict=True))
    kinds = Counter(truth.event_type)
    assert kinds["github.workflow_run.completed"] and kinds["github.check_run.completed"]
    assert kinds["linear.comment.created"] == len(org.comments)
    assert EVENTS <= len(truth.event_id) <= EVENTS * 1.05  # CI and comments count towards the size
    for run in org.workflow_runs:
        event = workflow.get(f"github:workflow_run:{run.id}:{run.run_attempt}", "absent")
        if run.completed_at is None:
            assert event == "absent"
        elif run.pull is None:
            assert event is None  # a push to main names no PR
        else:
            assert event == workflow[f"github:pr:{run.pull.ref}:opened"]
            for check in run.checks:
                if run.commit.sha == run.pull.head_sha and check.completed_at is not None:
                    assert workflow[f"github:check_run:{check.id}"] == event
    for comment in org.comments:  # a comment mentioning another issue stays in its own issue's workflow
        assert workflow[f"linear:comment:{comment.id}"] == workflow[f"linear:issue:{comment.issue.id}:created"]
