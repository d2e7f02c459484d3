"""The shared landing in Postgres (`CC_LANDING_URL`): sidecar replicas as on two hosts (a data dir
each, no shared volume) landing in one throwaway database on the test Postgres.

A delivery sent to both is landed once and the second copy is answered `duplicate`; a replica
`kill -9`ed under a retrying sender, or the landing's connections killed under load, loses no
acknowledged delivery; while the database refuses connections a webhook gets 503 and acks resume
when it is back; the raw asset reads the table into the same partition as the files; the
sensors fire on new rows only.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
import pyarrow.parquet as pq
import pytest
import requests
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize
from psycopg import sql

from cc_assets.sources import raw_assets
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.ingest.metrics_agent import MetricsAgent, sample
from resources.platform import PlatformResource
from resources.settings import Settings
from resources.storage import pg_landing
from resources.storage.landing import LandingLog
from resources.storage.pg_landing import PgLanding
from scripts.chaos import counting as count
from scripts.chaos.deliveries import Deliveries, RetryingSender, fixtures_dir
from scripts.chaos.harness import (
    SECRETS,
    bearer,
    linear_body,
    linear_headers,
    signed_headers,
    throwaway_database,
)
from sensors.system_metrics import system_metrics_sensor
from sensors.webhooks import webhooks_sensor
from streaming.journal import encode_line


@pytest.fixture
def landing_url(pg_admin_url):
    """A throwaway database of this test's own on the test Postgres (never the shared ones)."""
    with throwaway_database(pg_admin_url, "cc_test_landing") as url:
        yield url


def charlie(record_id: str, delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"kind": "charlie.activity", "data": {
        "id": record_id, "instance_id": "charlie-1", "type": "task_started", "timestamp": "2026-01-05T10:00:00Z",
        "message": f"landing {record_id}"}}).encode()
    return body, {**signed_headers(body, SECRETS["CC_CHARLIE_WEBHOOK_SECRET"]), "X-Delivery-Id": delivery}


def post(server, route: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{server.url}{route}", data=body, headers=headers, timeout=30)


def replicas(make_sidecar, tmp_path, landing_url, n: int = 2, env: dict | None = None):
    """`n` sidecars as on `n` hosts: a data dir each, one landing."""
    for i in range(n):
        (tmp_path / f"host-{i}").mkdir(exist_ok=True)
    return [make_sidecar({"CC_LANDING_URL": landing_url, **(env or {})}, tmp_path / f"host-{i}" / "data")
            for i in range(n)]


def test_a_delivery_sent_to_both_replicas_is_landed_once(make_sidecar, tmp_path, landing_url):
    a, b = replicas(make_sidecar, tmp_path, landing_url)
    body, headers = charlie("act-1", "d-1")
    first, second = post(a, "/webhooks/charlie", body, headers), post(b, "/webhooks/charlie", body, headers)
    assert (first.status_code, second.status_code, second.json()["status"]) == (202, 200, "duplicate")

    # Copies sent to both at once: one lands, every other is answered duplicate (the table's
    # unique key makes a copy wait for the first one's commit).
    body, headers = charlie("act-2", "d-2")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: post((a, b)[i % 2], "/webhooks/charlie", body, headers), range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [202]

    # Linear: the same signed body under a new (unsigned) Linear-Delivery is a replay, on either host.
    payload = {"action": "create", "type": "Comment", "data": {"id": "c-1", "body": "hi"}}
    signed = linear_body(payload)
    assert post(a, "/webhooks/linear", signed, linear_headers(signed)).status_code == 202
    replay = post(b, "/webhooks/linear", signed, linear_headers(signed))
    assert (replay.status_code, replay.json()["status"]) == (200, "duplicate")

    # Host samples: one id, sent to both, landed once.
    one = sample("host-x")
    sent = [post(s, "/events", json.dumps({"kind": "system.metrics", "data": [one]}).encode(),
                 {**bearer(), "Content-Type": "application/json"}).json() for s in (a, b)]
    assert [(s["landed"], s["duplicates"]) for s in sent] == [(1, 0), (0, 1)]

    landed = count.landing_shared(landing_url)
    assert sorted(landed.values()) == [1, 1, 1] and {"charlie:d-1", "charlie:d-2"} < set(landed)
    assert [r["id"] for d in PgLanding(landing_url).days(METRICS_STREAM)
            for r in PgLanding(landing_url).read(METRICS_STREAM, d)] == [one["id"]]
    # Nothing in the replicas' own data dirs: no volume to share.
    assert not list((tmp_path / "host-0" / "data" / "landing").glob("*/date=*.jsonl"))
    assert not list((tmp_path / "host-1" / "data" / "landing").glob("*/date=*.jsonl"))


def test_a_sample_the_metrics_agent_landed_itself_is_a_duplicate_at_the_sidecar(
        make_sidecar, tmp_path, landing_url):
    """An agent that could not reach the sidecar landed a sample itself: sent later from its outbox,
    the sidecar answers it was landed already."""
    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "agent"), "CC_LANDING_URL": landing_url})
    agent = MetricsAgent(settings, host="agent-host")
    one = sample("agent-host")
    assert agent.deliver([one]).landed == 1
    (server,) = replicas(make_sidecar, tmp_path, landing_url, 1)
    answer = post(server, "/events", json.dumps({"kind": "system.metrics", "data": [one]}).encode(),
                  {**bearer(), "Content-Type": "application/json"}).json()
    assert (answer["landed"], answer["duplicates"]) == (0, 1)


