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


def test_a_source_that_answers_records_when_at_most_every_ten_seconds(sandbox, tmp_path):
    """The stale-data alert reads `last_success_at`: a probe answered "nothing new" is a source
    that is current. A run of requests writes the file once, not once per request."""
    clock = Clock()
    breaker = CircuitBreaker("github", tmp_path, clock=clock)
    url = f"{sandbox.github_url}/orgs/acme/repos"
    http = client(breaker)
    http.get(url)
    state_file = tmp_path / "github.json"
    first = state_file.stat().st_ino
    assert breaker.state().last_success_at == clock.now
    for _ in range(20):
        clock.now += 0.4
        http.get(url)
    assert state_file.stat().st_ino == first  # 8 s of requests: not written again
    clock.now += 2
    http.get(url)
    assert state_file.stat().st_ino != first and breaker.state().last_success_at == clock.now
    sandbox.set_faults([{"match": "/github", "kind": "down"}])
    with pytest.raises(SourceUnavailable):
        client(breaker, retries=0).get(url)
    sandbox.clear_faults()
    assert breaker.state().failures == 1 and breaker.state().last_success_at == clock.now  # a failure keeps it
