"""The operations rules raise and resolve what an operator would: a source's circuit open, a Charlie
instance unhealthy, silent or failing tasks, a cron job failed or late, a host over a threshold
for a while. Each runs in the monitor with a hand-driven clock over real files: breaker state
written by a real `CircuitBreaker` against the sandbox, lake partitions in the raw schemas, the
landing log as the metrics agent writes it, and a sandbox world landed by the real raw assets.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from dagster import DagsterInstance, materialize

from cc_alerts.monitor import Monitor
from cc_alerts.rules import all_rules
from cc_alerts.rules.operations import RULES
from cc_alerts.store import AlertStore, alert_store
from cc_assets.sources import raw_assets
from cc_events.delivered import DELIVERED_TABLES
from cc_events.raw_tables import raw_json
from cc_events.registry import RAW_TABLES
from resources.http.circuit import CircuitBreaker
from resources.http.client import CircuitOpen, HttpClient, SourceUnavailable
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.platform import PlatformResource
from resources.settings import Settings
from resources.storage.lake import Lake, raw_schema
from resources.storage.landing import LandingLog
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)  # the sandbox world's last minute (a Friday)


class Clock:
    """The monitor's clock and the breaker's, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def epoch(self) -> float:
        return self.now.replace(tzinfo=UTC).timestamp()

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    # The demo's world (`make demo`: 5,000 events over 7 days).
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=5000, days=7, end=END) as handle:
        yield handle


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def store(settings: Settings) -> Iterator[AlertStore]:
    store = alert_store(settings)
    yield store
    store.close()


def monitor(store: AlertStore, settings: Settings, name: str, clock: Clock) -> Monitor:
    return Monitor(store, settings, rules=[all_rules()[name]], clock=clock)


def live(store: AlertStore, rule: str) -> dict[str, tuple[str, str]]:
    """Open alerts of `rule`: subject -> (severity, message)."""
    return {a.subject: (a.severity, a.message) for a in store.list(state=["open"], rule=rule)}


def resolved(store: AlertStore, rule: str) -> set[str]:
    return {a.subject for a in store.list(state=["resolved"], rule=rule)}


def land(settings: Settings, source: str, entity: str, records: list[dict], delivered: bool = False) -> None:
    """Records as the source's API returns them, landed in their day's partition (merged with what
    is there) as the raw asset or, with `delivered`, the delivered-records asset writes them."""
    table = DELIVERED_TABLES[source, entity] if delivered else RAW_TABLES[source, entity]
    path = ("raw", table.source, table.entity)
    lake = Lake(settings.lake_dir)
    by_day: dict = {}
    for record in records:
        row = {**table.flatten(record), "_raw": raw_json(record)}
        day_column = next(c.name for c in table.columns if c.type == "time" and c.required)
        by_day.setdefault(row[day_column].date(), []).append(row)
    for day, rows in by_day.items():
        old = lake.read(path, day)
        kept = [] if old is None else [{k: v for k, v in r.items() if not k.startswith("_") or k == "_raw"}
                                       for r in old.to_pylist()]
        lake.write(path, day, kept + rows, raw_schema(table), datetime.now(UTC).replace(tzinfo=None))


def iso(moment: datetime) -> str:
    return moment.isoformat() + "Z"


# ---- the circuit breaker, against the sandbox ------------------------------------------------------

