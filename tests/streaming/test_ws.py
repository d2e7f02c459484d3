"""Rooms out over `/ws`, with real `websockets` clients against a real uvicorn."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time

import duckdb
import pytest
import requests
import websockets
from websockets.exceptions import ConnectionClosed

from scripts.chaos.traffic import StalledWebSocket

ACTIVITY = {"instance_id": "charlie-alpha", "type": "task.progress", "timestamp": "2026-01-05T10:00:00Z",
            "repo": "acme/api", "pr_number": 7, "message": "working on it"}


async def recv_json(ws, timeout=5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws, type_: str, timeout=5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] == type_:
            return message


async def subscribe(ws, *rooms) -> dict:
    await ws.send(json.dumps({"type": "subscribe", "rooms": list(rooms)}))
    return await recv_until(ws, "subscribed")


def push(sidecar, sign, records, kind="charlie.activity"):
    body = json.dumps({"kind": kind, "data": records}).encode()
    response = requests.post(f"{sidecar.url}/events", data=body, headers=sign.bearer(), timeout=30)
    assert response.status_code == 202, response.text
    return response.json()


async def closed_code(ws, timeout=5.0) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return closed.value.rcvd.code


def test_token_by_query_or_first_message_and_events_reach_their_rooms(sidecar, sign):
    async def scenario():
        async with websockets.connect(f"{sidecar.ws_url}?token={sidecar.token()}") as by_query, \
                websockets.connect(sidecar.ws_url) as by_message:
            await by_message.send(json.dumps({"type": "auth", "token": sidecar.token("other")}))
            assert (await recv_json(by_message))["type"] == "connection"
            assert (await subscribe(by_query, "events:all"))["payload"]["rooms"] == ["events:all"]
            await subscribe(by_message, "workflows:github:acme/api#7", "alerts:all")
            await asyncio.to_thread(push, sidecar, sign, {**ACTIVITY, "id": "a-1"})
            event = await recv_until(by_query, "charlie.task.progress")
            assert event["room"] == "events:all" and event["payload"]["id"] == "charlie:activity:a-1"
            assert set(event) == {"type", "room", "timestamp", "payload"}
            in_workflow = await recv_until(by_message, "charlie.task.progress")
            assert in_workflow["room"] == "workflows:github:acme/api#7"
            assert in_workflow["payload"]["workflow"]["id"] == "github:acme/api#7"
            await asyncio.to_thread(push, sidecar, sign, {**ACTIVITY, "id": "a-2", "type": "task.failed"})
            alerts = {(await recv_json(by_message))["room"] for _ in range(2)}
            assert alerts == {"alerts:all", "workflows:github:acme/api#7"}
            await by_query.send(json.dumps({"type": "unsubscribe", "rooms": ["events:all"]}))
            assert (await recv_until(by_query, "unsubscribed"))["payload"]["rooms"] == []

    asyncio.run(scenario())


def test_bad_missing_and_expired_tokens_close_with_4401(sidecar):
    async def scenario():
        async with websockets.connect(f"{sidecar.ws_url}?token=not-a-jwt") as ws:
            assert await closed_code(ws) == 4401
        forged = sidecar.token().rsplit(".", 1)[0] + ".AAAA"
        async with websockets.connect(f"{sidecar.ws_url}?token={forged}") as ws:
            assert await closed_code(ws) == 4401
        async with websockets.connect(sidecar.ws_url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
            assert await closed_code(ws) == 4401
        async with websockets.connect(f"{sidecar.ws_url}?token={sidecar.token(ttl_s=-5)}") as ws:
            assert await closed_code(ws) == 4401
        # Valid when connecting, expires while connected.
        async with websockets.connect(f"{sidecar.ws_url}?token={sidecar.token(ttl_s=2)}") as ws:
            await subscribe(ws, "events:all")
            assert await closed_code(ws, timeout=6) == 4401

    asyncio.run(scenario())


def test_rooms_claim_limits_what_a_token_may_join(sidecar):
    async def scenario():
        token = sidecar.token(rooms=["dashboard:overview", "workflows:linear:*"])
        async with websockets.connect(f"{sidecar.ws_url}?token={token}") as ws:
            answer = await subscribe(ws, "dashboard:overview", "events:all", "workflows:linear:ENG-1", "nope")
            assert answer["payload"]["rooms"] == ["dashboard:overview", "workflows:linear:ENG-1"]
            denied = {d["room"]: d["reason"] for d in answer["payload"]["denied"]}
            assert set(denied) == {"events:all", "nope"} and "claim" in denied["events:all"]

    asyncio.run(scenario())


def test_a_room_name_with_a_wildcard_is_refused_with_the_room_to_join(sidecar):
    """The defect: `workflows:*` was joined and then sent nothing. Rooms are names: one with a `*`
    is refused, and the reason names `workflows:all`, the room of every workflow's updates."""
    async def scenario():
        async with websockets.connect(f"{sidecar.ws_url}?token={sidecar.token()}") as ws:
            answer = await subscribe(ws, "workflows:*", "workflows:linear:*", "events:*", "*", "workflows:all")
            assert answer["payload"]["rooms"] == ["workflows:all"]
            denied = {d["room"]: d["reason"] for d in answer["payload"]["denied"]}
            assert set(denied) == {"workflows:*", "workflows:linear:*", "events:*", "*"}
            for room, reason in denied.items():
                assert f"`{room}` is not a room" in reason and "join `workflows:all`" in reason, reason
        # Refused as a name before any grant is looked at: a token whose claim is `workflows:*` too.
        async with websockets.connect(f"{sidecar.ws_url}?token={sidecar.token(rooms=['workflows:*'])}") as ws:
            answer = await subscribe(ws, "workflows:*", "workflows:all", "workflows:linear:ENG-1")
            assert answer["payload"]["rooms"] == ["workflows:all", "workflows:linear:ENG-1"]
            [denied] = answer["payload"]["denied"]
            assert denied["room"] == "workflows:*" and "`workflows:all`" in denied["reason"]

    asyncio.run(scenario())


