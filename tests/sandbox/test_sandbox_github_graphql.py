"""The sandbox's GitHub GraphQL API (`POST /github/graphql`): the REST records under GitHub's GraphQL
names, Relay paging, GitHub's point formula and budget, and GitHub's error shapes."""

from __future__ import annotations

import uuid

import pytest

EVENTS = 900
END = "2026-11-20T12:00:00Z"

PULL = """query Pull($number: Int!) {
  repository(owner: "acme", name: "api") { pullRequest(number: $number) {
    id fullDatabaseId number title body state isDraft url createdAt updatedAt closedAt mergedAt
    headRefName headRefOid baseRefName author { __typename login }
    reviews(first: 100) { totalCount nodes { id fullDatabaseId state submittedAt url author { __typename login } } }
    commits(first: 100) { nodes { commit { oid message url authoredDate author { name email date user { login } }
      checkSuites(first: 10) { nodes { app { slug } checkRuns(first: 100, filterBy: {checkType: ALL}) {
        nodes { databaseId name status conclusion startedAt completedAt url } } } } } } }
  } }
}"""


def post(http, sandbox, query: str, variables: dict | None = None, token: str = "", **body):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.post(f"{sandbox.github_url}/graphql", json={"query": query, "variables": variables or {}, **body},
                     headers=headers, timeout=30)


@pytest.fixture(autouse=True)
def default_budget(sandbox):
    yield
    sandbox.set_limits()  # every budget back to its default


def test_a_pull_request_and_its_reviews_commits_and_checks_are_the_rest_records(sandbox, http):
    listing = http.get(f"{sandbox.github_url}/repos/acme/api/pulls", params={"state": "all", "per_page": 100}).json()
    pull = next(p for p in listing if p["merged_at"] and p["user"]["type"] == "User")
    number = pull["number"]
    node = post(http, sandbox, PULL, {"number": number}).json()["data"]["repository"]["pullRequest"]
    assert (node["id"], node["fullDatabaseId"], node["url"], node["title"], node["body"]) == (
        pull["node_id"], str(pull["id"]), pull["html_url"], pull["title"], pull["body"])
    assert (node["state"], node["isDraft"], node["headRefName"], node["headRefOid"], node["baseRefName"]) == (
        "MERGED", pull["draft"], pull["head"]["ref"], pull["head"]["sha"], pull["base"]["ref"])
    assert [node[k] for k in ("createdAt", "updatedAt", "closedAt", "mergedAt")] == [
        pull[k] for k in ("created_at", "updated_at", "closed_at", "merged_at")]
    assert node["author"] == {"__typename": "User", "login": pull["user"]["login"]}

    reviews = http.get(f"{sandbox.github_url}/repos/acme/api/pulls/{number}/reviews").json()
    assert node["reviews"]["totalCount"] == len(reviews) > 0
    assert [(r["fullDatabaseId"], r["state"], r["submittedAt"], r["url"]) for r in node["reviews"]["nodes"]] == [
        (str(r["id"]), r["state"], r["submitted_at"], r["html_url"]) for r in reviews]

    commits = http.get(f"{sandbox.github_url}/repos/acme/api/pulls/{number}/commits").json()
    assert [(c["commit"]["oid"], c["commit"]["message"], c["commit"]["authoredDate"], c["commit"]["url"])
            for c in node["commits"]["nodes"]] == [
        (c["sha"], c["commit"]["message"], c["commit"]["author"]["date"], c["html_url"]) for c in commits]

    head = next(c["commit"] for c in node["commits"]["nodes"] if c["commit"]["oid"] == pull["head"]["sha"])
    checks = http.get(f"{sandbox.github_url}/repos/acme/api/commits/{pull['head']['sha']}/check-runs",
                      params={"filter": "all"}).json()["check_runs"]
    runs = [r for suite in head["checkSuites"]["nodes"] for r in suite["checkRuns"]["nodes"]]
    assert checks and sorted((r["databaseId"], r["name"], r["status"].lower(), (r["conclusion"] or "").lower(),
                              r["completedAt"], r["url"]) for r in runs) == sorted(
        (c["id"], c["name"], c["status"], c["conclusion"] or "", c["completed_at"], c["html_url"]) for c in checks)
    assert {s["app"]["slug"] for s in head["checkSuites"]["nodes"]} == {"github-actions"}


def test_a_bot_is_a_bot_without_its_rest_suffix(sandbox, http):
    query = """query { repository(owner: "acme", name: "api") { pullRequests(first: 100) {
        nodes { author { __typename login } commits(first: 1) { nodes { commit { author { email user { login } } } } } }
    } } }"""
    nodes = post(http, sandbox, query).json()["data"]["repository"]["pullRequests"]["nodes"]
    bots = [n for n in nodes if n["author"]["__typename"] == "Bot"]
    assert bots and all(not n["author"]["login"].endswith("[bot]") for n in bots)
    # A commit author's `user` is a User: a bot's commits have none, only its noreply address.
    for n in bots:
        author = n["commits"]["nodes"][0]["commit"]["author"]
        assert author["user"] is None and author["email"].endswith(f"+{n['author']['login']}[bot]@users.noreply.github.com")


