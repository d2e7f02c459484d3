"""The source clients against the sandbox over real HTTP: paging, ETags, retries, rate limits."""

from datetime import datetime, timedelta

import pytest
import requests

from resources.http.client import HttpClient, MalformedPage, SourceUnavailable
from resources.sources.charlie import CharlieClient
from resources.sources.github import GitHubClient
from resources.sources.linear import LinearClient
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
START = END - timedelta(days=3)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=800, days=3, end=END, rate_limit=100_000) as handle:
        yield handle


@pytest.fixture(autouse=True)
def no_faults(sandbox):
    sandbox.clear_faults()
    yield
    sandbox.clear_faults()


class Sleeps(list):
    """Records the waits a client asks for, instead of sleeping through them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def github(sandbox, sleeps=None, **kwargs) -> GitHubClient:
    http = HttpClient("github", sleep=sleeps if sleeps is not None else Sleeps(), backoff_s=0.01, **kwargs)
    return GitHubClient(http, sandbox.github_url, "acme", page_size=10)


def test_github_link_pagination_returns_each_pr_once(sandbox):
    client = github(sandbox)
    repos = client.repos()
    assert "acme/api" in repos
    prs = [(repo, p["number"]) for repo in repos
           for p in client.pull_requests(repo, START, END + timedelta(minutes=1))]
    assert prs and len(prs) == len(set(prs))
    issues_and_prs = [i for repo in repos for i in client.items(f"/repos/{repo}/issues", {"state": "all"})]
    assert len(prs) == sum(1 for i in issues_and_prs if "pull_request" in i)


def test_second_fetch_is_served_from_etags(sandbox):
    client = github(sandbox)
    first = list(client.issues("acme/api", START, END + timedelta(minutes=1)))
    second = list(client.issues("acme/api", START, END + timedelta(minutes=1)))
    assert first == second and first
    assert client.not_modified >= 1


def test_429_waits_as_long_as_retry_after_says(sandbox):
    sandbox.set_faults([{"match": "/github/orgs/acme/repos", "status": 429, "times": 2, "retry_after": 3}])
    sleeps = Sleeps()
    assert github(sandbox, sleeps).repos()
    assert sleeps == [3.0, 3.0]


def test_spent_primary_rate_limit_waits_until_reset(sandbox):
    sandbox.set_faults([{"match": "/github/orgs/acme/repos", "status": 403, "rate_limit": True, "times": 1,
                         "retry_after": 30}])
    sleeps = Sleeps()
    assert github(sandbox, sleeps).repos()
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 32


def test_source_down_fails_after_retries_with_a_clear_message(sandbox):
    sandbox.set_faults([{"match": "/github", "kind": "down"}])
    sleeps = Sleeps()
    with pytest.raises(SourceUnavailable, match=r"github: GET .*/orgs/acme/repos failed after 4 attempts"):
        github(sandbox, sleeps, max_retries=3).repos()
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)  # backing off, not hammering


def test_malformed_page_is_handed_back_and_paging_goes_on(sandbox):
    client = github(sandbox)
    clean = list(client.pull_requests("acme/api", START, END + timedelta(minutes=1)))
    sandbox.set_faults([{"match": "/github/repos/acme/api/pulls", "kind": "malformed_json", "times": 1}])
    items = list(github(sandbox).pull_requests("acme/api", START, END + timedelta(minutes=1)))
    bad = [i for i in items if isinstance(i, MalformedPage)]
    assert len(bad) == 1 and "invalid JSON" in bad[0].reason and bad[0].body
    assert len(clean) > 10  # several pages of 10: the pages after the bad one still arrive
    assert len(items) - 1 == len(clean) - 10


def test_linear_cursor_pagination_and_updated_window(sandbox):
    client = LinearClient(HttpClient("linear", sleep=Sleeps()), sandbox.linear_url, page_size=7)
    teams = list(client.teams())
    assert {t["key"] for t in teams} >= {"ENG", "OPS", "DATA"}
    day = END - timedelta(days=1)
    issues = list(client.issues(day, END))
    assert issues and client.http.requests_made > 2
    for issue in issues:
        updated = datetime.fromisoformat(issue["updatedAt"].replace("Z", "+00:00")).replace(tzinfo=None)
        assert day <= updated < END
    assert len({i["id"] for i in issues}) == len(issues)


def test_linear_follows_only_the_configured_teams(sandbox):
    client = LinearClient(HttpClient("linear", sleep=Sleeps()), sandbox.linear_url, teams=("OPS",))
    assert [t["key"] for t in client.teams()] == ["OPS"]
    issues = list(client.issues(START, END))
    assert issues and {i["team"]["key"] for i in issues} == {"OPS"}


def test_charlie_instances_health_and_activity(sandbox):
    client = CharlieClient(HttpClient("charlie", sleep=Sleeps()), sandbox.charlie_url, page_size=25)
    instances = list(client.instances())
    assert instances
    health = client.health(instances[0]["id"])
    assert health["instance_id"] == instances[0]["id"]
    events = list(client.activity(instances[0]["id"], START, END + timedelta(minutes=1)))
    assert len({e["id"] for e in events}) == len(events) > 25
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)


def test_a_listing_fetched_again_in_a_new_process_spends_no_rate_limit(sandbox, tmp_path):
    """The cache file outlives the client: the next run's client sends every page conditional,
    gets 304s (free on GitHub), and still reads every page, the `Link` to the next one included."""
    token = {"Authorization": "Bearer revalidation-test"}

    def used() -> int:  # the token's spent budget, by a plain request (which spends one)
        response = requests.get(f"{sandbox.github_url}/repos/acme/api", headers=token, timeout=10)
        return int(response.headers["X-RateLimit-Used"])

    def client() -> GitHubClient:
        http = HttpClient("github", headers=token, sleep=lambda _: None)
        return GitHubClient(http, sandbox.github_url, "acme", page_size=10, cache_path=tmp_path / "cache.sqlite")

    first = client()
    listed = list(first.items("/repos/acme/api/pulls", {"state": "all"}))
    pages = first.http.requests_made
    assert pages > 1 and first.not_modified == 0  # several pages, so `Link` was followed
    before = used()
    second = client()
    assert list(second.items("/repos/acme/api/pulls", {"state": "all"})) == listed
    assert second.not_modified == second.http.requests_made == pages
    assert used() == before + 1  # only the probe itself
