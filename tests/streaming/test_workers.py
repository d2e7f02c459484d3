"""The sidecar on every core: `CC_SIDECAR_WORKERS=2`, two worker processes on one port (the kernel
picks one per connection), real processes over a real Redis.

Whichever worker a client or a webhook lands on: every client gets every event, a delivery sent
again is a duplicate, the REST live state shows what any worker took; and a worker `kill -9`ed, or
Redis restarted, under a retrying sender leaves every acknowledged delivery in the landing files
exactly once. Every request opens its own connection, so the kernel spreads them over both workers
(the checks that both took some say so).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
import websockets

from scripts.chaos import counting as count
from scripts.chaos.deliveries import Deliveries, RetryingSender, fixtures_dir
from scripts.chaos.harness import ROOT, SECRETS, SidecarWorkers, signed_headers
from scripts.chaos.replicas_redis import RedisServer


def test_more_than_one_worker_without_redis_is_refused_in_one_line(tmp_path):
    answer = subprocess.run([sys.executable, "-m", "streaming.serve", "--port", "1"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "CC_DATA_DIR": str(tmp_path),
                                                        "CC_SIDECAR_WORKERS": "2", "CC_REDIS_URL": ""})
    assert answer.returncode == 2
    assert answer.stderr.strip().splitlines() == [
        "sidecar: CC_SIDECAR_WORKERS=2 needs CC_REDIS_URL (redis://host:6379/0): the workers share rooms, live "
        "state and webhook dedupe through Redis"]


def charlie(record_id: str, delivery: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"kind": "charlie.activity", "data": {
        "id": record_id, "instance_id": "charlie-1", "type": "task_started", "timestamp": "2026-01-05T10:00:00Z",
        "message": f"workers {record_id}"}}).encode()
    headers = signed_headers(body, SECRETS["CC_CHARLIE_WEBHOOK_SECRET"])
    if delivery:
        headers["X-Delivery-Id"] = delivery
    return body, headers


def post(workers: SidecarWorkers, route: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{workers.url}{route}", data=body, headers=headers, timeout=30)  # a fresh connection


@pytest.fixture(scope="module")
def workers(tmp_path_factory, redis_url):
    data_dir = tmp_path_factory.mktemp("workers") / "data"
    server = SidecarWorkers(data_dir, {**SECRETS, "CC_REDIS_URL": f"{redis_url}?channel=cc-test-{uuid.uuid4().hex}"})
    server.start(timeout_s=120)
    yield server
    server.stop()


def landed_by_worker(workers: SidecarWorkers) -> dict[str, int]:
    return {name: health["landed_lines"] for name, health in workers.by_worker().items()}


def test_a_client_of_either_worker_gets_every_event_whichever_worker_took_it(workers):
    async def scenario() -> tuple[dict[str, int], list[set[str]], set[str]]:
        clients: list = []
        try:
            while True:  # until both workers hold some of the clients
                for _ in range(4):
                    ws = await websockets.connect(f"{workers.ws_url}?token={workers.token()}")
                    await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
                    while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "subscribed":
                        pass
                    clients.append(ws)
                held = {n: h["clients"] for n, h in (await asyncio.to_thread(workers.by_worker)).items()}
                if all(held.values()) and sum(held.values()) == len(clients):
                    break
                assert len(clients) < 40, f"the kernel never gave one worker a client: {held}"
            before = await asyncio.to_thread(landed_by_worker, workers)
            sent = {f"charlie:activity:fan-{n}": charlie(f"fan-{n}") for n in range(20)}
            for body, headers in sent.values():
                answer = await asyncio.to_thread(post, workers, "/webhooks/charlie", body, headers)
                assert answer.status_code == 202, answer.text
            after = await asyncio.to_thread(landed_by_worker, workers)
            took = {name: after[name] - before[name] for name in after}

            async def receive(ws) -> set[str]:
                got: set[str] = set()
                while not set(sent) <= got:
                    message = json.loads(await ws.recv())
                    if message.get("room") == "events:all":
                        got.add(message["payload"]["id"])
                return got

            try:
                received = await asyncio.wait_for(asyncio.gather(*(receive(ws) for ws in clients)), 30)
            except TimeoutError:
                received = []
            return took, list(received), set(sent)
        finally:
            for ws in clients:
                await ws.close()

    took, received, sent = asyncio.run(scenario())
    assert len(took) == 2 and all(took.values()), f"both workers should have taken webhooks: {took}"
    assert received, "some client did not get every event within 30 s"
    assert all(sent <= got for got in received)


def test_a_delivery_sent_again_lands_once_whichever_worker_gets_it(workers):
    body, headers = charlie("again-1", "workers-again-1")
    answers = [post(workers, "/webhooks/charlie", body, headers) for _ in range(10)]
    assert [a.status_code for a in answers] == [202] + [200] * 9
    assert all(a.json()["status"] == "duplicate" for a in answers[1:])
    # Copies at once, spread over both workers: one lands, the others wait for it and are duplicates.
    body, headers = charlie("again-2", "workers-again-2")
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(a.status_code for a in pool.map(lambda _: post(workers, "/webhooks/charlie", body, headers),
                                                          range(8)))
    assert statuses == [200] * 7 + [202]
    landed = count.landing(workers.data_dir)
    assert (landed["charlie:workers-again-1"], landed["charlie:workers-again-2"]) == (1, 1)


def test_the_live_state_on_either_worker_shows_a_workflow_a_webhook_made(workers, sign, github_fixtures):
    workers.by_worker(lambda health: health["live_state"] == "ready", timeout_s=180)
    body = (github_fixtures / "pull_request" / "opened.payload.json").read_bytes()
    answer = post(workers, "/webhooks/github", body, sign.github(body, "pull_request"))
    assert answer.status_code == 202, answer.text
    workflow = "github:codertocat/hello-world#2"
    every_worker_lists(workers, workflow)


def every_worker_lists(workers: SidecarWorkers, workflow: str, within_s: float = 60) -> None:
    """Twenty `/api/workflows` reads in a row, each on a fresh connection, list `workflow`: both
    workers do (each is asked about ten times)."""
    def listed() -> bool:
        read = requests.get(f"{workers.url}/api/workflows", params={"limit": 500}, timeout=10,
                            headers={"Authorization": f"Bearer {workers.token()}"})
        assert read.status_code == 200, read.text
        return any(w["id"] == workflow for w in read.json()["workflows"])

    deadline = time.monotonic() + within_s
    streak = 0
    while streak < 20:
        assert time.monotonic() < deadline, f"{workflow} not listed by every worker within {within_s:.0f} s"
        streak = streak + 1 if listed() else 0
        if not streak:
            time.sleep(0.2)


def leader_and_follower(workers: SidecarWorkers, within_s: float = 60) -> tuple[str, str]:
    """The worker that computes the live state and the one that applies its deltas, once both
    name the same leader (streaming/state/shared.py)."""
    deadline = time.monotonic() + within_s
    while True:
        detail = {name: health["live_state_detail"] for name, health in workers.by_worker(
            lambda health: health["live_state"] == "ready", timeout_s=180).items()}
        leaders = [name for name, d in detail.items() if d.get("role") == "leader"]
        if len(leaders) == 1 and all(d.get("leader") == detail[leaders[0]]["replica"] for d in detail.values()):
            return leaders[0], next(name for name in detail if name != leaders[0])
        assert time.monotonic() < deadline, f"the workers do not agree on one leader: {detail}"
        time.sleep(0.5)


def _pr(github_fixtures, number: int) -> bytes:
    payload = json.loads((github_fixtures / "pull_request" / "opened.payload.json").read_bytes())
    payload["number"] = payload["pull_request"]["number"] = number
    return json.dumps(payload).encode()


def test_a_worker_restarted_after_a_kill_serves_what_was_landed_before_it(workers, sign, github_fixtures):
    """The live store is in memory: the restarted worker reads back what every worker landed lately.
    The worker killed is the one computing the live state: the other takes over (its lease expired),
    and what arrives afterwards reaches both workers' reads."""
    body = _pr(github_fixtures, 77)
    answer = post(workers, "/webhooks/github", body, sign.github(body, "pull_request"))
    assert answer.status_code == 202, answer.text
    every_worker_lists(workers, "github:codertocat/hello-world#77")
    leader, _ = leader_and_follower(workers)
    killed = workers.kill_worker(leader)
    deadline = time.monotonic() + 60
    while workers.pids().get(leader) in (None, killed):
        assert time.monotonic() < deadline, f"the supervisor did not start {leader} again"
        time.sleep(0.2)
    leader_and_follower(workers)
    every_worker_lists(workers, "github:codertocat/hello-world#77")
    body = _pr(github_fixtures, 78)
    answer = post(workers, "/webhooks/github", body, sign.github(body, "pull_request"))
    assert answer.status_code == 202, answer.text
    every_worker_lists(workers, "github:codertocat/hello-world#78")