@pytest.fixture
def chaos_fixtures():
    if fixtures_dir() is None:
        pytest.skip("the shared GitHub webhook fixtures (shared/fixtures/github-webhooks) are not above the repo")


def _acked_once(tally, landing_url: str) -> tuple[list[str], list[str]]:
    landed = count.landing_shared(landing_url)
    acked = [a.delivery.id for a in tally.acks.values()]
    return sorted(d for d in acked if landed[d] == 0), sorted(d for d in acked if landed[d] > 1)


def test_a_replica_killed_under_load_loses_no_acknowledged_delivery(make_sidecar, tmp_path, landing_url,
                                                                     chaos_fixtures):
    a, b = replicas(make_sidecar, tmp_path, landing_url)
    sender = RetryingSender([("127.0.0.1", a.port), ("127.0.0.1", b.port)], rate=80, concurrency=8)
    killer = threading.Timer(3.0, a.kill)
    killer.start()
    try:
        tally = asyncio.run(sender.run(Deliveries(seed=11), 8.0))
    finally:
        killer.cancel()
    assert a.proc.poll() is not None, "the replica must have been killed while the sender sent"
    assert len(tally.acks) >= 100 and tally.unacked == [] and tally.errors_5xx == []
    lost, twice = _acked_once(tally, landing_url)
    assert (lost[:5], twice[:5]) == ([], [])


def _landing_backends(admin_url: str, database: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return len(conn.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s"
                                " and application_name = 'cc-landing'", [database]).fetchall())


def test_the_landing_connection_killed_under_load_loses_no_acknowledged_delivery(
        make_sidecar, tmp_path, landing_url, pg_admin_url, chaos_fixtures):
    (server,) = replicas(make_sidecar, tmp_path, landing_url, 1)
    database = landing_url.rsplit("/", 1)[1]
    sender = RetryingSender([("127.0.0.1", server.port)], rate=80, concurrency=8)
    killed: list[int] = []
    stop = threading.Event()

    def kill_connections() -> None:
        while not stop.wait(0.7):
            killed.append(_landing_backends(pg_admin_url, database))

    killer = threading.Thread(target=kill_connections)
    killer.start()
    try:
        tally = asyncio.run(sender.run(Deliveries(seed=12), 6.0))
    finally:
        stop.set()
        killer.join()
    assert sum(killed) >= 3, "the writer's connection must have been killed while it landed"
    assert len(tally.acks) >= 100 and tally.unacked == [] and tally.errors_5xx == []
    lost, twice = _acked_once(tally, landing_url)
    assert (lost[:5], twice[:5]) == ([], [])