def test_an_open_circuit_alerts_at_once_and_resolves_when_the_trial_succeeds(sandbox, tmp_path):
    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data"), "CC_SANDBOX_URL": sandbox.url})
    clock = Clock(datetime(2026, 12, 1, 9, 0))
    breaker = CircuitBreaker("github", settings.state_dir / "circuits", settings.circuit_failures,
                             settings.circuit_open_s, clock=clock.epoch)
    github = HttpClient("github", max_retries=2, backoff_s=0.001, sleep=lambda _: None, breaker=breaker)
    url = f"{settings.github_base_url}/orgs/acme/repos"
    store = alert_store(settings)
    watch = monitor(store, settings, "circuit_open", clock)
    try:
        assert github.get(url).status == 200
        assert watch.run_due() == [] and live(store, "circuit_open") == {}

        sandbox.set_faults([{"match": "/github", "kind": "down"}])
        with pytest.raises(SourceUnavailable):
            github.get(url)  # 3 failures: failing, not open yet
        clock.advance(5)
        assert [c.transition for c in watch.run_due()] == []
        with pytest.raises(CircuitOpen):
            github.get(url)  # 2 more: open
        clock.advance(5)  # the rule's cadence: the next round finds it
        [opened] = watch.run_due()
        assert opened.transition == "opened" and opened.alert.severity == "critical"
        assert opened.alert.subject == "source:github"
        assert opened.alert.message.startswith("github circuit open after 5 consecutive failures; last error: HTTP 503")
        assert "calls fail fast until 09:01:05 UTC" in opened.alert.message

        clock.advance(2)
        assert watch.run_due() == []  # not due again within 5 s
        clock.advance(60)  # cooled down: half-open, the alert stays until a trial succeeds
        [still] = watch.run_due()
        assert still.transition == "updated" and "the next call is the trial" in still.alert.message

        sandbox.clear_faults()
        assert github.get(url).status == 200  # the trial
        clock.advance(5)
        [closed] = watch.run_due()
        assert closed.transition == "resolved" and closed.alert.id == opened.alert.id
        assert live(store, "circuit_open") == {} and resolved(store, "circuit_open") == {"source:github"}
        assert [n.transition for n in store.notices_after(0)] == ["opened", "resolved"]
    finally:
        github.close()
        store.close()


def test_a_failed_trial_keeps_one_alert_open(sandbox, settings, store):
    clock = Clock(datetime(2026, 12, 1, 9, 0))
    breaker = CircuitBreaker("linear", settings.state_dir / "circuits", 2, settings.circuit_open_s, clock=clock.epoch)
    linear = HttpClient("linear", max_retries=5, backoff_s=0.001, sleep=lambda _: None, breaker=breaker)
    watch = monitor(store, settings, "circuit_open", clock)
    sandbox.set_faults([{"match": "/linear", "kind": "down"}])
    try:
        with pytest.raises(CircuitOpen):
            linear.get(f"{sandbox.url}/linear/graphql")
        watch.evaluate(all_rules()["circuit_open"])
        clock.advance(61)
        with pytest.raises(CircuitOpen):
            linear.get(f"{sandbox.url}/linear/graphql")  # the trial fails: open again
        [again] = watch.evaluate(all_rules()["circuit_open"])
        assert again.transition == "updated"
        assert "after 3 consecutive failures" in again.alert.message and "calls fail fast" in again.alert.message
        assert len(store.list(rule="circuit_open")) == 1
    finally:
        linear.close()
        sandbox.clear_faults()


# ---- Charlie -------------------------------------------------------------------------------------

INSTANCES = [
    {"id": "charlie-alpha", "name": "Charlie Alpha", "type": "production", "status": "active", "version": "3.4.1"},
    {"id": "charlie-gamma", "name": "Charlie Gamma", "type": "staging", "status": "idle", "version": "3.5.0"},
]


def health(instance: str, status: str, at: datetime, queue: int = 2) -> dict:
    return {"instance_id": instance, "status": status, "checked_at": iso(at), "uptime_seconds": 3600,
            "queue_depth": queue, "version": "3.4.1"}


def activity(event_id: str, instance: str, kind: str, at: datetime, message: str, **extra) -> dict:
    return {"id": event_id, "instance_id": instance, "type": kind, "timestamp": iso(at), "message": message, **extra}


def registry(settings: Settings, day: datetime) -> None:
    """The instance registry: a snapshot with no time of its own, landed in the day's partition."""
    table = RAW_TABLES["charlie", "instances"]
    rows = [{**table.flatten(i), "_raw": raw_json(i)} for i in INSTANCES]
    Lake(settings.lake_dir).write(("raw", "charlie", "instances"), day.date(), rows, raw_schema(table), day)


