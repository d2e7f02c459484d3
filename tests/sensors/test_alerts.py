"""The alerts Dagster raises: a failed run opens one about its job and the job's next success
resolves it; a sensor whose tick failed opens one until it ticks again; the refreshes and
backfills the rules ask for become runs of the source's job, unless its circuit is open."""

from __future__ import annotations

import logging
import textwrap
from datetime import UTC, datetime

import pytest
from dagster import (
    DagsterEvent,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_sensor_context,
    job,
    op,
)

from cc_alerts.model import Action, Finding
from cc_alerts.rules import all_rules
from cc_alerts.store import alert_store
from cc_assets.definitions import defs
from resources.http.circuit import CircuitBreaker
from resources.platform import PlatformResource
from sandbox.process import run_sandbox
from sensors.alerts import (
    alert_actions_sensor,
    run_failure_alert_sensor,
    run_success_alert_sensor,
    sensor_error_alert_sensor,
)

TODAY = datetime.now(UTC).date().isoformat()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=200, days=1,
                     end=datetime.now(UTC).replace(tzinfo=None, microsecond=0)) as handle:
        yield handle


@pytest.fixture
def platform(tmp_path, monkeypatch):
    # A source that is down fails its run after 2 quick attempts (fewer than the breaker's 5).
    monkeypatch.setenv("CC_HTTP_MAX_RETRIES", "1")
    monkeypatch.setenv("CC_HTTP_BACKOFF_S", "0.05")
    return PlatformResource(data_dir=str(tmp_path / "data"))


@pytest.fixture
def store(platform):
    store = alert_store(platform.settings())
    yield store
    store.close()


def after_run(sensor, instance, result, platform):
    """Evaluate a run status sensor on `result`'s run, as the daemon does when the run ends."""
    event = result.get_run_failure_event() if not result.success else result.get_run_success_event()
    context = build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=instance,
                                              dagster_run=result.dagster_run, dagster_event=event,
                                              resources={"platform": platform})
    return sensor(context.for_run_failure() if not result.success else context)


def test_the_rules_table_lists_what_dagster_raises():
    rules = all_rules()
    for name in ("dagster_run_failed", "dagster_sensor_error", "dbt_test_failed"):
        assert rules[name].runs_in == "dagster" and rules[name].evaluate is None
    assert rules["dagster_run_failed"].cadence_s is None and rules["dbt_test_failed"].cadence_s is None
    # Registered, and running from the start (an alert sensor nobody turned on never alerts).
    sensors = {s.name: s for s in defs.get_repository_def().sensor_defs}
    for name in ("run_failure_alert_sensor", "run_success_alert_sensor", "sensor_error_alert_sensor",
                 "alert_actions_sensor"):
        assert sensors[name].default_status == DefaultSensorStatus.RUNNING and sensors[name].description


def test_a_source_that_fails_opens_a_critical_alert_and_its_next_success_resolves_it(sandbox, platform, store):
    platform = PlatformResource(data_dir=platform.data_dir, sandbox_url=sandbox.url)
    weather_job = defs.resolve_job_def("weather_job")
    with DagsterInstance.ephemeral() as instance:
        sandbox.set_faults([{"match": "/weather", "kind": "down"}])
        try:
            failed = weather_job.execute_in_process(instance=instance, partition_key=TODAY,
                                                    resources={"platform": platform}, raise_on_error=False)
        finally:
            sandbox.clear_faults()
        assert not failed.success
        after_run(run_failure_alert_sensor, instance, failed, platform)

        [alert] = store.list(rule="dagster_run_failed")
        assert alert.state == "open" and alert.subject == "job:weather_job" and alert.severity == "critical"
        assert alert.message.startswith(f"weather_job failed (run {failed.run_id[:8]}): 1 step(s) failed")
        assert "weather is unavailable" in alert.message
        assert alert.links == {"run": f"http://127.0.0.1:{platform.settings().ui_port}/runs/{failed.run_id}"}
        assert [n.transition for n in store.notices_after(0)] == ["opened"]

        fixed = weather_job.execute_in_process(instance=instance, partition_key=TODAY,
                                               resources={"platform": platform}, raise_on_error=False)
        assert fixed.success
        after_run(run_success_alert_sensor, instance, fixed, platform)

    [resolved] = store.list(rule="dagster_run_failed")
    assert resolved.id == alert.id and resolved.state == "resolved"
    assert resolved.message == f"weather_job succeeded again (run {fixed.run_id[:8]})"
    assert [n.transition for n in store.notices_after(0)] == ["opened", "resolved"]