# --- faults under load ------------------------------------------------------------------------------


def _under_load(tmp_path, redis_server: RedisServer, fault) -> None:
    """A retrying sender at 80 deliveries/s on the one port for 10 s, `fault(workers)` at 3 s; then
    every acknowledged delivery must be in the landing files exactly once."""
    if fixtures_dir() is None:
        pytest.skip("the shared GitHub webhook fixtures (shared/fixtures/github-webhooks) are not above the repo")
    data_dir = tmp_path / "data"
    env = {**SECRETS, "CC_REDIS_URL": f"{redis_server.url}?channel=cc-test-{uuid.uuid4().hex[:8]}"}
    workers = SidecarWorkers(data_dir, env).start(timeout_s=120)
    try:
        async def scenario():
            sender = RetryingSender([("127.0.0.1", workers.port)], rate=80, concurrency=8)

            async def at_3s():
                await asyncio.sleep(3)
                await asyncio.to_thread(fault, workers)

            faulting = asyncio.create_task(at_3s())
            tally = await sender.run(Deliveries(seed=17), 10)
            await faulting
            return tally

        tally = asyncio.run(scenario())
        workers.by_worker(timeout_s=60)  # both serve again (the killed one restarted)
        running = workers.pids()
    finally:
        workers.stop()
    assert len(running) == 2 and not any(psutil.pid_exists(pid) for pid in running.values()), (
        "SIGTERM to the launcher stops every worker")
    assert tally.errors_5xx == [] and tally.refused_4xx == [] and tally.unacked == []
    ledger = count.Ledger([ack.delivery for ack in tally.acks.values()])
    landing = ledger.deliveries("landing", count.landing(data_dir))
    assert (sorted(landing.lost)[:5], sorted(landing.duplicated)[:5]) == ([], []), (
        f"{len(landing.lost)} acknowledged deliveries lost, {len(landing.duplicated)} landed twice "
        f"of {len(tally.acks)}")
    assert len(tally.acks) > 400


def test_a_worker_killed_under_load_loses_no_acknowledged_delivery_and_lands_none_twice(tmp_path,
                                                                                        redis_server_binary):
    redis_server = RedisServer(tmp_path).start()
    killed = []
    try:
        _under_load(tmp_path, redis_server, lambda workers: killed.append(workers.kill_worker("w1")))
    finally:
        redis_server.stop()
    assert killed


def test_a_redis_restart_under_load_loses_no_acknowledged_delivery_and_lands_none_twice(tmp_path,
                                                                                       redis_server_binary):
    redis_server = RedisServer(tmp_path).start()

    def restart(_workers) -> None:
        redis_server.stop(signal.SIGKILL)  # no persistence: it comes back empty, claims and markers gone
        time.sleep(1.0)
        redis_server.start()

    try:
        _under_load(tmp_path, redis_server, restart)
    finally:
        redis_server.stop()