def test_an_unhealthy_instance_alerts_by_its_status_and_resolves_when_healthy(settings, store):
    t = datetime(2026, 12, 1, 9, 0)
    clock = Clock(t)
    registry(settings, t)
    watch = monitor(store, settings, "charlie_unhealthy", clock)
    land(settings, "charlie", "health", [health("charlie-alpha", "healthy", t), health("charlie-gamma", "healthy", t)])
    assert watch.run_due() == []

    land(settings, "charlie", "health", [health("charlie-alpha", "degraded", clock.advance(30), queue=41),
                                         health("charlie-gamma", "offline", clock.now, queue=0)])
    watch.run_due()
    alerts = live(store, "charlie_unhealthy")
    assert alerts["instance:charlie-alpha"] == (
        "warning", "Charlie Alpha (production) is degraded: health check at 09:00 UTC, queue depth 41, version 3.4.1")
    # A staging instance's trouble is one level lower: offline warns rather than pages.
    assert alerts["instance:charlie-gamma"][0] == "warning"
    assert alerts["instance:charlie-gamma"][1].startswith("Charlie Gamma (staging) is offline")

    land(settings, "charlie", "health", [health("charlie-alpha", "offline", clock.advance(30)),
                                         health("charlie-gamma", "offline", clock.now)])
    assert [(c.transition, c.alert.severity) for c in watch.run_due() if c.alert.subject.endswith("alpha")] == [
        ("escalated", "critical")]

    land(settings, "charlie", "health", [health("charlie-alpha", "healthy", clock.advance(30)),
                                         health("charlie-gamma", "healthy", clock.now)])
    assert {c.transition for c in watch.run_due()} == {"resolved"}
    assert live(store, "charlie_unhealthy") == {}
    assert resolved(store, "charlie_unhealthy") == {"instance:charlie-alpha", "instance:charlie-gamma"}


def test_an_instance_silent_past_the_threshold_alerts_and_a_pushed_heartbeat_resolves_it(settings, store):
    t = datetime(2026, 12, 1, 9, 0)
    clock = Clock(t)
    registry(settings, t)
    watch = monitor(store, settings, "charlie_silent", clock)
    land(settings, "charlie", "health", [health("charlie-alpha", "healthy", t), health("charlie-gamma", "healthy", t)])
    land(settings, "charlie", "activity", [activity("a1", "charlie-gamma", "heartbeat", t + timedelta(seconds=150),
                                                    "heartbeat ok, queue depth 1")])
    clock.advance(110)
    assert watch.run_due() == []  # 110 s since alpha's check: within the 120 s threshold

    clock.advance(90)  # 200 s since alpha's health check, 50 s since gamma's heartbeat
    watch.run_due()
    assert live(store, "charlie_silent") == {"instance:charlie-alpha": (
        "warning", "Charlie Alpha (production) is silent: no health check or activity for 3 min (last: health "
                   "check at 09:00 UTC); expected at least every 2 min")}

    # Alpha's heartbeat came by webhook: raw/webhooks/charlie__activity is read with the polled table.
    land(settings, "charlie", "activity", [activity("a2", "charlie-alpha", "heartbeat", clock.now,
                                                    "heartbeat ok, queue depth 0")], delivered=True)
    clock.advance(30)
    assert [(c.transition, c.alert.subject) for c in watch.run_due()] == [("resolved", "instance:charlie-alpha")]


def test_failed_tasks_in_the_last_hour_alert_with_the_latest_reason_and_resolve_when_the_hour_is_clean(
        settings, store):
    t = datetime(2026, 12, 1, 9, 0)
    clock = Clock(t)
    registry(settings, t)
    watch = monitor(store, settings, "charlie_task_failed", clock)
    old = activity("f0", "charlie-alpha", "task.failed", t - timedelta(hours=2), "Stopped work on ENG-1",
                   issue_key="ENG-1")
    first = activity("f1", "charlie-alpha", "task.failed", t - timedelta(minutes=40), "Dependency audit failed: "
                     "registry timed out", correlation_id="run-0a1b2c3d")
    latest = activity("f2", "charlie-alpha", "task.failed", t - timedelta(minutes=5), "ENG-12 was closed without "
                      "merging", issue_key="ENG-12")
    land(settings, "charlie", "activity", [old, first, latest,
                                           activity("c1", "charlie-gamma", "task.completed", t, "done")])
    land(settings, "charlie", "activity", [latest], delivered=True)  # the same event pushed: counted once
    [opened] = watch.run_due()
    assert opened.transition == "opened" and opened.alert.subject == "instance:charlie-alpha"
    assert opened.alert.message == ("Charlie Alpha (production): 2 failed tasks in the last 60 min; latest at "
                                    "08:55 UTC: ENG-12 was closed without merging")
    assert opened.alert.links["workflow"] == "/api/events?workflow=linear:ENG-12"

    clock.advance(36 * 60)  # the 08:20 failure is out of the window, 08:55's still in
    watch.run_due()
    assert "1 failed task in the last 60 min" in live(store, "charlie_task_failed")["instance:charlie-alpha"][1]
    clock.advance(25 * 60)
    assert [c.transition for c in watch.run_due()] == ["resolved"]


