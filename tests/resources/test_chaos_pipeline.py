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
from scripts.chaos.harness import SECRETS, Sidecar


@pytest.fixture
def cluster(tmp_path):
    """A cluster of our own to restart; outside CI missing binaries skip, in CI they fail."""
    if find_pg_bin() is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl, postgres) for a cluster the test may restart"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Postgres chaos tests: {reason}")
        pytest.skip(reason)
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
