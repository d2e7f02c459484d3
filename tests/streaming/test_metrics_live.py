"""Host metrics live: the metrics agent sends its samples to a real sidecar (over HTTP, with the
events token), a real WebSocket client in `metrics:realtime` gets them, `/dashboard/metrics`
shows them before any build, and while the sidecar is down the agent lands them itself and sends
them once it is back, each landed by the sidecar exactly once."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
import requests
import websockets

from resources.ingest.metrics_agent import STREAM, MetricsAgent, sample
from resources.settings import Settings
from resources.storage.landing import LandingLog
from scripts.chaos.harness import ROOT, SECRETS, Sidecar

TOKEN = SECRETS["CC_EVENTS_API_TOKEN"]


async def recv_until(ws, type_: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if message["type"] == type_:
            return message


async def subscribe(ws, room: str) -> None:
    await ws.send(json.dumps({"type": "subscribe", "rooms": [room]}))
    await recv_until(ws, "subscribed")


def agent_settings(data_dir, url: str) -> Settings:
    return Settings.from_env({"CC_DATA_DIR": str(data_dir), "CC_EVENTS_API_TOKEN": TOKEN, "CC_SIDECAR_URL": url})


def landed(data_dir) -> list[dict]:
    log = LandingLog(data_dir / "landing")
    return [r for path in sorted((data_dir / "landing" / STREAM).glob("date=*.jsonl"))
            for r in log.read(STREAM, datetime.fromisoformat(path.stem[5:]).date())]


def landed_ids(data_dir) -> list[str]:
    return [r["id"] for r in landed(data_dir)]


def minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def last_build(data_dir, host: str, built_minute: datetime) -> None:
    """A serving snapshot as a build leaves it: no events, and one minute of `host` rolled up."""
    snapshot = data_dir / "serving" / "marts.duckdb"
    snapshot.parent.mkdir(parents=True)
    rollup = ("select ?::varchar as host, ?::timestamp as bucket_start_at, 2 as sample_count,"
              " 10.0::decimal(18,2) as avg_cpu_percent, 12.0::decimal(18,2) as max_cpu_percent,"
              " 40.0::decimal(18,2) as avg_memory_percent, 50.0::decimal(18,2) as max_disk_percent")
    with duckdb.connect(str(snapshot)) as con:
        con.execute("create table dashboard_overview as select now() as as_of_at")
        con.execute("create table fct_event_volume_1h (bucket_start_at timestamp, source varchar,"
                    " event_type varchar, actor_type varchar, event_count bigint)")
        con.execute("create table fct_workflows (first_event_at timestamp, completed_at timestamp,"
                    " last_event_at timestamp)")
        con.execute(f"create table fct_system_metrics_1m as {rollup}", [host, built_minute])
        con.execute(f"create table fct_system_metrics_1h as {rollup}", [host, built_minute.replace(minute=0)])


def test_the_agent_s_sample_reaches_metrics_realtime_and_the_last_hour_of_dashboard_metrics(make_sidecar, tmp_path):
    host = socket.gethostname()
    now = datetime.now(UTC).replace(tzinfo=None)
    built = minute(now) - timedelta(minutes=10)
    data_dir = tmp_path / "sidecar"
    last_build(data_dir, host, built)
    server = make_sidecar(data_dir=data_dir)
    agent_dir = tmp_path / "agent"

    async def scenario() -> dict:
        async with websockets.connect(f"{server.ws_url}?token={server.token()}") as ws:
            await subscribe(ws, "metrics:realtime")
            # The agent as `make ui` runs it (one tick), on "another host": its own data dir.
            done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "resources.ingest.metrics_agent",
                                                            "--once"], cwd=ROOT, capture_output=True, text=True,
                                           env={"PATH": "/usr/bin:/bin", "CC_DATA_DIR": str(agent_dir),
                                                "CC_EVENTS_API_TOKEN": TOKEN, "CC_SIDECAR_URL": server.url})
            assert done.returncode == 0, done.stderr
            return (await recv_until(ws, "system.metrics"))["payload"]

    pushed = asyncio.run(scenario())
    assert pushed["host"] == host and pushed["cpu_count"] >= 1
    assert landed_ids(data_dir) == [pushed["id"]]  # landed by the sidecar...
    assert landed_ids(agent_dir) == []  # ...and not by the agent, which had no need to

    headers = {"Authorization": f"Bearer {server.token()}"}
    pushed_minute = minute(datetime.fromisoformat(pushed["sampled_at"]))
    deadline = time.monotonic() + 30
    while True:  # the 1h window's body is cached for up to 2 s
        response = requests.get(f"{server.url}/dashboard/metrics", params={"timeRange": "1h"}, headers=headers,
                                 timeout=10)
        assert response.status_code == 200, response.text
        system = {b["start"]: b for b in response.json()["system"]}
        if pushed_minute.isoformat() + "Z" in system or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    live = system[pushed_minute.isoformat() + "Z"]
    assert live["hosts"] == 1 and live["avgCpuPercent"] == round(pushed["cpu_percent"], 2)
    assert live["avgMemoryPercent"] == round(pushed["memory_percent"], 2)
    assert live["maxDiskPercent"] == pushed["disk_percent"]
    # The minute the last build rolled up is still the build's.
    assert system[built.isoformat() + "Z"]["avgCpuPercent"] == 10.0


def test_a_sample_in_a_minute_the_build_has_is_not_counted_again(make_sidecar, tmp_path):
    host = "host-built"
    now = datetime.now(UTC).replace(tzinfo=None)
    built = minute(now) - timedelta(minutes=3)
    if built.minute == 59:  # the build's minute and the next one in one hour, for the hourly check
        built -= timedelta(minutes=1)
    data_dir = tmp_path / "sidecar"
    last_build(data_dir, host, built)
    server = make_sidecar(data_dir=data_dir)
    agent = MetricsAgent(agent_settings(tmp_path / "agent", server.url))
    rolled_up = {**sample(host), "sampled_at": (built + timedelta(seconds=20)).isoformat(), "cpu_percent": 90.0}
    later = {**sample(host), "sampled_at": (built + timedelta(minutes=1, seconds=5)).isoformat(), "cpu_percent": 30.0}
    rolled_up["id"], later["id"] = f"{host}:a", f"{host}:b"
    assert agent.deliver([rolled_up, later]).sent == 2
    headers = {"Authorization": f"Bearer {server.token()}"}
    for time_range, start, cpu in [("1h", built, 10.0), ("1h", built + timedelta(minutes=1), 30.0),
                                   # Hourly: the build's 2 samples (avg 10) and the one it lacks, weighted.
                                   ("24h", built.replace(minute=0), round((10.0 * 2 + 30.0) / 3, 2))]:
        deadline = time.monotonic() + 30
        while True:
            body = requests.get(f"{server.url}/dashboard/metrics", params={"timeRange": time_range},
                                headers=headers, timeout=10).json()
            system = {b["start"]: b for b in body["system"]}
            got = system.get(start.isoformat() + "Z", {}).get("avgCpuPercent")
            if got == cpu or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == cpu, (time_range, start, system)


def test_while_the_sidecar_is_down_samples_land_here_and_are_sent_once_it_is_back(tmp_path):
    server = Sidecar(tmp_path / "sidecar", dict(SECRETS))  # its port is chosen, nothing listens yet
    agent_dir = tmp_path / "agent"
    agent = MetricsAgent(agent_settings(agent_dir, server.url), host="host-a")
    try:
        down = [agent.tick() for _ in range(3)]
        assert [(d.sent, d.landed, d.waiting) for d in down] == [(0, 1, 1), (0, 1, 2), (0, 1, 3)]
        while_down = landed_ids(agent_dir)
        assert len(set(while_down)) == 3  # the durable fallback: the next build has them

        server.start()

        async def scenario() -> list[dict]:
            async with websockets.connect(f"{server.ws_url}?token={server.token()}") as ws:
                await subscribe(ws, "metrics:realtime")
                back = await asyncio.to_thread(agent.tick)
                assert (back.sent, back.landed, back.waiting) == (4, 0, 0)
                return [(await recv_until(ws, "system.metrics"))["payload"] for _ in range(4)]

        received = asyncio.run(scenario())
        sent = landed_ids(tmp_path / "sidecar")
        assert sorted(sent) == sorted(p["id"] for p in received)
        assert len(sent) == len(set(sent)) == 4 and set(while_down) < set(sent)
        assert landed_ids(agent_dir) == while_down  # nothing landed here twice either

        # An answer lost after the sidecar landed the samples (and a crash of the sidecar since):
        # the agent sends them again, the sidecar does not land them again.
        server.restart()
        first_two = [s for s in landed(agent_dir) if s["id"] in while_down[:2]]
        agent.outbox.add([{k: v for k, v in s.items() if k != "_received_at"} for s in first_two])
        again = agent.deliver([])
        assert (again.sent, again.waiting) == (2, 0)
        assert sorted(landed_ids(tmp_path / "sidecar")) == sorted(sent)
    finally:
        agent.close()
        if server.proc is not None:
            server.stop()


def test_an_answer_the_agent_gave_up_on_is_landed_once_by_the_sidecar(tmp_path):
    # A slow disk: the sidecar lands the batch after the agent stopped waiting for its answer.
    server = Sidecar(tmp_path / "sidecar", {**SECRETS, "CC_FAULT_FSYNC_DELAY_S": "1"}).start()
    agent = MetricsAgent(agent_settings(tmp_path / "agent", server.url), host="host-slow", read_timeout_s=0.2)
    try:
        first = agent.tick()
        assert (first.sent, first.landed, first.waiting) == (0, 1, 1)
        deadline = time.monotonic() + 30
        while agent.outbox and time.monotonic() < deadline:  # sent again until one answer comes in time
            time.sleep(0.5)
            agent.deliver([])
        assert len(agent.outbox) == 0
        assert landed_ids(tmp_path / "sidecar") == landed_ids(tmp_path / "agent")  # the one sample, once each
    finally:
        agent.close()
        server.stop()


def test_a_batch_the_sidecar_refuses_for_good_stays_in_the_landing_log_only(make_sidecar, tmp_path):
    server = make_sidecar()
    agent = MetricsAgent(agent_settings(tmp_path / "agent", server.url))
    bad = {"id": "host-x:1", "host": "host-x", "sampled_at": datetime.now(UTC).replace(tzinfo=None).isoformat(),
           "cpu_percent": "lots"}
    done = agent.deliver([bad])
    assert (done.sent, done.landed, done.waiting) == (0, 1, 0)
    assert landed_ids(tmp_path / "agent") == ["host-x:1"] and landed_ids(server.data_dir) == []


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_without_the_right_token_samples_are_landed_and_a_token_later_sends_them(make_sidecar, tmp_path, token):
    server = make_sidecar()
    agent_dir = tmp_path / "agent"
    env = {"CC_DATA_DIR": str(agent_dir), "CC_SIDECAR_URL": server.url}
    agent = MetricsAgent(Settings.from_env({**env, **({"CC_EVENTS_API_TOKEN": token} if token else {})}))
    done = agent.tick()
    assert (done.sent, done.landed) == (0, 1)
    assert len(agent.outbox) == (1 if token else 0)  # a wrong token is kept for a fixed one; none only lands
    agent.close()
    fixed = MetricsAgent(agent_settings(agent_dir, server.url))
    fixed.deliver([])
    assert landed_ids(server.data_dir) == (landed_ids(agent_dir) if token else [])
    fixed.close()
