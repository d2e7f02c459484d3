"""The sandbox over real HTTP: its protocols, its faults, and a truth a reader of the contract agrees with."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter, defaultdict

import pyarrow.parquet as pq
import pytest
import requests

from sandbox import run_sandbox

END = "2026-11-20T12:00:00Z"
EVENTS = 600

ISSUES_QUERY = """
query Issues($first: Int, $after: String, $filter: IssueFilter, $orderBy: PaginationOrderBy) {
  issues(first: $first, after: $after, filter: $filter, orderBy: $orderBy) {
    nodes { id identifier title createdAt updatedAt team { key } state { name type }
            history(first: 50) { nodes { id createdAt fromState { name type } toState { name type } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""




def walk(http, url, params=None, headers=None):
    """Every item of a GitHub list, following `Link: rel="next"`."""
    items, pages = [], 0
    while url:
        r = http.get(url, params=params, headers=headers)
        r.raise_for_status()
        items += r.json()
        pages += 1
        found = re.search(r'<([^>]+)>;\s*rel="next"', r.headers.get("Link", ""))
        url, params = (found.group(1), None) if found else (None, None)
    return items, pages


def walk_wrapped(http, url, field, params=None):
    """Every item of a GitHub Actions or Checks listing (`{"total_count", field: [...]}`)."""
    items = []
    while url:
        r = http.get(url, params=params)
        r.raise_for_status()
        items += r.json()[field]
        url, params = r.links.get("next", {}).get("url"), None
    return items


COMMENTS_QUERY = """
query Comments($after: String) {
  comments(first: 100, after: $after) { nodes { id issue { identifier } } pageInfo { hasNextPage endCursor } }
}"""


def linear(http, sandbox, query, **variables):
    r = http.post(sandbox.linear_url, json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json()


def linear_issues(http, sandbox, first=50, **variables):
    nodes, after = [], None
    while True:
        conn = linear(http, sandbox, ISSUES_QUERY, first=first, after=after, **variables)["data"]["issues"]
        nodes += conn["nodes"]
        if not conn["pageInfo"]["hasNextPage"]:
            return nodes
        after = conn["pageInfo"]["endCursor"]


def charlie_activity(http, sandbox, instance, limit=1000, **params):
    events, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        body = http.get(f"{sandbox.charlie_url}/instances/{instance}/activity", params=query).json()
        events += body["events"]
        if not (cursor := body["next_cursor"]):
            return events


@pytest.fixture(scope="module")
def truth(sandbox, http):
    rows = http.get(f"{sandbox.url}/_sandbox/truth").json()
    by_id = {row["event_id"]: row for row in rows}
    assert len(by_id) == len(rows), "duplicate event ids in the truth"
    return by_id


@pytest.fixture(scope="module")
def world(sandbox, http):
    """Every record the sandbox serves, fetched the way an ingest would."""
    gh = sandbox.github_url
    repos = [r["full_name"] for r in walk(http, f"{gh}/orgs/acme/repos")[0]]
    out = {"repos": repos, "pulls": {}, "issues": {}, "reviews": {}, "pull_commits": {}, "commits": {}, "runs": {},
           "checks": {}}
    for repo in repos:
        out["pulls"][repo] = walk(http, f"{gh}/repos/{repo}/pulls", {"state": "all", "per_page": 100})[0]
        out["issues"][repo] = walk(http, f"{gh}/repos/{repo}/issues", {"state": "all", "per_page": 100})[0]
        out["commits"][repo] = walk(http, f"{gh}/repos/{repo}/commits", {"per_page": 100})[0]
        for pr in out["pulls"][repo]:
            n = pr["number"]
            out["reviews"][repo, n] = walk(http, f"{gh}/repos/{repo}/pulls/{n}/reviews")[0]
            out["pull_commits"][repo, n] = walk(http, f"{gh}/repos/{repo}/pulls/{n}/commits")[0]
            out["checks"][repo, n] = walk_wrapped(http, f"{gh}/repos/{repo}/commits/{pr['head']['sha']}/check-runs",
                                                  "check_runs", {"filter": "all", "per_page": 100})
        out["runs"][repo] = walk_wrapped(http, f"{gh}/repos/{repo}/actions/runs", "workflow_runs", {"per_page": 100})
    out["linear"] = linear_issues(http, sandbox)
    out["comments"], after = [], None
    while True:
        conn = linear(http, sandbox, COMMENTS_QUERY, after=after)["data"]["comments"]
        out["comments"] += conn["nodes"]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    out["teams"] = [
        t["key"] for t in linear(http, sandbox, "{ teams { nodes { key } } }")["data"]["teams"]["nodes"]
    ]
    out["instances"] = http.get(f"{sandbox.charlie_url}/instances").json()["instances"]
    out["activity"] = [e for i in out["instances"] for e in charlie_activity(http, sandbox, i["id"])]
    return out


# ---- a reader of the contract, independent of the generator's bookkeeping ------------------------------
_LINEAR = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]*)-(\d+)(?![A-Za-z0-9])")
_URL = re.compile(r"https?://github\.com/([\w.-]+)/([\w.-]+)/(?:pull|issues)/(\d+)")
_CROSS = re.compile(r"(?<![\w/.-])([\w.-]+)/([\w.-]+)#(\d+)\b")
_LOCAL = re.compile(r"(?<![\w&/#])#(\d+)\b")


def text_keys(text, repo, teams):
    text = text or ""
    keys = {f"linear:{t.upper()}-{n}" for t, n in _LINEAR.findall(text) if t.upper() in teams}
    for pattern in (_URL, _CROSS):
        keys |= {f"github:{o}/{r}#{n}" for o, r, n in pattern.findall(text)}
        text = pattern.sub(" ", text)
    if repo:
        keys |= {f"github:{repo}#{n}" for n in _LOCAL.findall(text)}
    return keys


def contract_events(world):
    """event_id -> keys, per contract sections 2 and 3."""
    teams, events = set(world["teams"]), {}
    for issue in world["linear"]:
        own = {f"linear:{issue['identifier']}"}
        events[f"linear:issue:{issue['id']}:created"] = own
        for h in issue["history"]["nodes"]:
            if h["fromState"] and h["toState"]:
                events[f"linear:history:{h['id']}"] = own
    for repo in world["repos"]:
        for pr in world["pulls"][repo]:
            own = f"github:{repo}#{pr['number']}"
            keys = {own} | text_keys(f"{pr['head']['ref']}\n{pr['title']}\n{pr['body']}", repo, teams)
            base = f"github:pr:{repo}#{pr['number']}"
            events[f"{base}:opened"] = keys
            if pr["merged_at"]:
                events[f"{base}:merged"] = keys
            elif pr["closed_at"]:
                events[f"{base}:closed"] = keys
            for review in world["reviews"][repo, pr["number"]]:
                events[f"github:review:{review['id']}"] = {own}
            for c in world["pull_commits"][repo, pr["number"]]:
                events[f"github:commit:{c['sha']}"] = {own} | text_keys(c["commit"]["message"], repo, teams)
            for check in world["checks"][repo, pr["number"]]:
                if check["status"] == "completed":
                    events[f"github:check_run:{check['id']}"] = {own}
        for issue in world["issues"][repo]:
            if "pull_request" not in issue:
                base = f"github:issue:{repo}#{issue['number']}"
                events[f"{base}:opened"] = {f"github:{repo}#{issue['number']}"}
                if issue["closed_at"]:
                    events[f"{base}:closed"] = {f"github:{repo}#{issue['number']}"}
        for c in world["commits"][repo]:
            events[f"github:commit:{c['sha']}"] = text_keys(c["commit"]["message"], repo, teams)
        for run in world["runs"][repo]:
            if run["status"] == "completed":
                events[f"github:workflow_run:{run['id']}:{run['run_attempt']}"] = {
                    f"github:{repo}#{p['number']}" for p in run["pull_requests"]}
    for comment in world["comments"]:
        events[f"linear:comment:{comment['id']}"] = {f"linear:{comment['issue']['identifier']}"}
    for e in world["activity"]:
        keys = text_keys(e["message"], e.get("repo"), teams)
        if e.get("issue_key"):
            keys.add(f"linear:{e['issue_key']}")
        if e.get("repo"):
            keys.add(f"github:{e['repo']}#{e['pr_number']}")
        if e.get("correlation_id"):
            keys.add(f"corr:{e['correlation_id']}")
        events[f"charlie:activity:{e['id']}"] = keys
    return events


def workflows(events):
    parent = {}

    def find(k):
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    for keys in events.values():
        keys = sorted(keys)
        for k in keys:
            parent[find(k)] = find(keys[0])
    rank = {"linear": 1, "github": 2, "corr": 3}
    roots = defaultdict(list)
    for k in list(parent):
        roots[find(k)].append(k)
    name = {
        r: min(ks, key=lambda k: (rank[k.split(":")[0]], hashlib.md5(k.encode()).hexdigest()))
        for r, ks in roots.items()
    }
    return {e: (name[find(min(keys))] if keys else None) for e, keys in events.items()}


# ---- truth --------------------------------------------------------------------------------------------
def test_truth_agrees_with_a_contract_reader_on_every_event(world, truth):
    expected = workflows(contract_events(world))
    assert set(expected) == set(truth)
    wrong = {e: (w, truth[e]["workflow_id"]) for e, w in expected.items() if truth[e]["workflow_id"] != w}
    assert not wrong


def test_truth_file_matches_the_truth_route(sandbox, truth):
    table = pq.read_table(sandbox.truth_path).to_pylist()
    assert {r["event_id"]: r["workflow_id"] for r in table} == {e: r["workflow_id"] for e, r in truth.items()}
    assert {"event_id", "workflow_id", "event_type", "source"} <= set(table[0])


def test_a_merged_pr_has_opened_and_merged_events(world, truth):
    repo, pr = next((r, p) for r in world["repos"] for p in world["pulls"][r] if p["merged_at"])
    base = f"github:pr:{repo}#{pr['number']}"
    assert truth[f"{base}:opened"]["event_type"] == "github.pr.opened"
    assert truth[f"{base}:merged"]["event_type"] == "github.pr.merged"
    assert f"{base}:closed" not in truth
    squash = [c for c in world["commits"][repo] if c["commit"]["message"].endswith(f"(#{pr['number']})")]
    assert (
        len(squash) == 1
        and truth[f"github:commit:{squash[0]['sha']}"]["workflow_id"]
        == truth[f"{base}:opened"]["workflow_id"]
    )


def test_linear_issue_pr_and_commits_form_one_workflow(world, truth):
    by_identifier = {i["identifier"]: i for i in world["linear"]}
    for repo in world["repos"]:
        for pr in world["pulls"][repo]:
            found = re.search(r"^[a-z]+/((eng|ops|data)-\d+)-", pr["head"]["ref"])
            if not found or pr["head"]["ref"].startswith("dependabot/"):
                continue
            issue = by_identifier[found.group(1).upper()]
            workflow = truth[f"linear:issue:{issue['id']}:created"]["workflow_id"]
            assert workflow.startswith("linear:")
            ids = [f"github:pr:{repo}#{pr['number']}:opened"]
            ids += [f"github:commit:{c['sha']}" for c in world["pull_commits"][repo, pr["number"]]]
            ids += [f"github:review:{r['id']}" for r in world["reviews"][repo, pr["number"]]]
            assert {truth[i]["workflow_id"] for i in ids} == {workflow}
            return
    pytest.fail("no PR names a Linear issue in its branch")


def test_decoys_are_in_the_text_but_never_keys(world, truth):
    texts = " ".join(
        [p["title"] + p["body"] for r in world["repos"] for p in world["pulls"][r]]
        + [c["commit"]["message"] for r in world["repos"] for c in world["commits"][r]]
        + [i["title"] for i in world["linear"]]
        + [i["body"] or "" for r in world["repos"] for i in world["issues"][r]]
    )
    assert (
        sum(decoy in texts for decoy in ("UTF-8", "SHA-256", "ISO-8601", "X-RAY-1", "ABC-123", "COVID-19"))
        >= 3
    )
    workflow_ids = {r["workflow_id"] for r in truth.values() if r["workflow_id"]}
    assert not [w for w in workflow_ids if re.search(r"UTF|SHA|ISO|RAY|ABC|COVID", w)]
    assert all(
        re.fullmatch(r"linear:(ENG|OPS|DATA)-\d+|github:acme/[\w-]+#\d+|corr:run-[0-9a-f]{8}", w)
        for w in workflow_ids
    )


def test_github_issue_mentioning_a_linear_key_keeps_its_own_workflow(world, truth):
    for repo in world["repos"]:
        for issue in world["issues"][repo]:
            if "pull_request" not in issue and "Internal tracking:" in (issue["body"] or ""):
                workflow = truth[f"github:issue:{repo}#{issue['number']}:opened"]["workflow_id"]
                assert workflow.startswith("github:")
                return
    pytest.skip("no GitHub issue mentions a Linear key at this seed")


# ---- GitHub --------------------------------------------------------------------------------------------
def test_link_pagination_walks_every_pr_once_newest_update_first(sandbox, http, truth):
    repo = "acme/api"
    params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": 3}
    pulls, pages = walk(http, f"{sandbox.github_url}/repos/{repo}/pulls", params)
    numbers = [p["number"] for p in pulls]
    assert pages > 1 and len(numbers) == len(set(numbers))
    assert {f"github:pr:{repo}#{n}:opened" for n in numbers} == {
        e for e in truth if e.startswith(f"github:pr:{repo}#") and e.endswith(":opened")
    }
    updated = [p["updated_at"] for p in pulls]
    assert updated == sorted(updated, reverse=True)
    last = http.get(f"{sandbox.github_url}/repos/{repo}/pulls", params=params)
    assert re.search(rf'[?&]page={pages}>; rel="last"', last.headers["Link"])
    assert last.headers["Link"].startswith(f"<{sandbox.github_url}/repos/{repo}/pulls?")


def test_etag_gives_304_without_spending_rate_limit(sandbox, http):
    url, headers = (
        f"{sandbox.github_url}/repos/acme/web/pulls?state=all",
        {"Authorization": "Bearer etag-test"},
    )
    first = http.get(url, headers=headers)
    assert first.status_code == 200 and first.headers["ETag"].startswith('"')
    again = http.get(url, headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["X-RateLimit-Used"] == first.headers["X-RateLimit-Used"] == "1"
    assert http.get(url, headers={**headers, "If-None-Match": '"stale"'}).status_code == 200


def test_issues_since_filter_and_pull_request_items(sandbox, http, world):
    repo = "acme/api"
    everything = world["issues"][repo]
    since = sorted(i["updated_at"] for i in everything)[len(everything) // 2]
    params = {"state": "all", "since": since, "sort": "updated", "direction": "asc", "per_page": 5}
    items, _ = walk(http, f"{sandbox.github_url}/repos/{repo}/issues", params)
    assert items and all(i["updated_at"] >= since for i in items)
    assert len(items) == sum(i["updated_at"] >= since for i in everything)
    assert [i["updated_at"] for i in items] == sorted(i["updated_at"] for i in items)
    assert any("pull_request" in i for i in everything) and any("pull_request" not in i for i in everything)


def test_commits_since_until_newest_first(sandbox, http, world):
    commits = world["commits"]["acme/api"]
    dates = [c["commit"]["author"]["date"] for c in commits]
    assert dates == sorted(dates, reverse=True)
    since, until = dates[-1 - len(dates) // 4], dates[len(dates) // 4]
    window, _ = walk(http, f"{sandbox.github_url}/repos/acme/api/commits", {"since": since, "until": until})
    assert [c["sha"] for c in window] == [
        c["sha"] for c, d in zip(commits, dates, strict=True) if since <= d <= until
    ]


def test_unknown_paths_are_json_404s(sandbox, http):
    for path in ("/github/repos/acme/nope/pulls", "/github/nothing", "/elsewhere"):
        r = http.get(f"{sandbox.url}{path}")
        assert r.status_code == 404 and "message" in r.json()


def test_primary_rate_limit_gives_403_per_token(tmp_path):
    with run_sandbox(tmp_path, events=200, end=END, rate_limit=3) as small, requests.Session() as http:
        url = f"{small.github_url}/orgs/acme/repos"
        spent = [http.get(url, headers={"Authorization": "Bearer a"}) for _ in range(4)]
        assert [r.status_code for r in spent] == [200, 200, 200, 403]
        assert [r.headers["X-RateLimit-Remaining"] for r in spent] == ["2", "1", "0", "0"]
        assert "rate limit" in spent[-1].json()["message"]
        assert int(spent[-1].headers["X-RateLimit-Reset"]) > 0
        assert http.get(url, headers={"Authorization": "Bearer b"}).status_code == 200


# ---- faults --------------------------------------------------------------------------------------------
def test_429_fault_with_retry_after_then_recovers(sandbox, http):
    sandbox.set_faults(
        [{"match": "/github/repos/acme/api/pulls", "status": 429, "times": 2, "retry_after": 3}]
    )
    url = f"{sandbox.github_url}/repos/acme/api/pulls"
    first, second, third = (http.get(url) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "3"
    assert http.get(f"{sandbox.github_url}/repos/acme/web/pulls").status_code == 200


def test_403_rate_limit_fault(sandbox, http):
    sandbox.set_faults(
        [{"match": "/github", "status": 403, "rate_limit": True, "retry_after": 30, "times": 1}]
    )
    r = http.get(f"{sandbox.github_url}/orgs/acme/repos")
    assert r.status_code == 403 and r.headers["X-RateLimit-Remaining"] == "0"
    assert 25 <= int(r.headers["X-RateLimit-Reset"]) - time.time() <= 31


def test_malformed_json_fault(sandbox, http):
    sandbox.set_faults([{"match": "/charlie/instances", "kind": "malformed_json", "times": 1}])
    broken = http.get(f"{sandbox.charlie_url}/instances")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        json.loads(broken.content)
    assert http.get(f"{sandbox.charlie_url}/instances").json()["instances"]


def test_bad_record_fault_spoils_one_record_per_page(sandbox, http):
    sandbox.set_faults(
        [
            {"match": "/github/repos/acme/api/pulls", "kind": "bad_record", "times": 1},
            {"match": "/linear", "kind": "bad_record", "times": 1},
        ]
    )
    pulls = http.get(f"{sandbox.github_url}/repos/acme/api/pulls", params={"state": "all"}).json()
    bad = [p for p in pulls if "number" not in p]
    assert (
        len(bad) == 1 and "created_at" not in bad[0] and all("number" in p for p in pulls if p is not bad[0])
    )
    nodes = linear(http, sandbox, ISSUES_QUERY, first=10)["data"]["issues"]["nodes"]
    assert sum("identifier" not in n for n in nodes) == 1
    assert all("number" in p for p in http.get(f"{sandbox.github_url}/repos/acme/api/pulls").json())


def test_down_until_cleared_and_disconnect(sandbox, http):
    sandbox.set_faults([{"match": "/linear", "kind": "down"}, {"match": "/charlie", "kind": "disconnect"}])
    for _ in range(3):
        assert http.post(sandbox.linear_url, json={"query": "{ teams { nodes { id } } }"}).status_code == 503
    with pytest.raises(requests.ConnectionError):
        http.get(f"{sandbox.charlie_url}/instances")
    sandbox.clear_faults()
    assert http.post(sandbox.linear_url, json={"query": "{ teams { nodes { id } } }"}).status_code == 200


def test_invalid_fault_specs_are_rejected(sandbox, http):
    for spec in ({"match": "/github", "status": 418}, {"match": "/github", "status": 500, "rate": 0},
                 {"match": "/github", "status": 500, "rate": 1.5}, {"match": "/github", "kind": "timeout", "delay": -1}):
        r = http.post(f"{sandbox.url}/_sandbox/faults", json=[spec])
        assert r.status_code == 400, spec


def test_a_fault_with_a_rate_spoils_a_seeded_share_of_requests(sandbox, http):
    def storm() -> list[int]:
        sandbox.set_faults([{"match": "/charlie", "status": 502, "rate": 0.3, "seed": 5}])
        return [http.get(f"{sandbox.charlie_url}/instances").status_code for _ in range(200)]

    first = storm()
    assert set(first) == {200, 502}
    assert 40 <= first.count(502) <= 80  # 30% of 200, give or take the coin
    assert http.get(f"{sandbox.url}/_sandbox/faults").json()[0]["used"] == first.count(502)
    assert storm() == first  # the same seed, the same requests: the same storm
    assert http.get(f"{sandbox.github_url}/orgs/acme/repos").status_code == 200  # other paths untouched


def test_a_timeout_fault_holds_the_request_past_the_client_timeout(sandbox, http):
    sandbox.set_faults([{"match": "/linear", "kind": "timeout", "delay": 2, "times": 1}])
    with pytest.raises(requests.ReadTimeout):
        http.post(sandbox.linear_url, json={"query": "{ teams { nodes { id } } }"}, timeout=0.5)
    # Meanwhile (the request is still held) other requests are answered.
    assert http.get(f"{sandbox.charlie_url}/instances").status_code == 200
    assert http.post(sandbox.linear_url, json={"query": "{ teams { nodes { id } } }"}).status_code == 200


# ---- Linear --------------------------------------------------------------------------------------------
def test_linear_pagination_and_updated_at_window(sandbox, http, world):
    everything = {n["id"]: n for n in world["linear"]}
    paged = linear_issues(http, sandbox, first=7, orderBy="updatedAt")
    assert len(paged) == len(everything) == len({n["id"] for n in paged})
    stamps = sorted(n["updatedAt"] for n in paged)
    gte, lt = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    window = linear_issues(
        http, sandbox, first=5, orderBy="updatedAt", filter={"updatedAt": {"gte": gte, "lt": lt}}
    )
    assert {n["id"] for n in window} == {i for i, n in everything.items() if gte <= n["updatedAt"] < lt}
    assert [n["updatedAt"] for n in window] == sorted((n["updatedAt"] for n in window), reverse=True)
    by_created = linear_issues(http, sandbox, first=4, filter={"updatedAt": {"gte": gte, "lt": lt}})
    newest_created = sorted(window, key=lambda n: (n["createdAt"], n["id"]), reverse=True)
    assert [n["id"] for n in by_created] == [n["id"] for n in newest_created]


def test_linear_headers_and_errors(sandbox, http):
    r = http.post(sandbox.linear_url, json={"query": "{ issues(first: 2) { nodes { id priority } } }"})
    assert int(r.headers["X-Complexity"]) >= 1
    assert (
        int(r.headers["X-RateLimit-Requests-Remaining"]) > 0
        and "X-RateLimit-Complexity-Remaining" in r.headers
    )
    assert all(isinstance(n["priority"], int) for n in r.json()["data"]["issues"]["nodes"])
    too_many = http.post(sandbox.linear_url, json={"query": "{ issues(first: 1000) { nodes { id } } }"})
    assert too_many.status_code == 200 and too_many.json()["errors"]
    assert http.post(sandbox.linear_url, data=b"{not json").status_code == 400
    assert http.post(sandbox.linear_url, json={"query": "{ issues("}).status_code == 400


# ---- Charlie -------------------------------------------------------------------------------------------
def test_charlie_activity_cursor_paging(sandbox, http, world):
    instance = "charlie-alpha"
    whole = [e for e in world["activity"] if e["instance_id"] == instance]
    paged = charlie_activity(http, sandbox, instance, limit=4)
    assert [e["id"] for e in paged] == [e["id"] for e in whole] and len(whole) > 4
    assert [e["timestamp"] for e in paged] == sorted(e["timestamp"] for e in paged)
    since, until = whole[len(whole) // 4]["timestamp"], whole[3 * len(whole) // 4]["timestamp"]
    window = charlie_activity(http, sandbox, instance, limit=3, since=since, until=until)
    assert [e["id"] for e in window] == [e["id"] for e in whole if since <= e["timestamp"] < until]
    assert (
        http.get(f"{sandbox.charlie_url}/instances/{instance}/activity", params={"cursor": "zz"}).status_code
        == 400
    )
    health = http.get(f"{sandbox.charlie_url}/instances/{instance}/health").json()
    assert health["instance_id"] == instance and health["status"] in ("healthy", "degraded", "offline")
    assert Counter(i["type"] for i in world["instances"])["production"] >= 1
