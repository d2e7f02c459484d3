"""The fast form of `make chaos`'s sidecar scenarios: a few `kill -9`s under a retrying sender,
counted end to end on DuckDB, and two replicas over a Redis of our own that is restarted while
one replica is later killed. The long forms are `kill_storm_duckdb`, `kill_storm_postgres` and
`replicas_redis` in `scripts/chaos/`."""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest

from scripts.chaos import Context
from scripts.chaos import counting as count
from scripts.chaos.traffic import Deliveries, fixtures_dir


@pytest.fixture(scope="module", autouse=True)
def _fixtures():
    if fixtures_dir() is None:
        reason = "the shared GitHub webhook fixtures (shared/fixtures/github-webhooks) are not above the repo"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the chaos tests: {reason}")
        pytest.skip(reason)


def test_the_ledger_notices_a_lost_and_a_doubled_delivery():
    """The counting the scenarios rely on can fail: one missing, one twice, at each kind of layer."""
    deliveries = Deliveries(seed=3)
    acked = [d for d in (next(deliveries) for _ in range(200)) if d.events][:3]
    ledger = count.Ledger(acked)
    landed = Counter({acked[0].id: 1, acked[1].id: 2})
    assert (ledger.deliveries("landing", landed).lost, ledger.deliveries("landing", landed).duplicated) == (
        {acked[2].id}, {acked[1].id})
    events = Counter({e: 1 for d in acked for e in d.events})
    events[acked[0].events[0]] = 0
    events[acked[2].events[-1]] = 2
    finding = ledger.events("marts", events)
    assert (finding.lost, finding.duplicated) == ({acked[0].id}, {acked[2].id})


def test_kill_storm_counted_end_to_end_on_duckdb(tmp_path):
    from scripts.chaos.kill_storm import attack

    outcome = attack(Context(tmp_path, 60), "duckdb", rate=80, concurrency=12, kill_every=(1.0, 2.0), kills=3,
                     storm_s=None)
    tally = outcome.storm.tally
    assert len(outcome.storm.kills) >= 2, "the storm must kill the sidecar while it is sent to"
    assert tally.connection_errors > 0 and len(tally.acks) >= 100
    assert [f.layer for f in outcome.findings] == ["landing", "raw", "normalized", "marts", "rest"]
    assert sum(len(a.delivery.events) for a in tally.acks.values()) > 0
    assert {f.layer: (sorted(f.lost)[:5], sorted(f.duplicated)[:5]) for f in outcome.findings} == {
        f.layer: ([], []) for f in outcome.findings}
    assert tally.errors_5xx == [] and tally.refused_4xx == []
    assert tally.unacked == []


@pytest.fixture
def redis_server_binary():
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the Redis restart test: redis-server is not installed")
        pytest.skip("redis-server is not installed (the test restarts a Redis of its own)")


def test_replicas_over_a_restarted_redis_and_a_killed_replica(tmp_path, redis_server_binary):
    """Every acknowledged event reaches the clients (live, or by their REST catch-up after a
    reconnect) or the surviving replica's REST reads; rooms flow again after each fault."""
    from scripts.chaos.replicas_redis import attack

    outcome = attack(Context(tmp_path, 30), rate=60, storm_s=12, concurrency=8)
    assert {name: took is not None for name, took in outcome.recoveries.items()} == {
        "redis restart": True, "replica kill": True}, "rooms stopped flowing after a fault"
    # The killed replica's clients moved to the other one.
    assert all(c.connects[-1][1] == 1 for c in outcome.clients)
    assert sorted(outcome.lost)[:5] == [] and sorted(outcome.duplicated)[:5] == []
    assert outcome.tally.errors_5xx == [] and outcome.tally.unacked == []