# ---- cron ----------------------------------------------------------------------------------------

def cron_run(job: str, host: str, at: datetime, outcome: str = "succeeded", seq: int = 0, code: int = 0,
             message: str = "ok", took_s: int = 20) -> list[dict]:
    """A run's events as the runner's API gives them: started, then succeeded or failed."""
    run_id = f"r-{job}-{at:%Y%m%d%H%M}"
    return [{"seq": seq, "id": f"{run_id}-s", "job": job, "host": host, "event": "started", "run_id": run_id,
             "at": iso(at)},
            {"seq": seq + 1, "id": f"{run_id}-e", "job": job, "host": host, "event": outcome, "run_id": run_id,
             "at": iso(at + timedelta(seconds=took_s)), "duration_ms": took_s * 1000,
             "exit_code": code if outcome == "failed" else 0, "message": message}]


def every(job: str, host: str, start: datetime, minutes: int, count: int, seq: int = 1) -> list[dict]:
    return [e for n in range(count) for e in cron_run(job, host, start + timedelta(minutes=minutes * n),
                                                      seq=seq + 2 * n)]


def test_a_failed_run_alerts_escalates_in_a_row_and_a_later_success_resolves(settings, store):
    t = datetime(2026, 12, 1, 9, 0)
    land(settings, "cron", "events", every("invoice-sync", "worker-01", t - timedelta(hours=2), 30, 4))
    clock = Clock(t - timedelta(minutes=1))
    watch = monitor(store, settings, "cron_failed", clock)
    assert watch.run_due() == []

    failure = {"code": 1, "message": "billing API returned 502 Bad Gateway"}
    land(settings, "cron", "events", cron_run("invoice-sync", "worker-01", t, "failed", seq=100, **failure))
    clock.now = t + timedelta(minutes=1)
    [opened] = watch.run_due()
    assert (opened.transition, opened.alert.severity, opened.alert.subject) == ("opened", "warning", "job:invoice-sync")
    assert opened.alert.message == ("invoice-sync failed on worker-01 at 09:00 UTC: exit 1, billing API returned "
                                    "502 Bad Gateway (last success 08:30 UTC)")

    for n, half_hours in enumerate((1, 2), 1):  # pushed by the runner: the delivered table counts too
        land(settings, "cron", "events", cron_run("invoice-sync", "worker-01", t + timedelta(minutes=30 * half_hours),
                                                  "failed", seq=100 + 2 * n, **failure), delivered=True)
    clock.now = t + timedelta(minutes=61)
    [escalated] = watch.run_due()
    assert escalated.transition == "escalated" and escalated.alert.severity == "critical"
    assert "(3 failed runs in a row since 09:00 UTC; last success 08:30 UTC)" in escalated.alert.message

    land(settings, "cron", "events", cron_run("invoice-sync", "worker-01", t + timedelta(minutes=90), seq=200))
    clock.now = t + timedelta(minutes=91)
    [closed] = watch.run_due()
    assert closed.transition == "resolved" and resolved(store, "cron_failed") == {"job:invoice-sync"}


