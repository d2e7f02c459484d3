"""Two sidecar replicas sharing rooms through a real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid

import requests
import websockets


async def recv_until(ws, type_: str, timeout: float = 5.0) -> dict:
    async def loop():
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == type_:
                return message
    return await asyncio.wait_for(loop(), timeout)


def test_an_event_posted_to_replica_a_reaches_a_client_of_replica_b(make_sidecar, redis_url, sign, github_fixtures):
    url = f"{redis_url}?channel=cc-test-{uuid.uuid4().hex}"
    a = make_sidecar({"CC_REDIS_URL": url})
    b = make_sidecar({"CC_REDIS_URL": url})
    assert requests.get(f"{b.url}/healthz", timeout=5).json()["broker"].startswith("redis://")
    body = (github_fixtures / "pull_request" / "opened.payload.json").read_bytes()

    async def scenario():
        async with websockets.connect(f"{b.ws_url}?token={b.token()}") as on_b, \
                websockets.connect(f"{a.ws_url}?token={a.token()}") as on_a:
            for ws in (on_b, on_a):
                await ws.send(json.dumps({"type": "subscribe",
                                          "rooms": ["events:all", "workflows:github:codertocat/hello-world#2"]}))
                await recv_until(ws, "subscribed")
            response = await asyncio.to_thread(
                requests.post, f"{a.url}/webhooks/github", data=body, headers=sign.github(body, "pull_request"),
                timeout=10)
            assert response.status_code == 202
            for ws in (on_b, on_a):
                rooms = set()
                for _ in range(2):
                    message = await recv_until(ws, "github.pr.opened")
                    rooms.add(message["room"])
                    assert message["payload"]["id"] == "github:pr:codertocat/hello-world#2:opened"
                assert rooms == {"events:all", "workflows:github:codertocat/hello-world#2"}
            # Each replica delivers each message once (its own publish comes back through Redis once).
            await asyncio.sleep(0.3)
            for ws in (on_b, on_a):
                try:
                    extra = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                except TimeoutError:
                    extra = None
                assert extra is None or extra["type"] != "github.pr.opened"

    asyncio.run(scenario())
    # Replica B holds the event among its live events too (what its REST reads merge with the
    # marts until the next build), and neither replica holds it twice.
    assert [requests.get(f"{s.url}/healthz", timeout=5).json()["live_events"] for s in (a, b)] == [1, 1]


def test_a_socket_io_client_of_replica_b_gets_an_event_posted_to_replica_a(make_sidecar, redis_url, sign,
                                                                           github_fixtures):
    import socketio

    url = f"{redis_url}?channel=cc-test-{uuid.uuid4().hex}"
    a = make_sidecar({"CC_REDIS_URL": url})
    b = make_sidecar({"CC_REDIS_URL": url})
    body = (github_fixtures / "pull_request" / "opened.payload.json").read_bytes()

    async def scenario():
        client = socketio.AsyncClient(reconnection=False)
        got: asyncio.Queue = asyncio.Queue()
        client.on("github.pr.opened", got.put)
        await client.connect(b.url, auth={"token": b.token()}, transports=["websocket"], wait_timeout=5)
        await client.call("subscribe", {"rooms": ["events:all"]}, timeout=5)
        response = await asyncio.to_thread(
            requests.post, f"{a.url}/webhooks/github", data=body, headers=sign.github(body, "pull_request"), timeout=10)
        assert response.status_code == 202
        message = await asyncio.wait_for(got.get(), 5)
        assert message["room"] == "events:all"
        assert message["payload"]["id"] == "github:pr:codertocat/hello-world#2:opened"
        await client.disconnect()

    asyncio.run(scenario())