def test_dashboard_overview_gets_the_system_status_update_of_the_last_build(make_sidecar, tmp_path):
    data_dir = tmp_path / "data-status"
    snapshot = data_dir / "serving" / "marts.duckdb"
    snapshot.parent.mkdir(parents=True)
    with duckdb.connect(str(snapshot)) as con:
        con.execute("""create table system_status_update as select 5 as sessions_active,
            28.45::decimal(18,2) as sessions_total_cost, 15.2::decimal(18,2) as sessions_highest_cost,
            11 as cron_jobs_total, 11 as cron_jobs_healthy, 0 as cron_jobs_failed,
            'paper_trading' as trading_bot_status, 2.34::decimal(18,2) as trading_daily_pnl,
            timestamp '2026-02-13 10:45:00' as as_of_at""")
    server = make_sidecar(data_dir=data_dir)

    async def scenario():
        async with websockets.connect(f"{server.ws_url}?token={server.token()}") as ws:
            await subscribe(ws, "dashboard:overview")
            status = await recv_until(ws, "system.status.update", timeout=10)
            assert status == {"type": "system.status.update", "room": "dashboard:overview",
                              "timestamp": "2026-02-13T10:45:00Z", "payload": {
                                  "sessions": {"active": 5, "total_cost": 28.45, "highest_cost": 15.2},
                                  "cron_jobs": {"total": 11, "healthy": 11, "failed": 0},
                                  "trading_bot": {"status": "paper_trading", "daily_pnl": 2.34}}}

    asyncio.run(scenario())


