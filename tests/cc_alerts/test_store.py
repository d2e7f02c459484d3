"""The alert store, embedded and on Postgres: one live alert per rule + subject, counted,
acknowledged, resolved and reopened as a new alert; notices only for what a person is told."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from cc_alerts.model import Action, Finding

T0 = datetime(2026, 12, 6, 12, 0, 0)


def finding(subject: str = "source:github", severity: str = "warning", message: str = "stale", **kw) -> Finding:
    return Finding("stale_data", subject, severity, message, **kw)


def test_a_finding_opens_one_alert_and_repeats_count_on_it(store):
    opened = store.raise_alert(finding(), T0)
    again = store.raise_alert(finding(message="stale for 6 min"), T0 + timedelta(seconds=30))
    assert opened.transition == "opened" and again.transition == "updated"
    assert again.alert.id == opened.alert.id
    [alert] = store.list()
    assert (alert.count, alert.message, alert.state) == (2, "stale for 6 min", "open")
    assert (alert.first_seen, alert.last_seen) == (T0, T0 + timedelta(seconds=30))
    # A thousand failures found at once are one alert that says so.
    store.raise_alert(finding(count=1000), T0 + timedelta(seconds=60))
    assert store.get(alert.id).count == 1002
    assert [n.transition for n in store.notices_after(0)] == ["opened"]  # counting again tells no one


def test_reconcile_resolves_what_the_rule_no_longer_finds_and_a_return_is_a_new_alert(store):
    store.reconcile("stale_data", [finding("source:github"), finding("source:linear")], T0)
    changes = store.reconcile("stale_data", [finding("source:linear")], T0 + timedelta(seconds=30))
    assert sorted((c.transition, c.alert.subject) for c in changes) == [
        ("resolved", "source:github"), ("updated", "source:linear")]
    resolved = store.list(state=["resolved"])[0]
    assert resolved.subject == "source:github" and resolved.resolved_at == T0 + timedelta(seconds=30)
    # Only the subjects an evaluation covered are resolved by it.
    assert store.reconcile("stale_data", [], T0 + timedelta(seconds=60), covers={"source:cron"}) == []
    assert store.list(state=["open"])[0].subject == "source:linear"
    # The condition returns: a new alert, the old one stays in the history.
    back = store.raise_alert(finding("source:github"), T0 + timedelta(seconds=90))
    assert back.transition == "opened" and back.alert.id != resolved.id
    assert [n.transition for n in store.notices_after(0)] == ["opened", "opened", "resolved", "opened"]


def test_a_worse_severity_escalates_and_is_told(store):
    store.raise_alert(finding(severity="warning"), T0)
    change = store.raise_alert(finding(severity="critical"), T0 + timedelta(seconds=1))
    assert change.transition == "escalated" and change.alert.severity == "critical"
    assert [n.transition for n in store.notices_after(0)] == ["opened", "escalated"]


def test_acknowledged_alerts_stay_live_until_resolved(store):
    alert = store.raise_alert(finding(), T0).alert
    acked = store.acknowledge(alert.id, "alice", T0 + timedelta(seconds=5))
    assert acked.transition == "acknowledged" and acked.alert.acknowledged_by == "alice"
    # Still the live alert for its rule + subject: found again, it counts there.
    assert store.raise_alert(finding(), T0 + timedelta(seconds=30)).alert.id == alert.id
    assert store.get(alert.id).state == "acknowledged"
    assert store.counts() == {"open": {}, "acknowledged": {"warning": 1}}
    store.resolve("stale_data", "source:github", T0 + timedelta(seconds=60), "fresh again")
    assert store.acknowledge(alert.id, "bob").alert.state == "resolved"  # nothing to acknowledge
    assert store.acknowledge("no-such-id", "bob") is None


def test_every_change_moves_the_feed_in_order(store):
    start = store.last_seq()
    a = store.raise_alert(finding("source:github"), T0).alert
    store.raise_alert(finding("source:linear"), T0)
    store.acknowledge(a.id, "alice", T0)
    store.resolve("stale_data", "source:linear", T0)
    feed = store.changed_since(start)
    assert [(x.subject, x.last_change) for x in feed] == [("source:github", "acknowledged"),
                                                          ("source:linear", "resolved")]
    assert store.changed_since(store.last_seq()) == []


def test_list_filters_and_pages_newest_first(store):
    for n in range(7):
        store.raise_alert(Finding("host_cpu", f"host:web-{n}", "critical" if n % 2 else "warning", "hot"),
                          T0 + timedelta(seconds=n))
    page1 = store.list(limit=3)
    page2 = store.list(limit=3, before=(page1[-1].last_seen, page1[-1].id))
    page3 = store.list(limit=3, before=(page2[-1].last_seen, page2[-1].id))
    names = [a.subject for a in page1 + page2 + page3]
    assert names == [f"host:web-{n}" for n in range(6, -1, -1)]
    assert {a.severity for a in store.list(severity=["critical"])} == {"critical"}
    assert [a.subject for a in store.list(subject="web-3")] == ["host:web-3"]
    assert store.list(rule="stale_data") == []


def test_actions_are_requested_once_and_taken_once(store):
    store.raise_alert(finding(action=Action("refresh", "github")), T0)
    store.raise_alert(finding(action=Action("refresh", "github")), T0 + timedelta(seconds=30))  # same alert
    store.request(Action("backfill", "charlie", "2026-12-05", "2026-12-06"), None, T0)
    taken = store.take_actions(T0)
    assert [(a.kind, a.source, a.start, a.end) for a in taken] == [
        ("refresh", "github", None, None), ("backfill", "charlie", "2026-12-05", "2026-12-06")]
    assert store.take_actions(T0) == []


def test_finding_validates_what_it_is_given():
    with pytest.raises(ValueError, match="severity"):
        Finding("r", "source:x", "fatal", "m")
    with pytest.raises(ValueError, match="subject"):
        Finding("r", "github", "warning", "m")


def _raise_many(args: tuple[str, str, int]) -> None:
    kind, where, n = args
    from pathlib import Path

    from cc_alerts.store import AlertStore, PostgresAlertStore

    url, _, schema = where.partition("#")
    found = AlertStore(Path(where)) if kind == "sqlite" else PostgresAlertStore(url, schema)
    for _ in range(n):
        found.raise_alert(finding("job:github_job"))


def _waits(store) -> list[dict]:
    """Postgres' sessions that wait on a lock, with the sessions blocking them (a hang's cause:
    the race once hung a whole CI run, unexplained, on a host loaded by a 10M-event bench)."""
    if not hasattr(store, "url"):
        return []
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        return [dict(zip(("pid", "blocked_by", "state", "query"), row, strict=True)) for row in conn.execute(
            "select pid, pg_blocking_pids(pid), state, left(query, 120) from pg_stat_activity"
            " where wait_event_type = 'Lock' or cardinality(pg_blocking_pids(pid)) > 0"
            " or pid in (select unnest(pg_blocking_pids(a.pid)) from pg_stat_activity a)")]


def test_processes_raising_the_same_finding_at_once_share_one_alert(store):
    """The sidecar, the Dagster daemon and run workers write the same store at once."""
    import multiprocessing

    where = str(store.path) if hasattr(store, "path") else f"{store.url}#{store.schema}"
    kind = "sqlite" if hasattr(store, "path") else "postgres"
    store.last_seq()  # the tables exist before the writers race
    pool = multiprocessing.get_context("spawn").Pool(4)
    try:
        raised = pool.map_async(_raise_many, [(kind, where, 25)] * 4)
        try:
            raised.get(timeout=120)  # seconds of work at most: a writer that waits longer is blocked
        except multiprocessing.TimeoutError:
            pool.terminate()
            pytest.fail(f"the writers did not finish in 120 s; what waited on what: {_waits(store)}")
    finally:
        # The workers leave by themselves once told there is no more work. `with Pool` ends with
        # SIGTERM instead, and once in a CI run a worker outlived it and the join hung for 600 s.
        pool.close()
        pool.join()
    [alert] = store.list()
    assert alert.count == 100 and alert.state == "open"
    assert len(store.notices_after(0)) == 1
