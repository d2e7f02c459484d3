"""The GitHub GraphQL client against the sandbox over real HTTP: the same records as REST (columns
and events), nested pages followed, a pull request that is gone, and GitHub's point budget paced
(a budget too small for the pull: the client waits for the reset and loses nothing)."""

from datetime import datetime, timedelta

import pytest

from cc_events import NormalizeContext, normalize
from cc_events.registry import RAW_TABLES
from resources.http.client import HttpClient, MalformedPage
from resources.sources.github import GitHubClient
from resources.sources.github_graphql import GitHubGraphQLClient
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
START = END - timedelta(days=3)
CTX = NormalizeContext(frozenset({"ENG", "OPS"}))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=800, days=3, end=END, rate_limit=100_000) as handle:
        yield handle


@pytest.fixture(autouse=True)
def fresh(sandbox):
    yield
    sandbox.clear_faults()
    sandbox.set_limits()  # every budget back to its default


def rest(sandbox) -> GitHubClient:
    return GitHubClient(HttpClient("github", sleep=lambda _: None, backoff_s=0.01), sandbox.github_url, "acme")


def graphql(sandbox, **kwargs) -> GitHubGraphQLClient:
    return GitHubGraphQLClient(HttpClient("github", backoff_s=0.01, **kwargs), sandbox.github_url, "acme")


def landed(entity: str, pairs) -> list[tuple]:
    """What the raw table and the normalizer make of each record: the columns, then the events."""
    out = []
    for key, item in pairs:
        extra = {"repo": key[0]} if entity == "pull_requests" else {"repo": key[0], "pull_number": key[1]}
        assert isinstance(item, dict), item
        events = [e.to_row() for e in normalize("github", entity, item, CTX, extra)]
        out.append((RAW_TABLES["github", entity].flatten(item, extra), events))
    return out


@pytest.fixture(scope="module")
def pulls(sandbox):
    """Every pull request of the window over REST, as the lake keys them: (repo, number, head_sha)."""
    client = rest(sandbox)
    found = [(repo, item) for repo in client.repos() for item in client.pull_requests(repo, START, END)]
    assert len(found) > 20, "enough pull requests for several batches"
    return found


def test_pull_requests_land_the_same_rows_and_events_as_rest(sandbox, pulls):
    client = graphql(sandbox)
    via_graphql = [((repo,), item) for repo in client.repos() for item in client.pull_requests(repo, START, END)]
    assert landed("pull_requests", via_graphql) == landed("pull_requests", [((r,), i) for r, i in pulls])
    assert any(i["user"]["type"] == "Bot" and i["user"]["login"].endswith("[bot]") for _, i in via_graphql)


def test_reviews_commits_and_check_runs_land_as_over_rest_with_nested_pages_followed(sandbox, pulls):
    keys = [(repo, item["number"], item["head"]["sha"]) for repo, item in pulls]
    # Tiny pages and batches: several batches, and follow-up queries for every longer connection.
    client = graphql(sandbox)
    client.batch_size, client.nested_page_size, client.suites_page_size = 7, 2, 1
    reference = rest(sandbox)
    for entity, method in (("reviews", "reviews_of"), ("commits", "pull_commits_of"), ("check_runs", "check_runs_of")):
        expected = landed(entity, getattr(reference, method)(keys))
        assert expected, f"the window should hold {entity}"
        before = client.queries
        assert landed(entity, getattr(client, method)(keys)) == expected, entity
        batches = -(-len(keys) // client.batch_size)
        assert client.queries - before > batches, f"{entity}: follow-up pages should have been fetched"
    commits = [item for _, item in client.pull_commits_of(keys)]
    assert any(c["author"] and c["author"]["type"] == "Bot" for c in commits), "a bot's commits keep their author"
    assert any(c["author"] is None for c in commits), "an email tied to no account has no author"


def test_a_pull_request_that_is_gone_is_a_dead_letter_and_the_others_arrive(sandbox, pulls):
    repo, first = pulls[0]
    keys = [(repo, first["number"], "day"), (repo, 99999, "day")]
    out = list(graphql(sandbox).reviews_of(keys))
    gone = [item for key, item in out if key[1] == 99999]
    assert len(gone) == 1 and isinstance(gone[0], MalformedPage)
    assert gone[0].reason.startswith(f"pull request {repo}#99999 is gone (GraphQL NOT_FOUND)")
    assert [i for k, i in out if k[1] != 99999] == [i for _, i in graphql(sandbox).reviews_of(keys[:1])]


def test_a_budget_smaller_than_the_pull_is_paced_and_nothing_is_lost(sandbox, pulls):
    keys = [(repo, item["number"], item["head"]["sha"]) for repo, item in pulls]
    unpaced = graphql(sandbox)
    unpaced.batch_size = 5
    expected = list(unpaced.check_runs_of(keys))
    cost, queries = unpaced._costs["CheckRuns"], unpaced.queries
    assert queries >= 6
    # A third of the pull's points per 2-second window: the pull needs several windows.
    sandbox.set_limits(github_graphql_points=cost * (queries // 3), period_s=2)
    client = graphql(sandbox)
    client.batch_size = 5
    assert list(client.check_runs_of(keys)) == expected
    assert client.graphql_http.budget_waits >= 1, "the client should have waited for the budget's reset"
    assert sandbox.info()["github_refused"] == 0, "a client that paces itself is never refused"


def test_a_query_refused_for_its_points_waits_for_the_reset_and_is_sent_again(sandbox, pulls):
    keys = [(repo, item["number"]) for repo, item in pulls]
    expected = list(graphql(sandbox).reviews_of(keys))
    sandbox.set_limits(github_graphql_points=3, period_s=4)
    # Another client with the same token spends the budget: this one has not seen it go.
    spender = graphql(sandbox)
    for _ in range(3):
        spender._query("Spend", "query Spend { rateLimit { remaining } }", {})
    client = graphql(sandbox)
    assert list(client.reviews_of(keys)) == expected
    assert sandbox.info()["github_refused"] >= 1
    assert client.graphql_http.budget_waits >= 1
