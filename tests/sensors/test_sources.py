"""Source sensors against the sandbox: run on change, skip without one, skip while a circuit is open."""

from datetime import UTC, datetime

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from resources.http.circuit import CircuitBreaker
from resources.platform import PlatformResource
from sandbox.process import run_sandbox
from sensors.cron import cron_events_sensor
from sensors.github import github_sensor
from sensors.linear import linear_sensor
from sensors.postgres_cdc import postgres_cdc_sensor


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=400, days=1,
                     end=datetime.now(UTC).replace(tzinfo=None, microsecond=0)) as handle:
        yield handle


@pytest.fixture
def platform(sandbox, tmp_path):
    return PlatformResource(data_dir=str(tmp_path / "data"), sandbox_url=sandbox.url)


def tick(sensor, platform, cursor=None):
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=cursor,
                                   resources={"platform": platform})
    return sensor(context), context.cursor


@pytest.mark.parametrize("sensor, stale", [(github_sensor, "stale"), (linear_sensor, "2026-01-01T00:00:00Z"),
                                           (cron_events_sensor, "0")])
def test_runs_on_change_then_skips_until_the_source_moves(sensor, stale, platform):
    first, cursor = tick(sensor, platform)
    assert isinstance(first, RunRequest) and first.partition_key == datetime.now(UTC).date().isoformat()
    second, same = tick(sensor, platform, cursor)
    assert isinstance(second, SkipReason) and "no change" in second.skip_message
    assert same == cursor
    moved, _ = tick(sensor, platform, cursor=stale)
    assert isinstance(moved, RunRequest)


def test_open_circuit_skips_with_its_reason_and_sends_nothing(platform, sandbox):
    settings = platform.settings()
    breaker = CircuitBreaker("github", settings.state_dir / "circuits", failure_threshold=1)
    breaker.record_failure("HTTP 503")
    sandbox.set_faults([{"match": "/github", "kind": "down"}])  # would fail if asked
    try:
        result, _ = tick(github_sensor, platform)
    finally:
        sandbox.clear_faults()
    assert isinstance(result, SkipReason)
    assert "github circuit open until" in result.skip_message and "HTTP 503" in result.skip_message


def test_cdc_sensor_says_when_the_source_is_not_configured(platform, monkeypatch):
    monkeypatch.delenv("CC_CDC_PG_URL", raising=False)
    result, _ = tick(postgres_cdc_sensor, platform)
    assert isinstance(result, SkipReason) and "CC_CDC_PG_URL" in result.skip_message


def test_a_pull_that_ended_on_an_earlier_day_catches_up_from_its_cursors_in_one_range_run(platform):
    from datetime import timedelta

    from resources.storage.cursors import CursorStore

    now = datetime.now(UTC).replace(tzinfo=None)
    two_days_ago = now - timedelta(days=2)
    CursorStore(platform.settings().state_dir / "cursors.json").set_many({
        "incremental/github/pull_requests/acme/api": two_days_ago.isoformat(),
        "incremental/github/issues/acme/api": now.isoformat(),
        "incremental/linear/issues": now.isoformat(),
    })
    request, _ = tick(github_sensor, platform)
    assert isinstance(request, RunRequest) and request.partition_key is None
    first_day = (two_days_ago - timedelta(seconds=platform.settings().incremental_overlap_s)).date()
    assert request.tags["dagster/asset_partition_range_start"] == first_day.isoformat()
    assert request.tags["dagster/asset_partition_range_end"] == now.date().isoformat()
    # Linear's own cursor is today's: its next pull is today's partition alone.
    linear, _ = tick(linear_sensor, platform)
    assert isinstance(linear, RunRequest) and linear.partition_key == now.date().isoformat()
