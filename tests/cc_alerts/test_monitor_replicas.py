"""With replicas one monitor evaluates (`Monitor(leads=...)`): the others reconcile nothing, so a
replica that did not see what the evaluating one saw never resolves its alerts; and a replica that
becomes the evaluating one evaluates every rule at once, not a cadence later."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cc_alerts.facts import Facts
from cc_alerts.model import Finding
from cc_alerts.monitor import RULE_FAILED, Monitor
from cc_alerts.rules import data_quality as dq
from resources.settings import Settings

T0 = datetime(2026, 3, 2, 12, 0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data")})


def duplicates_alerts(store) -> list:
    return store.list(rule=dq.DUPLICATES.name, limit=100)


def test_a_replica_that_does_not_lead_leaves_the_alerts_alone_and_evaluates_at_once_when_it_leads(store, settings):
    facts = Facts()  # this replica saw no duplicates: the leader did
    clock = {"now": T0}
    leads = {"now": False}
    monitor = Monitor(store, settings, facts, rules=[dq.DUPLICATES], clock=lambda: clock["now"],
                      leads=lambda: leads["now"])
    store.raise_alert(Finding(dq.DUPLICATES.name, "source:charlie", "warning", "charlie: 12 duplicates", count=12),
                      T0)  # by the leader
    for minute in range(11):  # two cadences of rounds on a follower: its rules are never evaluated
        clock["now"] = T0 + timedelta(minutes=minute)
        assert monitor.run_due() == []
    [alert] = duplicates_alerts(store)
    assert (alert.state, alert.count) == ("open", 12)
    assert monitor.evaluations == {} and monitor.status() == {"evaluates": False, "rounds": 0, "rounds_skipped": 11}

    # The leader's facts reached this replica (streaming/alerting.py), then so did the lease.
    facts.merge({"duplicates": {"charlie": [T0 + timedelta(minutes=10) - timedelta(seconds=k) for k in range(12)]}})
    leads["now"] = True
    clock["now"] = T0 + timedelta(minutes=10, seconds=30)
    assert [c.transition for c in monitor.run_due()] == ["updated"]
    [alert] = duplicates_alerts(store)
    assert (alert.state, alert.count) == ("open", 24)
    assert monitor.status()["evaluates"] is True

    # Led again shortly after losing the lease: evaluated at once, well within the 5 min cadence.
    leads["now"] = False
    clock["now"] += timedelta(seconds=10)
    assert monitor.run_due() == []
    leads["now"] = True
    clock["now"] += timedelta(seconds=10)
    assert [c.transition for c in monitor.run_due()] == ["updated"]
    assert monitor.evaluations[dq.DUPLICATES.name]["at"] == clock["now"]
    assert [a.state for a in duplicates_alerts(store)] == ["open"]  # never resolved, never a second one


def test_a_monitor_alone_evaluates_as_before(store, settings):
    facts = Facts()
    for k in range(12):
        facts.duplicate("charlie", T0 - timedelta(seconds=k))
    monitor = Monitor(store, settings, facts, rules=[dq.DUPLICATES], clock=lambda: T0)
    assert [c.transition for c in monitor.run_due()] == ["opened"]
    assert monitor.status() == {"evaluates": True, "rounds": 1, "rounds_skipped": 0}


def test_a_rule_failure_another_replica_raised_is_resolved_by_the_next_leader_s_success(store, settings):
    store.raise_alert(Finding(RULE_FAILED, f"rule:{dq.DUPLICATES.name}", "warning", "the duplicates rule could not "
                              "be evaluated: OSError: the lake is away"), T0)  # by the leader, before it died
    leads = {"now": False}
    monitor = Monitor(store, settings, Facts(), rules=[dq.DUPLICATES], clock=lambda: T0 + timedelta(minutes=1),
                      leads=lambda: leads["now"])
    assert monitor.run_due() == []
    leads["now"] = True
    assert [(c.transition, c.alert.rule) for c in monitor.run_due()] == [("resolved", RULE_FAILED)]