def test_postgres_refusing_connections_answers_503_then_acks_resume(make_sidecar, tmp_path, landing_url,
                                                                      pg_admin_url):
    (server,) = replicas(make_sidecar, tmp_path, landing_url, 1)
    assert post(server, "/webhooks/charlie", *charlie("act-0", "before")).status_code == 202
    database = sql.Identifier(landing_url.rsplit("/", 1)[1])
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("alter database {} allow_connections false").format(database))
    try:
        _landing_backends(pg_admin_url, landing_url.rsplit("/", 1)[1])
        down = post(server, "/webhooks/charlie", *charlie("act-1", "during"))
        assert (down.status_code, down.headers.get("Retry-After")) == (503, "5")
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("alter database {} allow_connections true").format(database))
    again = post(server, "/webhooks/charlie", *charlie("act-1", "during"))
    assert again.status_code == 202  # the retry lands: the refused copy was not
    assert sorted(count.landing_shared(landing_url).items()) == [("charlie:before", 1), ("charlie:during", 1)]


RAW = next(a for a in raw_assets if a.key == AssetKey(["raw", "webhooks", "deliveries"]))
DAY = "2026-11-20"


def _raw_rows(platform: PlatformResource, lake) -> list[dict]:
    assert materialize([RAW], partition_key=DAY, resources={"platform": platform},
                       instance=DagsterInstance.ephemeral()).success
    rows = pq.read_table(lake / "raw" / "webhooks" / "deliveries" / f"date={DAY}" / "part-0.parquet").to_pylist()
    # `_ingested_at` is when each run wrote the partition: the rest is what the landing held.
    return sorted(({k: v for k, v in r.items() if k != "_ingested_at"} for r in rows), key=lambda r: r["id"])


def test_the_raw_asset_reads_the_table_into_the_same_partition_as_the_files(tmp_path, landing_url):
    at = datetime(2026, 11, 20, 9, 30)
    records = [({"id": f"charlie:r-{n}", "source": "charlie", "delivery_id": f"r-{n}", "event": "charlie.activity",
                 "action": None, "status": "raw", "reason": None, "repo": None},
                json.dumps({"id": f"act-{n}", "n": n}).encode()) for n in range(3)]
    lines = [encode_line(record, at, {"payload": raw}) for record, raw in records]
    files = tmp_path / "files"
    path = LandingLog(files / "landing").path("webhooks", at.date())
    path.parent.mkdir(parents=True)
    # Files: two writers landed the first delivery (a crash before its ack); the asset keeps one row.
    path.write_bytes(b"".join(lines) + lines[0])
    with pg_landing.connect(landing_url) as conn:
        assert pg_landing.commit(conn, "w1", [pg_landing.Line("webhooks", at, line.rstrip(b"\n"), (record["id"],))
                                              for line, (record, _) in zip(lines, records, strict=True)]) == {}
    from_files = _raw_rows(PlatformResource(data_dir=str(files)), files / "lake")
    shared = tmp_path / "shared"
    from_table = _raw_rows(PlatformResource(data_dir=str(shared), landing_url=landing_url), shared / "lake")
    assert [r["id"] for r in from_table] == ["charlie:r-0", "charlie:r-1", "charlie:r-2"]
    assert from_table == from_files


def tick(sensor, platform, cursor=None):
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=cursor,
                                   resources={"platform": platform})
    return sensor(context), context.cursor


