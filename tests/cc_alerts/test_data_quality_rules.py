"""The data-quality rules over real lake files, a real landing log and a real sidecar: each rule
firing and resolving as time moves (a clock of our own), and the seeds' cadences met: stale data
seen within 30 s of crossing its threshold, missing points within a minute, duplicates within 5."""

from __future__ import annotations

import json
import os
from copy import deepcopy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests

from cc_alerts.facts import Facts
from cc_alerts.model import Action
from cc_alerts.monitor import Monitor
from cc_alerts.rules import RuleContext, deliveries
from cc_alerts.rules import data_quality as dq
from cc_alerts.store import AlertStore
from cc_events.context import NormalizeContext
from cc_events.raw_tables import raw_json
from cc_events.registry import RAW_TABLES, normalize
from resources.http.circuit import CircuitBreaker
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.settings import Settings
from resources.storage.lake import EVENTS_SCHEMA, DeadLetter, Lake, raw_schema
from resources.storage.landing import LandingLog

T0 = datetime(2026, 3, 2, 12, 0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data")})


def land(settings, source: str, entity: str, day: date, records: list[dict], ingested_at: datetime,
         extra: dict | None = None) -> None:
    """Records landed as the raw asset lands them: flattened by their table, `_raw` kept."""
    table = RAW_TABLES[source, entity]
    rows = [{**table.flatten(r, extra), "_raw": raw_json(r)} for r in records]
    Lake(settings.lake_dir).write(("raw", source, entity), day, rows, raw_schema(table), ingested_at)


def evaluate(rule, settings, now: datetime, facts: Facts | None = None, **overrides):
    ctx = RuleContext(settings, now, facts or Facts(), {f"{rule.name}.{k}": v for k, v in overrides.items()})
    try:
        return {f.subject: f for f in rule.evaluate(ctx).findings}
    finally:
        ctx.close()


def first_opened(rule, settings, start: datetime, seconds: int, facts: Facts | None = None,
                 tmp: Path | None = None, each_second=None) -> datetime | None:
    """Run the monitor as the sidecar does, its clock stepping 1 s (`each_second(now)` first: what
    happens in that second); when the first alert opened."""
    store = AlertStore((tmp or Path(settings.data_dir)) / "cadence.sqlite3")
    clock = {"now": start}
    monitor = Monitor(store, settings, facts or Facts(), rules=[rule], clock=lambda: clock["now"])
    try:
        for step in range(seconds):
            clock["now"] = start + timedelta(seconds=step)
            if each_second is not None:
                each_second(clock["now"])
            if any(c.transition == "opened" for c in monitor.run_due()):
                return clock["now"]
        return None
    finally:
        store.close()


def pull_request(number: int, at: datetime) -> dict:
    stamp = at.isoformat() + "Z"
    return {"id": 1000 + number, "number": number, "title": f"Change {number}", "state": "open",
            "user": {"login": "ann", "type": "User"}, "head": {"ref": f"feature-{number}", "sha": "abc"},
            "created_at": stamp, "updated_at": stamp, "closed_at": None, "merged_at": None,
            "html_url": f"https://github.com/acme/api/pull/{number}"}


def cron_record(n: int, at: datetime) -> dict:
    return {"seq": n, "id": f"ev-{n}", "job": "backup", "host": "db-1", "event": "started", "run_id": f"run-{n}",
            "at": at.isoformat()}


def land_events(settings, day: date, records: list[dict], ingested_at: datetime) -> None:
    """normalized/events as the normalized asset writes it: each record through the one normalizer."""
    rows = [e.to_row() for r in records for e in normalize("cron", "events", r, NormalizeContext())]
    Lake(settings.lake_dir).write(("normalized", "events"), day, rows, EVENTS_SCHEMA, ingested_at)


# --- stale data -----------------------------------------------------------------------------------

def test_stale_source_fires_past_its_cadence_with_a_refresh_and_resolves_on_new_data(settings, tmp_path):
    land(settings, "github", "pull_requests", T0.date(), [pull_request(1, T0)], T0, {"repo": "acme/api"})
    land(settings, "weather", "opportunities", T0.date(),
         [{"id": "w1", "detected_at": T0.isoformat(), "updated_at": T0.isoformat()}], T0)
    assert evaluate(dq.STALE_DATA, settings, T0 + timedelta(seconds=299)) == {}

    found = evaluate(dq.STALE_DATA, settings, T0 + timedelta(seconds=301))
    assert list(found) == ["source:github"]  # weather polls every 2 hours: not stale yet
    assert found["source:github"].action == Action("refresh", "github")
    assert "no new data for 5 min" in found["source:github"].message

    later = T0 + timedelta(hours=2, minutes=16)
    assert set(evaluate(dq.STALE_DATA, settings, later)) == {"source:github", "source:weather"}
    assert set(evaluate(dq.STALE_DATA, settings, later, weather_s=3 * 3600)) == {"source:github"}

    # Through the store: a webhook delivered live (the sidecar's facts) resolves it.
    store = AlertStore(tmp_path / "alerts.sqlite3")
    facts = Facts()
    monitor = Monitor(store, settings, facts, rules=[dq.STALE_DATA])
    opened = monitor.evaluate(dq.STALE_DATA, T0 + timedelta(seconds=400))
    assert [(c.transition, c.alert.subject) for c in opened] == [("opened", "source:github")]
    assert [(a.kind, a.source) for a in store.actions()] == [("refresh", "github")]
    facts.received("github", T0 + timedelta(seconds=410))
    resolved = monitor.evaluate(dq.STALE_DATA, T0 + timedelta(seconds=420))
    assert [(c.transition, c.alert.subject) for c in resolved] == [("resolved", "source:github")]
    store.close()


def test_a_source_that_answers_with_nothing_new_is_not_stale(settings):
    land(settings, "github", "pull_requests", T0.date(), [pull_request(1, T0)], T0, {"repo": "acme/api"})
    answered = T0 + timedelta(minutes=30)
    breaker = CircuitBreaker("github", settings.state_dir / "circuits",
                             clock=lambda: answered.replace(tzinfo=UTC).timestamp())
    breaker.record_success()  # the change probe: 304, nothing new to land
    assert evaluate(dq.STALE_DATA, settings, answered + timedelta(seconds=200)) == {}
    assert "source:github" in evaluate(dq.STALE_DATA, settings, answered + timedelta(seconds=301))


def test_webhooks_and_sources_that_never_landed_are_not_stale(settings):
    long_ago = T0 - timedelta(days=1)
    delivery = {"id": "d1", "source": "github", "delivery_id": "d1", "event": "ping",
                "_received_at": long_ago.isoformat()}
    land(settings, "webhooks", "deliveries", long_ago.date(), [delivery], long_ago)
    land(settings, "postgres_cdc", "changes", T0.date(), [], long_ago)  # the job ran, never found a row
    assert evaluate(dq.STALE_DATA, settings, T0) == {}


def test_a_quiet_log_is_current_and_a_log_the_lake_missed_goes_stale(settings):
    """The logs sensor lands only files that grew: a log nobody wrote to is as current as the lake."""
    logs = Path(settings.data_dir) / "logs"
    logs.mkdir(parents=True)
    app_log = logs / "app.log"
    app_log.write_text("started\n")
    written = (T0 - timedelta(minutes=1)).replace(tzinfo=UTC).timestamp()
    os.utime(app_log, (written, written))
    line = {"id": "log-1", "path": str(app_log), "inode": app_log.stat().st_ino, "offset": 0, "line_no": 1,
            "received_at": T0.isoformat(), "format": "plain", "message": "started", "raw": "started"}
    land(settings, "logs", "lines", T0.date(), [line], T0)
    hour_later = T0 + timedelta(hours=1)
    assert evaluate(dq.STALE_DATA, settings, hour_later) == {}  # nothing written since: current

    written = (hour_later + timedelta(seconds=5)).replace(tzinfo=UTC).timestamp()
    os.utime(app_log, (written, written))  # a line after a quiet hour, not landed yet
    assert evaluate(dq.STALE_DATA, settings, hour_later + timedelta(seconds=10)) == {}  # behind since now
    assert evaluate(dq.STALE_DATA, settings, hour_later + timedelta(seconds=300)) == {}
    found = evaluate(dq.STALE_DATA, settings, hour_later + timedelta(seconds=311))
    assert list(found) == ["source:logs"] and found["source:logs"].action == Action("refresh", "logs")


def test_stale_is_seen_within_30_s_of_crossing_the_threshold(settings, tmp_path):
    land(settings, "github", "pull_requests", T0.date(), [pull_request(1, T0)], T0, {"repo": "acme/api"})
    start = T0 + timedelta(seconds=17)  # the monitor's rounds are not aligned with the data
    opened = first_opened(dq.STALE_DATA, settings, start, 600, tmp=tmp_path)
    crossed = T0 + timedelta(seconds=300)
    assert opened is not None and timedelta(0) < opened - crossed <= timedelta(seconds=30)
    print(f"\nstale data: threshold crossed at +300 s, alert opened at +{(opened - T0).seconds} s")


# --- missing data points --------------------------------------------------------------------------

def sample(host: str, at: datetime) -> dict:
    return {"id": f"{host}-{at:%H%M%S}", "host": host, "sampled_at": at.isoformat(), "cpu_percent": 12.5}


def land_metrics(settings, samples: list[dict], in_lake: bool = True) -> None:
    """Samples as the agent lands them (the landing log), and as raw/system/metrics lands them."""
    log = LandingLog(settings.landing_dir)
    for s in samples:
        log.append(METRICS_STREAM, [s], datetime.fromisoformat(s["sampled_at"]))
    if in_lake:
        by_day: dict[date, list[dict]] = {}
        for s in samples:
            by_day.setdefault(datetime.fromisoformat(s["sampled_at"]).date(), []).append(s)
        for day, day_samples in by_day.items():
            land(settings, "system", "metrics", day, day_samples, T0)


def test_host_gaps_and_silence_fire_and_resolve(settings):
    steady = [sample("web-1", T0 - timedelta(seconds=30 * n)) for n in range(120)]
    gappy = [sample("web-2", T0 - timedelta(seconds=30 * n)) for n in range(120) if not 40 <= n < 50]
    land_metrics(settings, steady + gappy)

    found = evaluate(dq.MISSING_POINTS, settings, T0 + timedelta(seconds=10))
    assert list(found) == ["host:web-2"]
    assert "1 gap(s)" in found["host:web-2"].message and "5 min 30 s" in found["host:web-2"].message
    assert found["host:web-2"].action is None  # the agent never sent them: nothing to land again

    silent = evaluate(dq.MISSING_POINTS, settings, T0 + timedelta(seconds=61))
    assert set(silent) == {"host:web-1", "host:web-2"}
    assert "has sent no metrics for 61 s" in silent["host:web-1"].message

    # An hour on, with samples again, the gap has left the window: resolved.
    back = T0 + timedelta(hours=1, minutes=30)
    land_metrics(settings, [sample(h, back - timedelta(seconds=30 * n)) for h in ("web-1", "web-2") for n in range(120)])
    assert evaluate(dq.MISSING_POINTS, settings, back + timedelta(seconds=5)) == {}


def test_samples_sent_but_not_in_the_lake_ask_for_a_backfill(settings, tmp_path):
    landed = [sample("web-1", T0 - timedelta(seconds=30 * n)) for n in range(20, 120)]
    missed = [sample("web-1", T0 - timedelta(seconds=30 * n)) for n in range(20)]
    land_metrics(settings, landed)
    land_metrics(settings, missed, in_lake=False)  # in the landing log; the lake's landing failed
    found = evaluate(dq.MISSING_POINTS, settings, T0 + timedelta(seconds=20))
    assert found["host:web-1"].action == Action("backfill", "system", T0.date().isoformat(), T0.date().isoformat())
    assert "sample(s) it sent" in found["host:web-1"].message and "in the landing log but not in the lake" in \
        found["host:web-1"].message
    store = AlertStore(tmp_path / "alerts.sqlite3")
    Monitor(store, settings, rules=[dq.MISSING_POINTS]).evaluate(dq.MISSING_POINTS, T0 + timedelta(seconds=20))
    assert [(a.kind, a.source, a.start, a.end) for a in store.actions()] == [
        ("backfill", "system", T0.date().isoformat(), T0.date().isoformat())]
    store.close()


def test_a_charlie_instance_without_health_samples_fires(settings):
    instances = [{"id": "charlie-alpha", "status": "active"}, {"id": "charlie-beta", "status": "active"}]
    land(settings, "charlie", "instances", T0.date(), instances, T0)
    table = RAW_TABLES["charlie", "health"]
    rows = [{**table.flatten(h), "_raw": raw_json(h), "_ingested_at": at} for h, at in [
        ({"instance_id": "charlie-alpha", "status": "healthy", "checked_at": T0.isoformat()}, T0),
        ({"instance_id": "charlie-beta", "status": "healthy", "checked_at": T0.isoformat()}, T0 - timedelta(minutes=5)),
    ]]
    Lake(settings.lake_dir).write(("raw", "charlie", "health"), T0.date(), rows, raw_schema(table), T0)
    found = evaluate(dq.MISSING_POINTS, settings, T0 + timedelta(seconds=30))
    assert list(found) == ["instance:charlie-beta"]
    assert "no health sample landed" in found["instance:charlie-beta"].message
    rows[1]["_ingested_at"] = T0 + timedelta(seconds=30)
    Lake(settings.lake_dir).write(("raw", "charlie", "health"), T0.date(), rows, raw_schema(table), T0)
    assert evaluate(dq.MISSING_POINTS, settings, T0 + timedelta(seconds=40)) == {}


def test_an_hour_far_below_the_usual_volume_asks_for_a_backfill(settings):
    now = T0 + timedelta(minutes=15)  # judges 11:00-12:00 against the 24 hours before
    records, n = [], 0
    for hour in range(1, 26):
        start = T0 - timedelta(hours=hour)
        per_hour = 2 if hour == 1 else 30
        for k in range(per_hour):
            n += 1
            records.append(cron_record(n, start + timedelta(minutes=2 * k)))
    by_day: dict[date, list[dict]] = {}
    for r in records:
        by_day.setdefault(datetime.fromisoformat(r["at"]).date(), []).append(r)
    for day, day_records in by_day.items():
        land_events(settings, day, day_records, T0)
    found = evaluate(dq.MISSING_POINTS, settings, now)
    assert list(found) == ["source:cron"]
    assert "2 event(s) between 11:00 and 12:00 UTC, against a usual 30 per hour" in found["source:cron"].message
    assert found["source:cron"].action == Action("backfill", "cron", "2026-03-02", "2026-03-02")
    # The same hour a day earlier was as quiet: that is this source's night, not a loss.
    assert evaluate(dq.MISSING_POINTS, settings, now, volume_ratio=0.01) == {}
    assert evaluate(dq.MISSING_POINTS, settings, now, volume_min_median=50) == {}


def test_missing_points_are_seen_within_a_minute(settings, tmp_path):
    land_metrics(settings, [sample("web-1", T0 - timedelta(seconds=30 * n)) for n in range(120)])
    start = T0 + timedelta(seconds=1)
    opened = first_opened(dq.MISSING_POINTS, settings, start, 300, tmp=tmp_path)
    gone = T0 + timedelta(seconds=60)  # two 30 s samples missed
    assert opened is not None and timedelta(0) < opened - gone <= timedelta(seconds=60)
    print(f"\nmissing points: series silent past +60 s, alert opened at +{(opened - T0).seconds} s")


# --- schema validation ----------------------------------------------------------------------------

def test_dead_letters_in_the_last_minute_fire_with_reasons_then_resolve(settings, tmp_path):
    lake = Lake(settings.lake_dir)
    bad = [DeadLetter("github", "pull_requests", "missing required field number", f'{{"id": {i}}}') for i in range(3)]
    lake.write_dead_letters("github", "pull_requests", T0.date(), bad, T0)
    lake.write_dead_letters("normalized", "linear__issues", T0.date(),
                            [DeadLetter("linear", "issues", "created_at: not a time", "{}")], T0)
    found = evaluate(deliveries.SCHEMA_VALIDATION, settings, T0 + timedelta(seconds=10))
    assert set(found) == {"source:github", "source:linear"}
    assert "3 record(s)" in found["source:github"].message
    assert "missing required field number (3)" in found["source:github"].message
    assert found["source:github"].count == 3
    assert "source:github" not in evaluate(deliveries.SCHEMA_VALIDATION, settings, T0 + timedelta(seconds=10), per_minute=5)

    # The next run refuses the same records again: they were dropped once, at T0.
    lake.write_dead_letters("github", "pull_requests", T0.date(), bad, T0 + timedelta(seconds=45))
    assert evaluate(deliveries.SCHEMA_VALIDATION, settings, T0 + timedelta(seconds=61)) == {}


def test_live_dead_letters_count_with_the_lake(settings):
    facts = Facts()
    for k in range(2):
        facts.dead_letter("linear", "payload has no `data` object", T0 + timedelta(seconds=k))
    found = evaluate(deliveries.SCHEMA_VALIDATION, settings, T0 + timedelta(seconds=5), facts)
    assert "2 record(s) dropped" in found["source:linear"].message
    assert evaluate(deliveries.SCHEMA_VALIDATION, settings, T0 + timedelta(seconds=70), facts) == {}


# --- a real sidecar: deliveries refused and deliveries missing ------------------------------------

@pytest.fixture
def sidecar(tmp_path):
    from scripts.chaos.harness import SECRETS, Sidecar

    server = Sidecar(tmp_path / "data", dict(SECRETS)).start()
    yield server
    server.stop()


def deliver(sidecar, event: str, payload: dict) -> dict:
    from scripts.chaos.harness import github_headers

    body = json.dumps(payload).encode()
    response = requests.post(f"{sidecar.url}/webhooks/github", data=body, headers=github_headers(body, event),
                             timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_a_delivery_the_sidecar_refused_is_a_dead_letter_of_its_source(sidecar, settings):
    answer = deliver(sidecar, "pull_request", {"action": "opened", "repository": {"full_name": "acme/api"}})
    assert answer["status"] == "dead_letter"
    now = utcnow()
    found = evaluate(deliveries.SCHEMA_VALIDATION, settings, now)
    assert "source:github" in found and answer["reason"][:60] in found["source:github"].message
    assert evaluate(deliveries.SCHEMA_VALIDATION, settings, now + timedelta(seconds=61)) == {}


def test_events_only_the_poll_brought_mean_missed_webhooks(sidecar, settings, github_fixtures):
    template = json.loads((github_fixtures / "pull_request" / "opened.payload.json").read_text())
    repo = template["repository"]["full_name"].lower()  # as the sidecar keys it, and the polled config names it
    opened_at = utcnow().replace(microsecond=0) - timedelta(minutes=20)

    def pr_payload(number: int) -> dict:
        payload = deepcopy(template)
        stamp = opened_at.isoformat() + "Z"
        payload["number"] = number
        payload["pull_request"].update(id=5000 + number, number=number, created_at=stamp, updated_at=stamp)
        return payload

    # The poll landed #1 and #2 (the polled table holds the very PR objects GitHub sends).
    polled = [pr_payload(n)["pull_request"] for n in (1, 2)]
    land(settings, "github", "pull_requests", opened_at.date(), polled, opened_at + timedelta(minutes=1),
         {"repo": repo})
    # No webhook from GitHub at all yet: it is not configured to push, the poll is all there is.
    assert evaluate(deliveries.MISSED_WEBHOOKS, settings, utcnow()) == {}

    assert deliver(sidecar, "pull_request", pr_payload(1))["events"] == [f"github:pr:{repo}#1:opened"]
    found = evaluate(deliveries.MISSED_WEBHOOKS, settings, utcnow())
    assert list(found) == ["source:github"]
    assert "1 event(s)" in found["source:github"].message and f"github:pr:{repo}#2:opened" in \
        found["source:github"].message
    assert "push channel is losing deliveries" in found["source:github"].message
    # Within the grace period an event is not judged yet.
    assert evaluate(deliveries.MISSED_WEBHOOKS, settings, utcnow(), grace_s=30 * 60) == {}

    deliver(sidecar, "pull_request", pr_payload(2))  # late, but delivered after all
    assert evaluate(deliveries.MISSED_WEBHOOKS, settings, utcnow()) == {}


# --- duplicates -----------------------------------------------------------------------------------

def test_redeliveries_and_lake_copies_above_the_threshold_fire_then_resolve(settings):
    facts = Facts()
    for k in range(6):
        facts.duplicate("github", T0 - timedelta(seconds=10 * k))
    recent = [cron_record(n, T0 - timedelta(seconds=20 * n)) for n in range(1, 6)]
    land_events(settings, T0.date(), recent, T0)
    land_events(settings, T0.date() - timedelta(days=1), recent, T0)  # the same events in two partitions
    found = evaluate(dq.DUPLICATES, settings, T0, facts, count=5)
    assert set(found) == {"source:github", "source:cron"}
    assert "6 redelivered webhook(s)" in found["source:github"].message
    assert "5 extra copies of events" in found["source:cron"].message and found["source:cron"].count == 5
    assert evaluate(dq.DUPLICATES, settings, T0, facts) == {}  # the default threshold: 10
    assert evaluate(dq.DUPLICATES, settings, T0 + timedelta(minutes=6), facts, count=5) == {}


def test_a_failing_unique_test_fires_until_a_build_passes_it(settings, tmp_path, monkeypatch):
    target = tmp_path / "target"
    monkeypatch.setattr(dq, "DBT_TARGET_DIR", target)
    node = "test.command_center.unique_fct_workflows_workflow_id.5b7e0f"

    def build(folder: str, status: str, failures: int, mtime: float) -> None:
        path = target / folder / "run_results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"results": [
            {"unique_id": node, "status": status, "failures": failures, "message": None},
            {"unique_id": "test.command_center.not_null_fct_workflows_workflow_id.1", "status": "fail", "failures": 2},
        ]}))
        os.utime(path, (mtime, mtime))

    build("transform_job-aaaa", "fail", 3, 1_000_000)
    found = evaluate(dq.DUPLICATES, settings, T0)
    assert list(found) == ["test:unique_fct_workflows_workflow_id"]  # not_null is not about duplicates
    assert "3 duplicated value(s)" in found["test:unique_fct_workflows_workflow_id"].message
    build("transform_job-bbbb", "pass", 0, 1_000_100)
    assert evaluate(dq.DUPLICATES, settings, T0) == {}


