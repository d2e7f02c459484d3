"""The fast form of `make chaos`'s sidecar scenarios: a few `kill -9`s under a retrying sender,
counted end to end on DuckDB, and two replicas over a Redis of our own that is restarted while
one replica is later killed (sharing a data dir, or as two hosts on one Postgres landing). The long
forms are `kill_storm_duckdb`, `kill_storm_postgres`, `replicas_redis` and `replicas_pg` in
`scripts/chaos/`."""

from __future__ import annotations

import contextlib
import os
from collections import Counter

import pytest

from scripts.chaos import Context
from scripts.chaos import counting as count
from scripts.chaos.deliveries import Deliveries, fixtures_dir


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
                     full_build=False)
    tally = outcome.storm.tally
    assert len(outcome.storm.kills) >= 2, "the storm must kill the sidecar while it is sent to"
    assert tally.connection_errors > 0 and len(tally.acks) >= 100
    assert [f.layer for f in outcome.findings] == ["landing", "raw", "normalized", "marts", "rest"]
    assert sum(len(a.delivery.events) for a in tally.acks.values()) > 0
    assert {f.layer: (sorted(f.lost)[:5], sorted(f.duplicated)[:5]) for f in outcome.findings} == {
        f.layer: ([], []) for f in outcome.findings}
    assert tally.errors_5xx == [] and tally.refused_4xx == []
    assert tally.unacked == []


def test_replicas_over_a_restarted_redis_and_a_killed_replica(tmp_path, redis_server_binary):
    """Every acknowledged event reaches the clients (live, or by their REST catch-up after a
    reconnect) or the surviving replica's REST reads; rooms flow again after each fault."""
    from scripts.chaos.replicas_redis import attack

    outcome = attack(Context(tmp_path, 30), rate=60, storm_s=12, concurrency=8)
    assert {name: took is not None for name, took in outcome.recoveries.items()} == {
        "redis restart": True, "replica kill": True}, "rooms stopped flowing after a fault"
    # The killed replica's clients moved to the other one.
    assert all(c.connects[-1][1] == 1 for c in outcome.clients)
    assert sorted(outcome.lost)[:5] == [], outcome.row.notes
    # Replicas share their dedupe through Redis: a redelivery that fails over is landed once and
    # reaches clients once.
    assert not outcome.duplicated, outcome.row.notes
    assert outcome.tally.errors_5xx == [] and outcome.tally.unacked == []


def test_workers_on_one_port_over_a_restarted_redis_and_a_killed_worker(tmp_path, redis_server_binary):
    """`workers_redis`: the same faults on two workers behind one port; the killed worker is started
    again, and a delivery it landed without answering is landed once (its claim in Redis)."""
    from scripts.chaos.replicas_redis import attack

    outcome = attack(Context(tmp_path, 30), rate=60, storm_s=12, concurrency=8, workers=True)
    assert {name: took is not None for name, took in outcome.recoveries.items()} == {
        "redis restart": True, "replica kill": True}, "rooms stopped flowing after a fault"
    assert (sorted(outcome.lost)[:5], sorted(outcome.duplicated)[:5]) == ([], []), outcome.row.notes
    assert outcome.tally.errors_5xx == [] and outcome.tally.unacked == []


def test_two_hosts_on_one_postgres_landing_over_a_restarted_redis_and_a_killed_replica(
        tmp_path, redis_server_binary, pg_admin_url):
    """`replicas_pg`: replicas with a data dir each (two hosts) landing in one throwaway Postgres
    database; the table's unique keys, not Redis, keep a failed-over delivery landed once."""
    from scripts.chaos.harness import throwaway_database
    from scripts.chaos.replicas_redis import attack

    with throwaway_database(pg_admin_url, "cc_test_chaos_landing") as url:
        outcome = attack(Context(tmp_path, 30), rate=60, storm_s=12, concurrency=8, landing_url=url)
    assert {name: took is not None for name, took in outcome.recoveries.items()} == {
        "redis restart": True, "replica kill": True}, "rooms stopped flowing after a fault"
    assert (sorted(outcome.lost)[:5], sorted(outcome.duplicated)[:5]) == ([], []), outcome.row.notes
    assert not outcome.landed_twice
    assert outcome.tally.errors_5xx == [] and outcome.tally.unacked == []


