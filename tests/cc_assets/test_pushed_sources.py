"""Pushed and streamed sources land through the landing log: host metrics and Postgres CDC."""

import os
import time
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from cc_assets.sources import raw_assets
from resources.ingest.metrics_agent import STREAM, MetricsAgent, sample
from resources.platform import PlatformResource
from resources.settings import Settings
from resources.storage.landing import LandingLog
from sandbox.logs import LogWriter
from sandbox.pg_cluster import find_pg_bin, throwaway_cluster
from sandbox.source_db import ChangeGenerator, setup_source_db
from scripts.chaos.harness import SECRETS, Sidecar

TODAY = datetime.now(UTC).date().isoformat()


def asset(*key):
    return next(a for a in raw_assets if a.key == AssetKey(list(key)))


def partition_rows(data_dir, *table):
    path = data_dir.joinpath("lake", "raw", *table, f"date={TODAY}", "part-0.parquet")
    return pq.read_table(path).to_pylist()


def test_metrics_from_the_agent_land_once_per_sample(tmp_path):
    data_dir = tmp_path / "data"
    log = LandingLog(data_dir / "landing")
    readings = [sample("host-a"), sample("host-b")]
    for reading in readings:
        log.append(STREAM, [reading], datetime.fromisoformat(reading["sampled_at"]))
    log.append(STREAM, [readings[0]], datetime.fromisoformat(readings[0]["sampled_at"]))  # sent twice
    platform = PlatformResource(data_dir=str(data_dir))
    for _ in range(2):
        assert materialize([asset("raw", "system", "metrics")], partition_key=TODAY,
                           resources={"platform": platform}, instance=DagsterInstance.ephemeral()).success
    rows = partition_rows(data_dir, "system", "metrics")
    assert sorted(r["host"] for r in rows) == ["host-a", "host-b"]


def test_a_sample_landed_by_the_agent_and_by_the_sidecar_is_one_row(tmp_path):
    # `make ui`: the agent and the sidecar share the data dir. On a slow disk the agent stops
    # waiting for the sidecar's answer and lands the sample itself; the sidecar lands it too.
    data_dir = tmp_path / "data"
    server = Sidecar(data_dir, {**SECRETS, "CC_FAULT_FSYNC_DELAY_S": "1"}).start()
    settings = Settings.from_env({"CC_DATA_DIR": str(data_dir), "CC_SIDECAR_URL": server.url,
                                  "CC_EVENTS_API_TOKEN": SECRETS["CC_EVENTS_API_TOKEN"]})
    agent = MetricsAgent(settings, host="host-a", read_timeout_s=0.2)
    try:
        assert agent.tick().landed == 1
        deadline = time.monotonic() + 30
        while agent.outbox and time.monotonic() < deadline:  # sent again until an answer comes in time
            time.sleep(0.5)
            agent.deliver([])
        assert len(agent.outbox) == 0
    finally:
        agent.close()
        server.stop()
    [path] = (data_dir / "landing" / STREAM).glob("date=*.jsonl")
    [copy, other] = LandingLog(data_dir / "landing").read(STREAM, datetime.fromisoformat(path.stem[5:]).date())
    assert copy["id"] == other["id"]
    assert materialize([asset("raw", "system", "metrics")], partition_key=copy["sampled_at"][:10],
                       resources={"platform": PlatformResource(data_dir=str(data_dir))},
                       instance=DagsterInstance.ephemeral()).success
    rows = pq.read_table(data_dir.joinpath("lake", "raw", "system", "metrics", f"date={copy['sampled_at'][:10]}",
                                           "part-0.parquet")).to_pylist()
    assert [r["id"] for r in rows] == [copy["id"]]


def test_log_lines_land_once_through_rotation(tmp_path):
    data_dir = tmp_path / "data"
    writer = LogWriter(data_dir / "logs", seed=5, start=datetime.now(UTC).replace(tzinfo=None))
    platform = PlatformResource(data_dir=str(data_dir))

    def land():
        assert materialize([asset("raw", "logs", "lines")], partition_key=TODAY,
                           resources={"platform": platform}, instance=DagsterInstance.ephemeral()).success
        return partition_rows(data_dir, "logs", "lines")

    writer.write(120)
    first = land()
    writer.rotate(writer.files[0])
    writer.write(80)
    rows = land()
    again = land()
    assert [r["id"] for r in again] == [r["id"] for r in rows]  # a re-run adds nothing
    assert len(first) < len(rows) == len(writer.written) == len({r["id"] for r in rows})
    assert {r["format"] for r in rows} >= {"json"}


@pytest.fixture(scope="module")
def cdc_source(tmp_path_factory):
    if find_pg_bin() is None:
        reason = "no PostgreSQL server binaries for a wal_level=logical cluster"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the CDC tests: {reason}")
        pytest.skip(reason)
    with throwaway_cluster(tmp_path_factory.mktemp("pg")) as dsn:
        setup_source_db(dsn)
        yield dsn


def test_cdc_asset_lands_snapshot_then_changes_exactly_once(cdc_source, tmp_path, monkeypatch):
    monkeypatch.setenv("CC_CDC_PG_URL", cdc_source)
    data_dir = tmp_path / "data"
    platform = PlatformResource(data_dir=str(data_dir))

    def land():
        result = materialize([asset("raw", "postgres_cdc", "changes")], partition_key=TODAY,
                             resources={"platform": platform}, instance=DagsterInstance.ephemeral())
        assert result.success
        return [{k: v for k, v in row.items() if k != "_ingested_at"}
                for row in partition_rows(data_dir, "postgres_cdc", "changes")]

    snapshot = land()
    assert snapshot and {r["op"] for r in snapshot} == {"snapshot"}
    applied = [c for tx in ChangeGenerator(cdc_source, seed=3).run(20) for c in tx]
    after = land()
    streamed = [r for r in after if r["op"] != "snapshot"]
    assert len(streamed) == len(applied)
    assert [(r["table_name"], r["op"]) for r in streamed] == [(c.table, c.op) for c in applied]
    assert land() == after  # nothing new: the same rows, no duplicates
    keys = [(r["commit_lsn"], r["seq"]) for r in after]
    assert len(keys) == len(set(keys))
