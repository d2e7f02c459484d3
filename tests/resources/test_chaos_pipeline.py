"""The fast forms of the batch side of `make chaos` (scripts/chaos): a source outage storm, the CDC
lander killed under write load, Postgres restarted under the warehouse loads, the sidecar's app
store and the CDC reader; and the app store's answers while its Postgres is down and right after.
"""

from __future__ import annotations

import os
from collections import Counter

import psycopg
import pytest
import requests

from sandbox.pg_cluster import find_pg_bin, restartable_cluster
from scripts.chaos.cdc_kill_resume import Kills, run_kills
from scripts.chaos.cdc_landing import compare
from scripts.chaos.harness import SECRETS, Sidecar
from scripts.chaos.partitions import compare as compare_partitions
from scripts.chaos.postgres_restart import Restarts, run_restarts
from scripts.chaos.source_outage_storm import Storm, problems, run_storm
from streaming.data.marts import MartsUnavailable, PostgresMarts


@pytest.fixture
def cluster_binaries() -> None:
    """Clusters of our own to restart; outside CI missing binaries skip, in CI they fail."""
    if find_pg_bin() is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl, postgres) for a cluster the test may restart"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Postgres chaos tests: {reason}")
        pytest.skip(reason)


@pytest.fixture
def cluster(cluster_binaries, tmp_path):
    with restartable_cluster(tmp_path) as handle:
        yield handle


def test_the_app_store_answers_503_while_postgres_is_down_and_serves_again_once_it_is_back(cluster, tmp_path):
    (tmp_path / "sidecar").mkdir()
    sidecar = Sidecar(tmp_path / "sidecar" / "data", {**SECRETS, "CC_WAREHOUSE": "postgres", "CC_PG_URL": cluster.dsn,
                                                      "CC_APP_SCHEMA": "cc_app", "CC_REDIS_URL": ""}).start()
    headers = {"Authorization": f"Bearer {sidecar.token('ann')}"}

    def create(name: str) -> requests.Response:
        return requests.post(f"{sidecar.url}/dashboard/dashboards", json={"name": name}, headers=headers, timeout=10)

    try:
        assert create("before").status_code == 201
        cluster.restart()
        # Postgres is back: the first request after the restart must not fail on the old connection.
        assert create("after restart").status_code == 201
        cluster.stop()
        down = create("while down")
        assert down.status_code == 503 and "Retry-After" in down.headers, (down.status_code, down.text)
        listed = requests.get(f"{sidecar.url}/dashboard/dashboards", headers=headers, timeout=10)
        assert listed.status_code == 503 and "Retry-After" in listed.headers
        cluster.start()
        assert create("after start").status_code == 201
    finally:
        sidecar.stop()
    with psycopg.connect(cluster.dsn) as conn:
        names = Counter(r[0] for r in conn.execute("select name from cc_app.dashboards").fetchall())
    # Each dashboard answered 201 exists once; the one refused with 503 does not (beside the seeded one).
    assert {n: names[n] for n in ("before", "after restart", "after start", "while down")} == {
        "before": 1, "after restart": 1, "after start": 1, "while down": 0}


# --- the fast forms of the scenarios --------------------------------------------------------------

def test_counting_lost_and_duplicated_rows_and_changes():
    clean = {("github/pull_requests", "2026-11-20"): Counter({"a": 1, "b": 1})}
    assert compare_partitions(clean, {("github/pull_requests", "2026-11-20"): Counter({"a": 2})}).differing == [
        "github/pull_requests 2026-11-20: -1 +1"]
    assert compare_partitions(clean, clean).equal
    truth = [("0/10", 0, "todos", "insert", "1"), ("0/10", 1, "trades", "update", "4")]
    cdc = compare([("x", 0, "todos", "snapshot", "9")], truth,
                  [("0/1", 0, "todos", "snapshot", "9"), truth[0], truth[0]])
    assert (cdc.lost, cdc.duplicated, cdc.snapshot_lost, cdc.snapshot_duplicated) == (1, 1, 0, 0)


def test_a_source_outage_storm_ends_with_every_partition_equal_to_a_clean_run(tmp_path):
    outcome = run_storm(tmp_path, Storm(events=300, days=2, seconds=10, outage_s=4, recovery_budget_s=60))
    assert outcome.differing == [] and outcome.rows > 0
    assert (outcome.row.acked_lost, outcome.row.duplicated) == (0, 0)
    assert outcome.row.attempts > 0, "the storm spoiled no request"
    assert problems(outcome) == []  # circuits opened in the outage, all closed again, every source landed


def test_the_cdc_lander_killed_under_write_load_lands_every_change_once(cluster_binaries, tmp_path):
    outcome = run_kills(tmp_path, Kills(kills=2, seconds=3, rate=30))
    assert outcome.comparison.committed > 0 and outcome.comparison.examples == []
    assert (outcome.row.acked_lost, outcome.row.duplicated) == (0, 0)


def test_postgres_restarted_under_loads_app_store_and_cdc_loses_nothing(cluster_binaries, tmp_path):
    rows = run_restarts(tmp_path, Restarts(disruptions=("restart",), events=300, days=1,
                                           sources=("github", "linear"), settle_s=1))
    failed = [(r.scenario, r.notes) for r in rows if r.failed or r.recovery_s is None]
    assert failed == []
    assert all(r.attempts > 0 for r in rows)
    assert "1 of 1 with a load in flight" in rows[0].notes


def test_mart_reads_survive_a_postgres_restart_and_are_a_503_while_it_is_down(cluster):
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("create schema analytics")
        conn.execute("create table analytics.dashboard_overview as select timestamp '2026-11-20 12:00' as as_of_at")
    marts = PostgresMarts(cluster.dsn, "analytics", check_every_s=0)
    try:
        # Several connections in the pool, as concurrent requests leave them.
        with marts._conn() as a, marts._conn() as b:
            assert a is not b
        assert marts.version() == "2026-11-20 12:00:00"
        cluster.restart()
        # Postgres is back: no read may fail on a pooled connection the restart broke.
        assert [marts.query("select count(*) as n from dashboard_overview")[0]["n"] for _ in range(3)] == [1, 1, 1]
        assert marts.version() == "2026-11-20 12:00:00"
        cluster.stop()
        with pytest.raises(MartsUnavailable):  # the routes' 503 with Retry-After
            marts.query("select 1")
        cluster.start()
        assert marts.query("select 1 as one") == [{"one": 1}]
    finally:
        marts.close()