def test_pull_requests_page_newest_update_first_as_rest_lists_them(sandbox, http):
    query = """query Page($after: String) { repository(owner: "acme", name: "api") {
        pullRequests(first: 3, after: $after, orderBy: {field: UPDATED_AT, direction: DESC}) {
          totalCount pageInfo { hasNextPage endCursor } nodes { number } } } }"""
    numbers, after, pages = [], None, 0
    while True:
        listing = post(http, sandbox, query, {"after": after}).json()["data"]["repository"]["pullRequests"]
        numbers += [n["number"] for n in listing["nodes"]]
        pages += 1
        if not listing["pageInfo"]["hasNextPage"]:
            break
        after = listing["pageInfo"]["endCursor"]
    rest = http.get(f"{sandbox.github_url}/repos/acme/api/pulls",
                    params={"state": "all", "sort": "updated", "direction": "desc", "per_page": 100}).json()
    assert numbers == [p["number"] for p in rest] and listing["totalCount"] == len(rest)
    assert pages > 2
    merged = post(http, sandbox, """query { repository(owner: "acme", name: "api") {
        pullRequests(first: 100, states: [MERGED]) { nodes { state mergedAt } } } }""").json()
    nodes = merged["data"]["repository"]["pullRequests"]["nodes"]
    assert nodes and all(n["state"] == "MERGED" and n["mergedAt"] for n in nodes)


def test_a_query_costs_githubs_points_and_the_budget_says_so(sandbox, http):
    token = uuid.uuid4().hex
    query = """query { rateLimit { cost limit remaining used nodeCount resetAt }
      repository(owner: "acme", name: "api") { pullRequests(first: 50) { nodes {
        reviews(first: 20) { nodes { state } }
        commits(first: 10) { nodes { commit { checkSuites(first: 5) { nodes { checkRuns(first: 20) { nodes { name } } } } } } }
      } } } }"""
    response = post(http, sandbox, query, token=token)
    rate = response.json()["data"]["rateLimit"]
    # Requests to fill every connection: 1 + 50 + 50 + 50×10 + 50×10×5 = 3,101, so 31 points.
    assert rate["cost"] == 31 and rate["limit"] == 5000 and rate["used"] == 31 and rate["remaining"] == 4969
    assert rate["nodeCount"] == 50 + 50 * 20 + 50 * 10 + 50 * 10 * 5 + 50 * 10 * 5 * 20
    assert response.headers["x-ratelimit-remaining"] == "4969" and response.headers["x-ratelimit-resource"] == "graphql"
    small = post(http, sandbox, "query { rateLimit { cost remaining } viewer { login } }", token=token).json()
    assert small["data"]["rateLimit"] == {"cost": 1, "remaining": 4968}


def test_githubs_error_shapes(sandbox, http):
    def errors(query: str) -> list[dict]:
        response = post(http, sandbox, query)
        assert response.status_code == 200
        return response.json()["errors"]

    [missing] = errors('query { repository(owner: "acme", name: "api") { pullRequests { totalCount } } }')
    assert missing["type"] == "MISSING_PAGINATION_BOUNDARIES" and missing["path"] == ["repository", "pullRequests"]
    assert "`first` or `last`" in missing["message"]
    [excessive] = errors('query { repository(owner: "acme", name: "api") { pullRequests(first: 101) { totalCount } } }')
    assert excessive["type"] == "EXCESSIVE_PAGINATION" and "101 records" in excessive["message"]
    [nodes] = errors("""query { repository(owner: "acme", name: "api") { pullRequests(first: 100) { nodes {
        commits(first: 100) { nodes { commit { checkSuites(first: 100) { totalCount } } } } } } } }""")
    assert nodes["type"] == "MAX_NODE_LIMIT_EXCEEDED" and "500,000" in nodes["message"]
    assert errors("query { repository(owner: \"acme\", name: \"api\") { stars } }")[0]["message"]
    gone = post(http, sandbox, 'query { repository(owner: "acme", name: "nope") { name } }').json()
    assert gone["data"] == {"repository": None}
    assert gone["errors"][0]["type"] == "NOT_FOUND" and gone["errors"][0]["path"] == ["repository"]
    assert gone["errors"][0]["message"] == "Could not resolve to a Repository with the name 'acme/nope'."


def test_a_spent_budget_refuses_with_rate_limited_and_rest_keeps_its_own(sandbox, http):
    sandbox.set_limits(github_graphql_points=2, period_s=3600)
    token = uuid.uuid4().hex
    for _ in range(2):
        assert "errors" not in post(http, sandbox, "query { viewer { login } }", token=token).json()
    refused = post(http, sandbox, "query { viewer { login } }", token=token)
    assert refused.status_code == 200 and refused.headers["x-ratelimit-remaining"] == "0"
    assert refused.json()["errors"][0]["type"] == "RATE_LIMITED"
    assert "rate limit exceeded" in refused.json()["errors"][0]["message"]
    assert sandbox.info()["github_refused"] == 1
    rest = http.get(f"{sandbox.github_url}/repos/acme/api", headers={"Authorization": f"Bearer {token}"})
    assert rest.status_code == 200


def test_a_fault_can_name_one_graphql_operation(sandbox, http):
    sandbox.set_faults([{"match": "/github/graphql#Reviews", "status": 503}])
    assert post(http, sandbox, "query Reviews { viewer { login } }").status_code == 503
    assert post(http, sandbox, "query Pulls { viewer { login } }").status_code == 200
    requests = sandbox.info()["github_requests"]
    assert requests["graphql"] >= 2