@op(config_schema={"fail": bool})
def move(context) -> None:
    if context.op_config["fail"]:
        raise OSError("no space left on device\nwhile writing cold/events")


@job(name="tiers_daily_job")
def tiers_daily_standin():
    move()


def test_a_tier_job_failure_is_a_warning_and_one_already_followed_by_a_success_is_resolved_at_once(platform, store):
    """The success sensor may see the next good run before the failure sensor sees the failure."""
    with DagsterInstance.ephemeral() as instance:
        failed = tiers_daily_standin.execute_in_process(run_config={"ops": {"move": {"config": {"fail": True}}}},
                                                        instance=instance, raise_on_error=False)
        fixed = tiers_daily_standin.execute_in_process(run_config={"ops": {"move": {"config": {"fail": False}}}},
                                                       instance=instance)
        after_run(run_success_alert_sensor, instance, fixed, platform)
        after_run(run_failure_alert_sensor, instance, failed, platform)
    [alert] = store.list(rule="dagster_run_failed")
    assert alert.severity == "warning" and alert.state == "resolved"
    assert [n.transition for n in store.notices_after(0)] == ["opened", "resolved"]
    assert store.notices_after(0)[0].alert["message"].endswith("1 step(s) failed (move): OSError: no space left on device")


FLAKY_DEFS = textwrap.dedent('''
    import os
    from pathlib import Path
    from dagster import DefaultSensorStatus, Definitions, SkipReason, sensor

    @sensor(minimum_interval_seconds=1, default_status=DefaultSensorStatus.RUNNING, description="probes an API")
    def flaky_sensor(context):
        if Path(os.environ["CC_TEST_FLAKY_FLAG"]).exists():
            raise RuntimeError("the probe's API answered 500")
        return SkipReason("nothing new")

    defs = Definitions(sensors=[flaky_sensor])
''')


def test_a_sensor_whose_tick_failed_raises_an_alert_until_it_ticks_again(tmp_path, platform, store, monkeypatch):
    """The ticks are the sensor daemon's own: a code location with a failing sensor, ticked by it."""
    import time

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    (tmp_path / "flaky_defs.py").write_text(FLAKY_DEFS)
    flag = tmp_path / "failing"
    flag.touch()
    monkeypatch.setenv("CC_TEST_FLAKY_FLAG", str(flag))
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=str(tmp_path / "flaky_defs.py"),
                                                              attribute="defs"), location_name="flaky")

    def check(cursor):
        context = build_sensor_context(instance=instance, cursor=cursor, sensor_name="sensor_error_alert_sensor",
                                       resources={"platform": platform})
        return sensor_error_alert_sensor(context), context.cursor

    with instance_for_test() as instance, \
            create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget([origin]), instance) as workspace:
        def daemon_tick():
            list(execute_sensor_iteration(workspace, logging.getLogger("sensor-daemon"), None, None))

        daemon_tick()
        result, cursor = check(None)
        assert isinstance(result, SkipReason) and result.skip_message == "failing: flaky_sensor"
        [alert] = store.list(rule="dagster_sensor_error")
        assert alert.subject == "sensor:flaky_sensor" and alert.state == "open" and alert.severity == "warning"
        assert alert.message == "sensor flaky_sensor failed: RuntimeError: the probe's API answered 500"
        assert alert.links == {"sensor": f"http://127.0.0.1:{platform.settings().ui_port}"
                                         "/locations/flaky/sensors/flaky_sensor"}
        # No new tick: the alert is left as it is (not counted again).
        again, cursor = check(cursor)
        assert again.skip_message == "failing: flaky_sensor" and store.get(alert.id).count == 1

        flag.unlink()
        time.sleep(1.1)  # the sensor's minimum interval, before the daemon ticks it again
        daemon_tick()
        result, cursor = check(cursor)
    assert result.skip_message == "no sensor or schedule is failing; resolved: flaky_sensor"
    resolved = store.get(alert.id)
    assert resolved.state == "resolved" and resolved.message == "sensor flaky_sensor ticks again"