def test_a_slow_client_does_not_delay_a_fast_one_and_is_dropped(make_sidecar, sign):
    server = make_sidecar({"CC_WS_QUEUE_MAX": "50", "CC_WS_SLOW_AFTER_S": "1"})
    padding = "x" * 16000  # 24 MB in all: far more than the socket buffers between them hold
    total = 1500

    async def scenario():
        slow = StalledWebSocket(server.port, server.token("slow"), rooms=("events:all",))
        async with websockets.connect(f"{server.ws_url}?token={server.token('fast')}") as fast:
            await subscribe(fast, "events:all")
            # From here on the slow client never reads: its TCP window fills, then its queue.
            got = 0

            async def read_fast():
                nonlocal got
                while got < total:
                    message = await recv_json(fast, timeout=10)
                    if message["type"] == "charlie.task.progress":
                        got += 1

            reader = asyncio.create_task(read_fast())
            started = time.monotonic()
            for batch in range(total // 50):
                records = [{**ACTIVITY, "id": f"s-{batch}-{i}", "message": padding} for i in range(50)]
                await asyncio.to_thread(push, server, sign, records)
            await asyncio.wait_for(reader, 30)
            elapsed = time.monotonic() - started
            assert got == total
            assert elapsed < 20
            # The slow client was cut off with 4408 once it stayed behind.
            await asyncio.sleep(1.5)
            await asyncio.to_thread(push, server, sign, [{**ACTIVITY, "id": "s-last", "message": padding}])
            frames = await asyncio.to_thread(lambda: list(slow.frames()))
            events = [f for op, f in frames if op == 0x1 and b"charlie.task.progress" in f]
            assert len(events) < total  # it missed messages: its queue was bounded
            close = [f for op, f in frames if op == 0x8]
            assert close and struct.unpack("!H", close[0][:2])[0] == 4408

    asyncio.run(scenario())


def test_a_slow_client_that_catches_up_gets_a_notice(make_sidecar, sign):
    server = make_sidecar({"CC_WS_QUEUE_MAX": "5", "CC_WS_SLOW_AFTER_S": "60"})

    async def scenario():
        async with websockets.connect(f"{server.ws_url}?token={server.token()}") as ws:
            await subscribe(ws, "events:all")
            # One request publishes 400 events in one go: far more than a 5-message queue holds.
            await asyncio.to_thread(push, server, sign,
                                    [{**ACTIVITY, "id": f"n-{i}", "message": "y" * 20000} for i in range(400)])
            notice = await recv_until(ws, "notice", timeout=15)
            assert notice["payload"]["code"] == "messages_dropped" and notice["payload"]["dropped"] > 0

    asyncio.run(scenario())


def test_a_batching_client_gets_json_arrays(sidecar, sign):
    async def scenario():
        async with websockets.connect(f"{sidecar.ws_url}?token={sidecar.token()}&batch=1") as ws:
            assert [m["type"] for m in json.loads(await ws.recv())] == ["connection"]
            await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
            await asyncio.to_thread(push, sidecar, sign, [{**ACTIVITY, "id": f"b-{i}"} for i in range(200)])
            got = []
            while len(got) < 200:
                got += [m for m in json.loads(await asyncio.wait_for(ws.recv(), 5)) if m["type"] != "subscribed"]
            assert [m["payload"]["id"] for m in got] == [f"charlie:activity:b-{i}" for i in range(200)]

    asyncio.run(scenario())


def test_a_lone_event_is_a_frame_of_its_own_and_a_deliverys_events_share_one(sidecar, sign):
    # Adaptive batching (the default): a quiet room's event is written at once, alone; the events
    # one request publishes go out together, in order, as one frame.
    async def scenario():
        async with websockets.connect(f"{sidecar.ws_url}?token={sidecar.token()}&batch=1") as ws:
            assert [m["type"] for m in json.loads(await ws.recv())] == ["connection"]
            await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
            assert [m["type"] for m in json.loads(await asyncio.wait_for(ws.recv(), 5))] == ["subscribed"]
            await asyncio.to_thread(push, sidecar, sign, {**ACTIVITY, "id": "lone"})
            lone = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert [m["payload"]["id"] for m in lone] == ["charlie:activity:lone"]
            await asyncio.to_thread(push, sidecar, sign, [{**ACTIVITY, "id": f"d-{i}"} for i in range(3)])
            together = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert [m["payload"]["id"] for m in together] == [f"charlie:activity:d-{i}" for i in range(3)]

    asyncio.run(scenario())


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_frames_encoded_once_are_what_a_websocket_client_parses(size):
    # `/ws` writes room frames it encoded itself (once per room turn, not per client): each length
    # form of RFC 6455 must read back, through the `websockets` library's own parser, as the text.
    from websockets.frames import Frame
    from websockets.protocol import Protocol, Side

    from streaming.ws import framed, framed_array

    text = ("é" + "x" * size)[:max(size, 1)] if size else ""
    client = Protocol(Side.CLIENT, max_size=None)
    client.receive_data(framed(text) + framed_array([json.dumps({"n": 1}), json.dumps({"n": 2})]))
    frames = client.events_received()
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.data.decode() for f in frames] == [text, '[{"n": 1},{"n": 2}]']


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_live_event_joins_a_workflow_of_the_last_build_in_its_room(make_sidecar, sign, tmp_path, request,
                                                                     warehouse):
    # The last build linked PR acme/api#5 to Linear ENG-12: a webhook about that PR alone belongs to
    # workflow linear:ENG-12, and its room gets it live, whichever warehouse the marts are in.
    data_dir = tmp_path / f"data-{warehouse}"
    rows = "select 'github:acme/api#5' as correlation_key, 'linear:ENG-12' as workflow_id"
    env: dict[str, str] = {}
    if warehouse == "duckdb":
        snapshot = data_dir / "serving" / "marts.duckdb"
        snapshot.parent.mkdir(parents=True)
        with duckdb.connect(str(snapshot)) as con:
            con.execute(f"create table int_correlation_keys_linked as {rows}")
            con.execute("create table dashboard_overview as select now() as as_of_at")
    else:
        import psycopg

        url, schema = request.getfixturevalue("pg_database"), f"ws_{os.getpid()}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"drop schema if exists {schema} cascade")
            conn.execute(f"create schema {schema}")
            conn.execute(f"create table {schema}.int_correlation_keys_linked as {rows}")
            conn.execute(f"create table {schema}.dashboard_overview as select now() as as_of_at")
        env = {"CC_WAREHOUSE": "postgres", "CC_PG_URL": url, "CC_PG_SCHEMA": schema}
    server = make_sidecar(env, data_dir=data_dir)
    stamp = "2026-02-13T10:45:00Z"
    body = json.dumps({"action": "synchronize", "number": 5, "repository": {"full_name": "acme/api"},
                       "sender": {"login": "octo", "type": "User"},
                       "pull_request": {"number": 5, "title": "Tidy up", "body": "", "state": "open", "draft": False,
                                        "created_at": stamp, "updated_at": stamp, "merged_at": None,
                                        "closed_at": None, "html_url": "https://github.com/acme/api/pull/5",
                                        "user": {"login": "octo", "type": "User"}, "head": {"ref": "tidy"},
                                        "base": {"repo": {"full_name": "acme/api"}}}}).encode()

    async def scenario():
        async with websockets.connect(f"{server.ws_url}?token={server.token()}") as ws:
            await subscribe(ws, "workflows:linear:ENG-12")
            response = await asyncio.to_thread(requests.post, f"{server.url}/webhooks/github", data=body,
                                               headers=sign.github(body, "pull_request"), timeout=10)
            assert response.status_code == 202, response.text
            event = await recv_json(ws)
            assert event["room"] == "workflows:linear:ENG-12"
            assert event["payload"]["workflow"]["id"] == "linear:ENG-12"
            assert event["payload"]["target"]["id"] == "acme/api#5"

    asyncio.run(scenario())