def test_a_job_that_misses_its_runs_is_late_and_a_run_resolves_it(settings, store):
    t = datetime(2026, 12, 1, 9, 0)
    # Every 5 min from 06:00 to 09:00: 36 gaps, the last run at 09:00.
    land(settings, "cron", "events", every("session-reaper", "app-01", t - timedelta(hours=3), 5, 37))
    clock = Clock(t + timedelta(minutes=9))  # one run missed, within the 5 min grace
    watch = monitor(store, settings, "cron_late", clock)
    assert watch.run_due() == []

    clock.advance(2 * 60)  # 11 min without a run: 5 min schedule + 5 min grace passed
    [late] = watch.run_due()
    assert (late.transition, late.alert.subject) == ("opened", "job:session-reaper")
    assert late.alert.message == ("session-reaper on app-01 is late: no run since 09:00 UTC (11 min ago); it usually "
                                  "runs at least every 5 min (95% of the 36 gaps between its runs), grace 5 min")

    land(settings, "cron", "events", cron_run("session-reaper", "app-01", clock.now, seq=500))
    clock.advance(60)
    assert [c.transition for c in watch.run_due()] == ["resolved"]


def test_a_weekday_job_is_not_late_over_the_weekend_but_is_when_monday_is_missed(settings, store):
    monday = datetime(2026, 11, 23, 6, 0)  # runs at 06:00 Monday to Friday, for two weeks
    days = [monday - timedelta(days=14) + timedelta(days=n) for n in range(14)]
    land(settings, "cron", "events", [e for n, day in enumerate(d for d in days if d.weekday() < 5)
                                      for e in cron_run("stale-branch-cleanup", "ci-01", day, seq=1 + 2 * n)])
    clock = Clock(datetime(2026, 11, 22, 12, 0))  # Sunday noon: no run since Friday 06:00, as usual
    watch = monitor(store, settings, "cron_late", clock)
    assert watch.run_due() == []
    clock.now = datetime(2026, 11, 23, 6, 4)  # Monday, 06:04: not there yet, within the grace
    assert watch.run_due() == []
    clock.now = datetime(2026, 11, 23, 6, 10)  # Monday's run is missing
    [late] = watch.run_due()
    assert late.alert.message == ("stale-branch-cleanup on ci-01 is late: no run since Nov 20 06:00 UTC (3 d 0 h ago); "
                                  "it usually runs at least every 3 d 0 h (95% of the 9 gaps between its runs), "
                                  "grace 5 min")


# ---- hosts ---------------------------------------------------------------------------------------

def metrics(host: str, at: datetime, cpu: float = 20.0, memory: float = 40.0, disk: float = 50.0) -> dict:
    """A sample in the metrics agent's shape (resources/ingest/metrics_agent.sample)."""
    return {"id": f"{host}:{at.isoformat()}", "host": host, "sampled_at": at.isoformat(), "cpu_percent": cpu,
            "cpu_count": 8, "load_1m": 1.0, "load_5m": 1.0, "load_15m": 1.0, "memory_total_bytes": 16 << 30,
            "memory_used_bytes": int((16 << 30) * memory / 100), "memory_percent": memory,
            "disk_total_bytes": 500 << 30, "disk_used_bytes": int((500 << 30) * disk / 100), "disk_percent": disk,
            "net_bytes_sent": 0, "net_bytes_recv": 0, "process_count": 300}


@pytest.mark.parametrize(("rule", "column", "what"), [("host_cpu", "cpu", "CPU"), ("host_memory", "memory", "memory"),
                                                      ("host_disk", "disk", "disk")])