def test_refresh_and_backfill_requests_become_runs_of_the_sources_jobs(platform, store):
    alert = store.raise_alert(Finding("stale_data", "source:charlie", "warning", "charlie is 7 min old",
                                      action=Action("refresh", "charlie"))).alert
    store.request(Action("backfill", "system", "2026-11-18", "2026-11-20"))
    store.request(Action("backfill", "github", "2026-11-19", "2026-11-19"))
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), resources={"platform": platform})
    runs = alert_actions_sensor(context).run_requests
    by_job = {r.job_name: r for r in runs}
    assert set(by_job) == {"charlie_health_job", "charlie_activity_job", "system_metrics_job", "github_job"}
    for name in ("charlie_health_job", "charlie_activity_job"):
        assert by_job[name].partition_key == TODAY
        assert by_job[name].tags == {"cc/alert_action": "refresh", "cc/alert_id": alert.id}
    assert by_job["system_metrics_job"].partition_key is None
    assert by_job["system_metrics_job"].tags["dagster/asset_partition_range_start"] == "2026-11-18"
    assert by_job["system_metrics_job"].tags["dagster/asset_partition_range_end"] == "2026-11-20"
    assert by_job["github_job"].partition_key == "2026-11-19"
    assert len({r.run_key for r in runs}) == 4
    # Each request is taken once.
    again = alert_actions_sensor(build_sensor_context(instance=DagsterInstance.ephemeral(),
                                                      resources={"platform": platform}))
    assert isinstance(again, SkipReason) and again.skip_message == "no refresh or backfill requested"


def test_a_source_whose_circuit_is_open_is_not_refreshed(platform, store):
    breaker = CircuitBreaker("linear", platform.settings().state_dir / "circuits", failure_threshold=1)
    breaker.record_failure("HTTP 503")
    store.request(Action("refresh", "linear"))
    store.request(Action("refresh", "openclaw"))
    store.request(Action("refresh", "nowhere"))
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), resources={"platform": platform})
    [run] = alert_actions_sensor(context).run_requests
    assert isinstance(run, RunRequest) and run.job_name == "openclaw_job"
    store.request(Action("refresh", "linear"))
    skipped = alert_actions_sensor(build_sensor_context(instance=DagsterInstance.ephemeral(),
                                                        resources={"platform": platform}))
    assert isinstance(skipped, SkipReason)
    assert skipped.skip_message.startswith("refresh of linear skipped: linear circuit open until")
    assert "HTTP 503" in skipped.skip_message


def test_every_source_job_is_found_by_its_source():
    from sensors.alerts import jobs_by_source

    assert jobs_by_source() == {
        "github": ["github_job"], "linear": ["linear_job"], "charlie": ["charlie_health_job", "charlie_activity_job"],
        "openclaw": ["openclaw_job"], "cron": ["cron_events_job"], "weather": ["weather_job"],
        "system": ["system_metrics_job"], "logs": ["logs_job"], "postgres_cdc": ["postgres_cdc_job"],
        "webhooks": ["webhooks_job"]}


def test_a_run_event_the_sensor_is_given_without_a_failure_still_names_the_job(platform, store):
    """A run that failed before any step (e.g. its worker died) has no step failures to quote."""
    from sensors.alerts import run_failure_finding

    with DagsterInstance.ephemeral() as instance:
        run = instance.create_run_for_job(job_def=tiers_daily_standin,
                                          run_config={"ops": {"move": {"config": {"fail": False}}}})
        event = DagsterEvent("PIPELINE_FAILURE", "tiers_daily_job", message="Run worker exited unexpectedly.")
        finding = run_failure_finding(run, event, [], "http://127.0.0.1:3000")
    assert finding.message == f"tiers_daily_job failed (run {run.run_id[:8]}): Run worker exited unexpectedly."
