"""Linear's complexity and request budgets, read from its headers, against the sandbox over HTTP.

The sandbox refuses (400, RATELIMITED) any query its budget cannot pay for, as Linear does; a
client that paces itself from `X-Complexity` and `X-RateLimit-Complexity-*` is never refused.
"""

from datetime import datetime, timedelta

import pytest

from resources.http.client import HttpClient, RateLimited
from resources.sources.linear import ISSUES_QUERY, LinearClient
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
START = END - timedelta(days=3)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=600, days=3, end=END) as handle:
        yield handle


@pytest.fixture(autouse=True)
def fresh_budgets(sandbox):
    yield
    sandbox.set_limits()  # back to the defaults


def linear(sandbox, **kwargs) -> LinearClient:
    return LinearClient(HttpClient("linear", backoff_s=0.01, **kwargs), sandbox.linear_url, page_size=10)


def test_a_small_complexity_budget_is_paced_from_the_headers_and_never_refused(sandbox):
    everything = list(linear(sandbox).issues(START, END + timedelta(minutes=1)))
    assert len(everything) > 30, "enough issues for several pages"
    # What one page of the client's own query costs, as the server reports it.
    page = HttpClient("linear").post_json(sandbox.linear_url, {
        "query": ISSUES_QUERY, "variables": {"first": 10, "after": None, "filter": {}}})
    page_cost = int(page.headers["X-Complexity"])
    # About two pages per 2-second window: the pull needs several windows.
    sandbox.set_limits(linear_complexity=int(page_cost * 2.5), period_s=2)

    client = linear(sandbox)
    paced = list(client.issues(START, END + timedelta(minutes=1)))
    assert paced == everything
    assert client.http.budget_waits >= 1, "the client should have waited for the budget to refill"
    assert sandbox.info()["linear_refused"] == 0


def test_a_budget_spent_for_the_hour_fails_fast_with_the_reset_instead_of_hammering(sandbox):
    sandbox.set_limits(linear_complexity=1, period_s=3600)
    client = linear(sandbox)
    with pytest.raises(RateLimited, match="resets in"):
        list(client.issues(START, END + timedelta(minutes=1)))
    assert sandbox.info()["linear_refused"] == 1