def test_the_sensors_fire_on_new_rows_only(tmp_path, landing_url):
    platform = PlatformResource(data_dir=str(tmp_path), landing_url=landing_url)
    now = datetime.now(UTC).replace(tzinfo=None)
    for sensor, stream in ((webhooks_sensor, "webhooks"), (system_metrics_sensor, METRICS_STREAM)):
        assert isinstance(tick(sensor, platform)[0], SkipReason)
        PgLanding(landing_url, "host-a").append(stream, [{"id": "a"}], now, keys=["a"])
        first, cursor = tick(sensor, platform)
        assert [r.partition_key for r in (first if isinstance(first, list) else [first])] == [now.date().isoformat()]
        assert isinstance(tick(sensor, platform, cursor)[0], SkipReason)
        # A copy already landed adds no row: nothing to run.
        assert PgLanding(landing_url, "host-b").append(stream, [{"id": "a"}], now, keys=["a"]) == 0
        assert isinstance(tick(sensor, platform, cursor)[0], SkipReason)
        PgLanding(landing_url, "host-b").append(stream, [{"id": "b"}], now, keys=["b"])
        grown = tick(sensor, platform, cursor)[0]
        assert isinstance(grown if not isinstance(grown, list) else grown[0], RunRequest)
        # Not a file in sight.
        assert not (tmp_path / "landing").exists()


