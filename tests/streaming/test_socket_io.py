"""Socket.IO at /socket.io/: the python-socketio client and the real JS `socket.io-client`, against a
real uvicorn, receiving signed GitHub webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import subprocess
import time

import requests
import socketio

PR_ROOM = "workflows:github:codertocat/hello-world#2"


def post_pr(server, sign, github_fixtures, delivery=None) -> dict:
    body = (github_fixtures / "pull_request" / "opened.payload.json").read_bytes()
    response = requests.post(f"{server.url}/webhooks/github", data=body,
                             headers=sign.github(body, "pull_request", delivery), timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


class Recorder:
    """A python-socketio AsyncClient that records every event it gets."""

    def __init__(self, **client_args) -> None:
        self.sio = socketio.AsyncClient(reconnection=False, **client_args)
        self.events: list[tuple[str, object]] = []
        self.arrived = asyncio.Event()
        self.refused: object = None
        self.sio.on("*", self._any)
        self.sio.on("connect_error", self._refused)

    async def _any(self, event, data=None) -> None:
        self.events.append((event, data))
        self.arrived.set()

    async def _refused(self, data=None) -> None:
        self.refused = data

    async def connect(self, server, auth) -> None:
        await self.sio.connect(server.url, auth=auth, transports=["websocket"], wait_timeout=5)

    async def wait_for(self, event: str, timeout: float = 5.0, count: int = 1) -> list:
        deadline = time.monotonic() + timeout
        while True:
            found = [data for name, data in self.events if name == event]
            if len(found) >= count:
                return found
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), max(0.01, deadline - time.monotonic()))


def test_python_client_gets_a_signed_webhooks_event_in_its_rooms(sidecar, sign, github_fixtures):
    async def scenario():
        everything, scoped = Recorder(), Recorder()
        await everything.connect(sidecar, {"token": sidecar.token()})
        await scoped.connect(sidecar, {"token": sidecar.token("scoped", rooms=["workflows:*"])})
        ack = await everything.sio.call("subscribe", {"rooms": ["events:all", PR_ROOM, "nope"]}, timeout=5)
        assert ack == {"rooms": ["events:all", PR_ROOM], "denied": [{"room": "nope", "reason": "no such room"}]}
        ack = await scoped.sio.call("subscribe", {"rooms": ["events:all", PR_ROOM]}, timeout=5)
        assert ack["rooms"] == [PR_ROOM] and "claim" in ack["denied"][0]["reason"]
        assert (await scoped.wait_for("subscribed"))[0]["payload"] == ack

        answer = await asyncio.to_thread(post_pr, sidecar, sign, github_fixtures)
        messages = await everything.wait_for("github.pr.opened", count=2)
        assert {m["room"] for m in messages} == {"events:all", PR_ROOM}
        for m in messages:
            assert set(m) == {"type", "room", "timestamp", "payload"}
            assert m["type"] == "github.pr.opened" and m["payload"]["id"] == answer["events"][0]
            assert m["payload"]["workflow"]["id"] == "github:codertocat/hello-world#2"
        [only] = await scoped.wait_for("github.pr.opened")
        assert only["room"] == PR_ROOM

        assert (await everything.sio.call("unsubscribe", {"rooms": ["events:all"]}, timeout=5)) == {"rooms": [PR_ROOM]}
        # The same PR delivered again (a new delivery id) is the same event again: an update, not a
        # second `opened`, and only in the rooms still joined.
        await asyncio.to_thread(post_pr, sidecar, sign, github_fixtures)
        [again] = await everything.wait_for("github.pr.updated")
        assert again["room"] == PR_ROOM and again["payload"]["id"] == answer["events"][0]
        await asyncio.sleep(0.3)
        assert len([1 for name, _ in everything.events if name == "github.pr.opened"]) == 2
        await everything.sio.disconnect()
        await scoped.sio.disconnect()

    asyncio.run(scenario())


def test_workflows_wildcard_is_refused_and_workflows_all_joined_as_on_ws(sidecar):
    async def scenario():
        everything, scoped = Recorder(), Recorder()
        await everything.connect(sidecar, {"token": sidecar.token()})
        await scoped.connect(sidecar, {"token": sidecar.token("scoped", rooms=["workflows:linear:*"])})
        ack = await everything.sio.call("subscribe", {"rooms": ["workflows:*", "workflows:all"]}, timeout=5)
        assert ack["rooms"] == ["workflows:all"] and [d["room"] for d in ack["denied"]] == ["workflows:*"]
        assert "join `workflows:all`" in ack["denied"][0]["reason"]
        ack = await scoped.sio.call("subscribe", {"rooms": ["workflows:all", "workflows:linear:ENG-1"]}, timeout=5)
        assert ack["rooms"] == ["workflows:linear:ENG-1"]
        assert ack["denied"] == [{"room": "workflows:all", "reason": "the token's rooms claim does not allow it"}]
        await everything.sio.disconnect()
        await scoped.sio.disconnect()

    asyncio.run(scenario())


def test_bad_missing_and_expired_tokens_are_refused_with_the_reason(sidecar):
    async def refused(auth) -> str:
        client = Recorder()
        try:
            await client.connect(sidecar, auth)
        except socketio.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError(f"{auth} was let in")
        return client.refused["message"]

    async def scenario():
        assert "invalid token" in await refused({"token": "not-a-jwt"})
        assert await refused({}) == "no token"
        assert await refused({"token": sidecar.token(ttl_s=-5)}) == "token expired"
        # Valid when connecting, expires while connected: a notice, then the server disconnects.
        client = Recorder()
        await client.connect(sidecar, {"token": sidecar.token(ttl_s=2)})
        [notice] = await client.wait_for("notice", timeout=6)
        assert notice["payload"]["code"] == "token_expired"
        deadline = time.monotonic() + 5
        while client.sio.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not client.sio.connected

    asyncio.run(scenario())


def test_batching_client_gets_arrays_of_messages(make_sidecar, sign):
    server = make_sidecar()
    records = [{"instance_id": "charlie-alpha", "type": "task.progress", "timestamp": "2026-01-05T10:00:00Z",
                "id": f"b-{i}", "message": "m"} for i in range(300)]

    async def scenario():
        client = Recorder()
        await client.connect(server, {"token": server.token(), "batch": True})
        await client.sio.call("subscribe", {"rooms": ["events:all"]}, timeout=5)
        body = json.dumps({"kind": "charlie.activity", "data": records}).encode()
        response = await asyncio.to_thread(requests.post, f"{server.url}/events", data=body,
                                           headers=sign.bearer(), timeout=10)
        assert response.status_code == 202
        deadline = time.monotonic() + 10
        while True:
            got = [m for name, batch in client.events if name == "batch" for m in batch
                   if m["type"] == "charlie.task.progress"]
            if len(got) == 300 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert [m["payload"]["id"] for m in got] == [f"charlie:activity:b-{i}" for i in range(300)]
        assert {name for name, _ in client.events} == {"batch"}
        await client.sio.disconnect()

    asyncio.run(scenario())


class StalledSocketIO:
    """A Socket.IO client over a raw socket with a tiny receive buffer that subscribes and then
    never reads again (see test_ws.StalledClient)."""

    def __init__(self, port: int, token: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self._read_until(b"\r\n\r\n")  # 101 Switching Protocols
        self._read_until(b"0{")  # Engine.IO's open packet
        self._send("40" + json.dumps({"token": token}))
        self._read_until(b"40{")  # connected to the namespace
        self._send('42["subscribe",{"rooms":["events:all"]}]')
        self.buffer = b""

    def _read_until(self, marker: bytes) -> None:
        self.buffer = getattr(self, "buffer", b"")
        while marker not in self.buffer:
            self.buffer += self.sock.recv(4096)
        self.buffer = self.buffer.split(marker, 1)[1]

    def _send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        header = bytes([0x81, 0x80 | len(data)]) if len(data) < 126 else \
            bytes([0x81, 0x80 | 126]) + len(data).to_bytes(2, "big")
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def test_a_stalled_client_does_not_delay_a_fast_one_and_is_dropped(make_sidecar, sign):
    server = make_sidecar({"CC_WS_QUEUE_MAX": "50", "CC_WS_SLOW_AFTER_S": "1"})
    padding = "x" * 16000
    total = 1000

    async def scenario():
        slow = StalledSocketIO(server.port, server.token("slow"))
        fast = Recorder()
        await fast.connect(server, {"token": server.token("fast")})
        await fast.sio.call("subscribe", {"rooms": ["events:all"]}, timeout=5)
        started = time.monotonic()
        for batch in range(total // 50):
            records = [{"instance_id": "charlie-alpha", "type": "task.progress", "timestamp": "2026-01-05T10:00:00Z",
                        "id": f"s-{batch}-{i}", "message": padding} for i in range(50)]
            body = json.dumps({"kind": "charlie.activity", "data": records}).encode()
            response = await asyncio.to_thread(requests.post, f"{server.url}/events", data=body,
                                               headers=sign.bearer(), timeout=30)
            assert response.status_code == 202
        await fast.wait_for("charlie.task.progress", timeout=30, count=total)
        assert time.monotonic() - started < 20
        # The stalled one has been full for longer than CC_WS_SLOW_AFTER_S: the next message drops it.
        await asyncio.sleep(1.5)
        body = json.dumps({"kind": "charlie.activity", "data": [{
            "instance_id": "charlie-alpha", "type": "task.progress", "timestamp": "2026-01-05T10:00:00Z",
            "id": "s-last", "message": padding}]}).encode()
        await asyncio.to_thread(requests.post, f"{server.url}/events", data=body, headers=sign.bearer(), timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            health = (await asyncio.to_thread(requests.get, f"{server.url}/healthz", timeout=5)).json()
            if health["slow_clients_closed"] >= 1:
                break
            await asyncio.sleep(0.2)
        assert health["slow_clients_closed"] == 1 and health["clients"] == 1  # the fast one stays
        assert fast.sio.connected
        await fast.sio.disconnect()
        slow.sock.close()

    asyncio.run(scenario())


def test_the_js_socket_io_client_as_the_seeds_write_it(sidecar, sign, github_fixtures, node_js):
    client = subprocess.Popen(["node", "client.mjs", sidecar.url, sidecar.token(), f"events:all,{PR_ROOM}", "2"],
                              cwd=node_js, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(client.stdout.readline())
        if first["event"] == "subscribed":
            first = json.loads(client.stdout.readline())
        assert first == {"event": "subscribe_ack", "data": {"rooms": ["events:all", PR_ROOM], "denied": []}}
        answer = post_pr(sidecar, sign, github_fixtures)
        out, err = client.communicate(timeout=20)
    finally:
        client.kill()
    assert client.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    events = [line for line in lines if line["event"] == "github.pr.opened"]
    assert {e["data"]["room"] for e in events} == {"events:all", PR_ROOM}
    for e in events:
        assert set(e["data"]) == {"type", "room", "timestamp", "payload"}
        assert e["data"]["payload"]["id"] == answer["events"][0]


def test_the_js_client_is_refused_with_a_bad_token(sidecar, node_js):
    result = subprocess.run(["node", "client.mjs", sidecar.url, sidecar.token(ttl_s=-5), "events:all"],
                            cwd=node_js, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout.splitlines()[0]) == {"event": "connect_error", "data": {"message": "token expired"}}
