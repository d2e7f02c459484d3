"""The circuit breaker over real HTTP: it opens after consecutive failures, fails fast, recovers."""

from datetime import datetime

import pytest

from resources.http.circuit import CircuitBreaker
from resources.http.client import CircuitOpen, HttpClient, SourceUnavailable
from sandbox.process import run_sandbox


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=300, days=1,
                     end=datetime(2026, 11, 20, 12)) as handle:
        yield handle


def client(breaker, retries=2) -> HttpClient:
    return HttpClient("github", max_retries=retries, backoff_s=0.001, sleep=lambda _: None, breaker=breaker)


def test_opens_after_five_failures_then_fails_fast_then_recovers(sandbox, tmp_path):
    clock = Clock()
    breaker = CircuitBreaker("github", tmp_path, failure_threshold=5, open_seconds=60, clock=clock)
    url = f"{sandbox.github_url}/orgs/acme/repos"
    sandbox.set_faults([{"match": "/github", "kind": "down"}])
    with pytest.raises(SourceUnavailable, match="after 3 attempts"):
        client(breaker).get(url)  # 3 failures: still closed
    second_call = client(breaker, retries=5)
    with pytest.raises(CircuitOpen, match="circuit open until .* after 5 consecutive failures; last error: HTTP 503"):
        second_call.get(url)
    assert second_call.requests_made == 2  # the 3rd attempt was never sent
    # Another process (a sensor) sees the same open circuit from the state file.
    assert CircuitBreaker("github", tmp_path, clock=clock).is_open()

    clock.now += 61  # half-open: one trial goes through; the source is back, so it closes
    sandbox.clear_faults()
    assert client(breaker).get(url).status == 200
    assert not breaker.is_open() and breaker.state().failures == 0


def test_a_failed_trial_reopens_at_once(sandbox, tmp_path):
    clock = Clock()
    breaker = CircuitBreaker("github", tmp_path, failure_threshold=2, open_seconds=60, clock=clock)
    sandbox.set_faults([{"match": "/github", "kind": "down"}])
    url = f"{sandbox.github_url}/orgs/acme/repos"
    with pytest.raises(CircuitOpen):
        client(breaker, retries=5).get(url)
    clock.now += 61
    with pytest.raises(CircuitOpen):
        client(breaker, retries=5).get(url)  # one trial, it failed, open again
    assert breaker.is_open()
    sandbox.clear_faults()


def test_rate_limits_do_not_open_the_circuit(sandbox, tmp_path):
    breaker = CircuitBreaker("github", tmp_path, failure_threshold=2, open_seconds=60)
    sandbox.set_faults([{"match": "/github", "status": 429, "times": 4, "retry_after": 0}])
    assert client(breaker, retries=5).get(f"{sandbox.github_url}/orgs/acme/repos").status == 200
    assert not breaker.is_open()
    sandbox.clear_faults()