def test_two_hosts_committing_the_same_keys_at_once_land_each_once(landing_url):
    """Batches from two writers with overlapping keys in opposite orders: no deadlock, each key once."""
    at = datetime(2026, 11, 20, 10, 0)
    keys = [f"k-{n}" for n in range(200)]
    results: dict[str, set[int]] = {}

    def land(writer: str, order: list[str]) -> None:
        with pg_landing.connect(landing_url) as conn:
            results[writer] = {n for n in pg_landing.commit(conn, writer, [
                pg_landing.Line("webhooks", at, json.dumps({"id": k}).encode(), (k,)) for k in order])}

    threads = [threading.Thread(target=land, args=("a", keys)), threading.Thread(target=land, args=("b", keys[::-1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2, "a writer did not finish: deadlocked?"
    assert len(results["a"]) + len(results["b"]) == len(keys)  # every key landed by exactly one of them
    assert Counter(count.landing_shared(landing_url)) == Counter(dict.fromkeys(keys, 1))


def test_a_replica_started_later_serves_what_the_others_landed(tmp_path, landing_url):
    """Catch-up reads the shared landing: a named replica that starts on a host of its own (an empty
    data dir) serves the events another host landed before it, in `/api/events`, from its first
    answer on (it takes connections once it has read them back)."""
    from scripts.chaos.harness import Sidecar
    from scripts.chaos.replicas_redis import empty_marts

    env = {**SECRETS, "CC_LANDING_URL": landing_url}
    hosts = [tmp_path / "host-a" / "data", tmp_path / "host-b" / "data"]
    for data_dir in hosts:
        empty_marts(data_dir)
    first = Sidecar(hosts[0], env, worker="a").start()
    try:
        events = [e for n in range(300) for e in post(first, "/webhooks/charlie",
                                                      *charlie(f"act-early-{n}", f"early-{n}")).json()["events"]]
    finally:
        first.stop()
    later = Sidecar(hosts[1], env, worker="b").start()
    try:
        served = count.rest_events(later.url, later.token())  # its first read: nothing waited for
        assert len(events) == 300 and set(events) <= set(served), f"{len(set(events) - set(served))} not served yet"
    finally:
        later.stop()


def test_a_duplicate_says_whether_its_first_copy_is_recent(landing_url):
    """A replica republishes the events of a copy another replica committed only just now (that one
    may have died before publishing them), not those of a redelivery days later."""
    at = datetime(2026, 11, 20, 10, 0)
    line = pg_landing.Line("webhooks", at, b'{"id":"github:1"}', ("github:1", "alias:1"))
    with pg_landing.connect(landing_url) as conn:
        assert pg_landing.commit(conn, "a", [line]) == {}
        assert pg_landing.commit(conn, "b", [line]) == {0: True}
        conn.execute(f"update {pg_landing.SCHEMA}.keys set landed_at = now() - interval '3 days'")
        conn.commit()
        # A copy with a new alias beside a landed key: a duplicate, and its new alias is not kept.
        again = pg_landing.Line("webhooks", at, b'{"id":"github:1"}', ("github:1", "alias:new"))
        assert pg_landing.commit(conn, "b", [again]) == {0: False}
        assert sorted(k for (k,) in conn.execute(f"select key from {pg_landing.SCHEMA}.keys")) == [
            "alias:1", "github:1"]


def test_a_delivery_id_postgres_text_cannot_hold_still_lands_once(make_sidecar, tmp_path, landing_url):
    """A pushed record's own id becomes its delivery id: one with a NUL (valid JSON, not storable as
    Postgres text) lands, and its copy is a duplicate, instead of failing its batch with a 503."""
    (server,) = replicas(make_sidecar, tmp_path, landing_url, 1)
    body = json.dumps({"kind": "charlie.activity", "id": "nul\u0000id", "data": {
        "id": "act-nul", "instance_id": "charlie-1", "type": "task_started", "timestamp": "2026-01-05T10:00:00Z"}}
    ).encode()
    headers = signed_headers(body, SECRETS["CC_CHARLIE_WEBHOOK_SECRET"])
    assert [post(server, "/webhooks/charlie", body, headers).status_code for _ in range(2)] == [202, 200]
    assert count.landing_shared(landing_url) == Counter({"charlie:nul\u0000id": 1})


def test_keys_past_the_redelivery_window_are_forgotten_and_the_lines_kept(landing_url):
    at = datetime(2026, 11, 20, 10, 0)
    old, new = (pg_landing.Line("webhooks", at, json.dumps({"id": k}).encode(), (k,)) for k in ("old", "new"))
    with pg_landing.connect(landing_url) as conn:
        assert pg_landing.commit(conn, "a", [old]) == {}
        conn.execute(f"update {pg_landing.SCHEMA}.keys set landed_at = now() - interval '8 days'")
        conn.commit()
        assert pg_landing.commit(conn, "a", [new]) == {}
    with pg_landing.connect(landing_url, autocommit=True) as conn:
        assert pg_landing.prune_keys(conn, 7, chunk=1) == 1
    with pg_landing.connect(landing_url) as conn:
        assert pg_landing.commit(conn, "a", [new]) == {0: True}  # still in the window: a duplicate
        assert pg_landing.commit(conn, "a", [old]) == {}  # past it: landed again, as with the files
    assert count.landing_shared(landing_url) == Counter({"old": 2, "new": 1})


def test_workers_on_one_port_land_in_the_shared_store_once(tmp_path, landing_url, redis_url):
    """`CC_SIDECAR_WORKERS=2` on one host with the shared landing: whichever worker gets a copy,
    each delivery is landed once, and the workers write no landing files."""
    import uuid

    from scripts.chaos.harness import SidecarWorkers

    (tmp_path / "host").mkdir()
    env = {**SECRETS, "CC_LANDING_URL": landing_url, "CC_REDIS_URL": f"{redis_url}?channel=cc-test-{uuid.uuid4().hex[:8]}"}
    workers = SidecarWorkers(tmp_path / "host" / "data", env).start()
    try:
        answers = Counter()
        for n in range(20):
            for _ in range(2):  # a fresh connection each: the kernel spreads them over the workers
                answers[post(workers, "/webhooks/charlie", *charlie(f"act-{n}", f"w-{n}")).status_code] += 1
    finally:
        workers.stop()
    assert answers == Counter({202: 20, 200: 20})
    assert count.landing_shared(landing_url) == Counter({f"charlie:w-{n}": 1 for n in range(20)})
    assert not list((tmp_path / "host" / "data" / "landing").glob("*/date=*.jsonl"))