def test_a_host_over_the_threshold_for_five_minutes_alerts_from_landed_and_live_samples(
        settings, store, rule, column, what):
    t = datetime(2026, 12, 1, 9, 0)
    # Every sample is in the landing log, where the sidecar or the agent put it as it came; a build
    # landed those up to 09:00 in raw/system/metrics. web-1 is over 90% from 08:58:30 on.
    samples = []
    for s in range(-600, 241, 30):
        at = t + timedelta(seconds=s)
        web1 = 40.0 if s < -90 else 99.1 if s == 240 else 97.5
        web2 = 97.0 if s >= 150 else 60.0
        samples.append([metrics("web-1", at, **{column: web1}), metrics("web-2", at, **{column: web2})])
        LandingLog(settings.landing_dir).append(METRICS_STREAM, samples[-1], at)
    land(settings, "system", "metrics", [m for pair in samples for m in pair if m["sampled_at"] <= t.isoformat()])
    clock = Clock(t + timedelta(seconds=180))
    watch = monitor(store, settings, rule, clock)
    assert watch.run_due() == []  # over 90% for 4 min 30 s: not yet
    clock.now = t + timedelta(seconds=241)
    [opened] = watch.run_due()
    assert (opened.transition, opened.alert.subject, opened.alert.severity) == ("opened", "host:web-1", "warning")
    assert opened.alert.message == f"web-1 {what} at 99.1%, over 90% for 6 min (12 samples, peak 99.1%)"

    LandingLog(settings.landing_dir).append(METRICS_STREAM, [metrics("web-1", t + timedelta(seconds=270),
                                                                     **{column: 35.0})], t + timedelta(seconds=270))
    clock.now = t + timedelta(seconds=275)
    assert [c.transition for c in watch.run_due()] == ["resolved"]
    assert resolved(store, rule) == {"host:web-1"} and live(store, rule) == {}


def test_a_threshold_override_and_a_host_that_stops_reporting(tmp_path):
    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data"),
                                  "CC_ALERT_THRESHOLDS": '{"host_cpu.percent": 99, "host_cpu.duration_s": 60}'})
    store = alert_store(settings)
    t = datetime(2026, 12, 1, 9, 0)
    landing = LandingLog(settings.landing_dir)
    for s in range(0, 121, 30):
        landing.append(METRICS_STREAM, [metrics("db-1", t + timedelta(seconds=s), cpu=97.5),
                                        metrics("db-2", t + timedelta(seconds=s), cpu=99.5)], t + timedelta(seconds=s))
    clock = Clock(t + timedelta(seconds=125))
    watch = monitor(store, settings, "host_cpu", clock)
    try:
        watch.run_due()
        assert set(live(store, "host_cpu")) == {"host:db-2"}  # 97.5% is under the 99% override
        clock.advance(600)  # no sample for 10 min: not judged, the alert stays open
        assert watch.run_due() == [] and set(live(store, "host_cpu")) == {"host:db-2"}
    finally:
        store.close()


# ---- a sandbox world, landed by the real raw assets -------------------------------------------------

def test_a_landed_sandbox_world_raises_what_its_apis_show(sandbox, tmp_path):
    data_dir = tmp_path / "data"
    platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url)
    keys = {("raw", "charlie", "instances"), ("raw", "charlie", "health"), ("raw", "charlie", "activity"),
            ("raw", "cron", "events")}
    days = {"dagster/asset_partition_range_start": (END - timedelta(days=7)).date().isoformat(),
            "dagster/asset_partition_range_end": END.date().isoformat()}
    assert materialize([a for a in raw_assets if tuple(a.key.path) in keys], resources={"platform": platform},
                       instance=DagsterInstance.ephemeral(), tags=days).success
    with requests.Session() as http:
        statuses = {i["id"]: http.get(f"{sandbox.charlie_url}/instances/{i['id']}/health").json()["status"]
                    for i in http.get(f"{sandbox.charlie_url}/instances").json()["instances"]}
        events, page = [], {"has_more": True, "last_seq": 0}
        while page["has_more"]:
            page = http.get(f"{sandbox.cron_url}/v1/events", params={"after": page["last_seq"], "limit": 1000}).json()
            events += page["events"]
    finishes = {e["job"]: e["event"] for e in events if e["event"] != "started"}  # by seq: the last one wins
    unhealthy = {f"instance:{i}" for i, status in statuses.items() if status != "healthy"}
    failing = {f"job:{job}" for job, outcome in finishes.items() if outcome == "failed"}
    assert unhealthy and failing, "the world has nothing to find"

    settings = Settings.from_env({"CC_DATA_DIR": str(data_dir)})
    store = alert_store(settings)
    try:
        Monitor(store, settings, rules=RULES, clock=Clock(END + timedelta(minutes=1))).run_due()
        assert set(live(store, "charlie_unhealthy")) == unhealthy
        assert set(live(store, "cron_failed")) == failing
        assert live(store, "charlie_silent") == {} and live(store, "cron_late") == {}
        assert store.list(rule="monitor_rule_failed") == []
    finally:
        store.close()