def test_duplicates_are_seen_within_5_minutes(settings, tmp_path):
    facts = Facts()
    start = T0
    storm = {start + timedelta(seconds=5 + k) for k in range(12)}  # redeliveries just after the monitor's round

    def redeliver(now: datetime) -> None:
        if now in storm:
            facts.duplicate("github", now)

    opened = first_opened(dq.DUPLICATES, settings, start, 700, facts, tmp=tmp_path, each_second=redeliver)
    began = start + timedelta(seconds=16)  # the 10th duplicate, when the threshold was crossed
    assert opened is not None and timedelta(0) < opened - began <= timedelta(minutes=5)
    print(f"\nduplicates: threshold crossed at +16 s, alert opened at +{(opened - start).seconds} s")


def test_every_rule_reads_an_empty_data_folder_without_findings(settings):
    for rule in dq.RULES:
        assert evaluate(rule, settings, T0) == {}, rule.name


def test_samples_in_the_shared_landing_are_seen_as_in_the_files(tmp_path, pg_admin_url):
    """With `CC_LANDING_URL` the agents' samples land in Postgres: the rule reads them there."""
    from resources.storage.pg_landing import PgLanding
    from scripts.chaos.harness import throwaway_database

    with throwaway_database(pg_admin_url, "cc_test_rules_landing") as url:
        shared = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "shared"), "CC_LANDING_URL": url})
        landed = [sample("web-1", T0 - timedelta(seconds=30 * n)) for n in range(20, 120)]
        missed = [sample("web-1", T0 - timedelta(seconds=30 * n)) for n in range(20)]
        by_day: dict[date, list[dict]] = {}
        for s in landed:  # in the lake (as raw/system/metrics landed them)
            by_day.setdefault(datetime.fromisoformat(s["sampled_at"]).date(), []).append(s)
        for day, day_samples in by_day.items():
            land(shared, "system", "metrics", day, day_samples, T0)
        for s in landed + missed:  # and every one in the shared landing
            PgLanding(url).append(METRICS_STREAM, [s], datetime.fromisoformat(s["sampled_at"]), keys=[s["id"]])
        found = evaluate(dq.MISSING_POINTS, shared, T0 + timedelta(seconds=20))
        assert "in the landing log but not in the lake" in found["host:web-1"].message
        assert not (tmp_path / "shared" / "landing").exists()