def test_an_event_acknowledged_while_redis_is_down_reaches_the_other_replica(tmp_path, redis_server_binary):
    """Replica A takes a webhook while Redis is restarting: once Redis is back, a client of replica
    B gets it live and B's REST reads serve it (it used to be logged and dropped)."""
    import asyncio
    import json
    import uuid

    import requests
    import websockets

    from scripts.chaos.harness import SECRETS, Sidecar, signed_headers
    from scripts.chaos.replicas_redis import RedisServer, empty_marts

    data_dir = tmp_path / "data"
    empty_marts(data_dir)
    redis_server = RedisServer(tmp_path).start()
    env = {**SECRETS, "CC_REDIS_URL": f"{redis_server.url}?channel=cc-test-{uuid.uuid4().hex[:8]}"}
    a, b = Sidecar(data_dir, env, worker="a").start(), Sidecar(data_dir, env, worker="b").start()
    record = {"id": "act-outage", "instance_id": "charlie-1", "type": "task_started",
              "timestamp": "2026-01-05T10:00:00Z", "message": "taken while Redis was down"}
    body = json.dumps({"kind": "charlie.activity", "data": record}).encode()

    async def scenario() -> dict:
        async with websockets.connect(f"{b.ws_url}?token={b.token()}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
            while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "subscribed":
                pass
            await asyncio.to_thread(redis_server.stop)
            answer = await asyncio.to_thread(
                requests.post, f"{a.url}/webhooks/charlie", data=body,
                headers=signed_headers(body, SECRETS["CC_CHARLIE_WEBHOOK_SECRET"]), timeout=30)
            assert answer.status_code == 202, answer.text
            await asyncio.to_thread(redis_server.start)

            async def first_event() -> dict:
                while True:
                    message = json.loads(await ws.recv())
                    if message["type"] == "charlie.task_started":
                        return message
            try:  # bounded: a message that never comes fails the test instead of hanging it
                return await asyncio.wait_for(first_event(), 30)
            except TimeoutError:
                raise AssertionError("the event replica A acknowledged while Redis was down never "
                                     "reached the client of replica B") from None

    try:
        message = asyncio.run(scenario())
        assert message["payload"]["id"] == "charlie:activity:act-outage"
        events = requests.get(f"{b.url}/api/events", headers={"Authorization": f"Bearer {b.token()}"},
                              timeout=10).json()["events"]
        assert [e["id"] for e in events] == ["charlie:activity:act-outage"]
    finally:
        a.stop()
        b.stop()
        redis_server.stop()


def test_a_redelivery_that_fails_over_to_the_other_replica_reaches_clients_once(tmp_path, redis_server_binary):
    """What `replicas_redis` sees when replica A lands and publishes a delivery, dies before its
    ack, and the sender retries on replica B: here without the kill, the same delivery sent to A
    and then to B. The raw asset keeps one row of it; a client must get its event once too."""
    import asyncio
    import json
    import uuid

    import requests
    import websockets

    from scripts.chaos.harness import SECRETS, Sidecar, signed_headers
    from scripts.chaos.replicas_redis import RedisServer

    redis_server = RedisServer(tmp_path).start()
    env = {**SECRETS, "CC_REDIS_URL": f"{redis_server.url}?channel=cc-test-{uuid.uuid4().hex[:8]}"}
    a, b = Sidecar(tmp_path / "data", env, worker="a").start(), Sidecar(tmp_path / "data", env, worker="b").start()
    record = {"id": "act-twice", "instance_id": "charlie-1", "type": "task_started",
              "timestamp": "2026-01-05T10:00:00Z", "message": "sent to A, then again to B"}
    body = json.dumps({"kind": "charlie.activity", "data": record}).encode()
    headers = {**signed_headers(body, SECRETS["CC_CHARLIE_WEBHOOK_SECRET"]), "X-Delivery-Id": "failover-1"}

    async def scenario() -> list[str]:
        async with websockets.connect(f"{b.ws_url}?token={b.token()}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
            while json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] != "subscribed":
                pass
            for server in (a, b):
                answer = await asyncio.to_thread(requests.post, f"{server.url}/webhooks/charlie", data=body,
                                                 headers=headers, timeout=10)
                assert answer.status_code in (200, 202), answer.text
            got = []
            with contextlib.suppress(TimeoutError):  # a second copy would come within this
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 2))
                    if message["type"] == "charlie.task_started":
                        got.append(message["payload"]["id"])
            return got

    try:
        assert asyncio.run(scenario()) == ["charlie:activity:act-twice"]
    finally:
        a.stop()
        b.stop()
        redis_server.stop()
