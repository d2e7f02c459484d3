"""Rate limits per token and action (`streaming/ratelimit.py`), against real sidecar processes and a
real Redis: a token over its limit is refused 429 with when to retry, and nobody else is."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis
import requests
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from resources.settings import Settings
from streaming.ratelimit import CLOSE_RATE_LIMITED, RateLimits


def read(server, token: str) -> requests.Response:
    return requests.get(f"{server.url}/api/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def github(server, sign) -> requests.Response:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    return requests.post(f"{server.url}/webhooks/github", data=body, headers=sign.github(body, "ping"), timeout=10)


def assert_refused(response: requests.Response, limit: int, window_s: int) -> None:
    assert response.status_code == 429, response.text
    retry = int(response.headers["Retry-After"])
    assert 0 < retry <= window_s
    assert response.headers["RateLimit-Limit"] == str(limit) and response.headers["RateLimit-Remaining"] == "0"
    assert f"q={limit};w={window_s}" in response.headers["RateLimit-Policy"]
    assert f"t={retry}" in response.headers["RateLimit"]


def test_a_token_over_its_read_limit_gets_429_and_another_token_and_the_webhooks_do_not(make_sidecar, sign):
    server = make_sidecar({"CC_RATE_LIMIT_READ": "3/minute"})
    alice, bob = server.token("alice"), server.token("bob")
    assert [read(server, alice).status_code for _ in range(3)] == [200, 200, 200]
    assert_refused(read(server, alice), 3, 60)
    assert read(server, bob).status_code == 200  # a limit is the token's own
    assert [github(server, sign).status_code for _ in range(3)] == [200, 200, 200]  # senders count apart
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    # Without a valid token nothing is counted: the route's 401 says what is wrong.
    refused = requests.get(f"{server.url}/api/alerts", headers={"Authorization": "Bearer forged"}, timeout=10)
    assert refused.status_code == 401


def test_two_replicas_share_a_tokens_limit_through_redis(make_sidecar, redis_url):
    channel = f"cc-test-{uuid.uuid4().hex}"
    env = {"CC_REDIS_URL": f"{redis_url}?channel={channel}", "CC_RATE_LIMIT_READ": "4/minute"}
    a, b = make_sidecar(env), make_sidecar(env)
    token = a.token("carol")
    assert [read(server, token).status_code for server in (a, b, a, b)] == [200] * 4
    assert_refused(read(b, token), 4, 60)
    assert_refused(read(a, token), 4, 60)
    # Under the seeds' key (`rate_limit:{user_id}:{action}`), behind the URL's channel.
    held = redis.Redis.from_url(redis_url)
    assert held.llen(f"{channel}:rate_limit:carol:read") == 4
    held.delete(f"{channel}:rate_limit:carol:read")


def test_without_a_channel_the_key_is_the_seeds_one(redis_url):
    user = f"user-{uuid.uuid4().hex[:8]}"
    limits = RateLimits(Settings.from_env({"CC_RATE_LIMIT_COMMAND": "2/minute"}), redis_url)

    async def three() -> list:
        try:
            return [await limits.hit(user, "command") for _ in range(3)]
        finally:
            await limits.close()

    first, second, third = asyncio.run(three())
    assert first is None and second is None and third is not None and third.retry_after_s <= 60
    held = redis.Redis.from_url(redis_url)
    assert held.llen(f"rate_limit:{user}:command") == 2
    held.delete(f"rate_limit:{user}:command")


def test_a_webhook_sender_has_a_limit_of_its_own(make_sidecar, sign):
    server = make_sidecar({"CC_RATE_LIMIT_WEBHOOK": "2/minute", "CC_RATE_LIMIT_READ": "2/minute",
                           "CC_RATE_LIMIT_OVERRIDES": json.dumps({"webhook:charlie": "unlimited"})})
    unsigned = requests.post(f"{server.url}/webhooks/github", data=b"{}", timeout=10,
                             headers={"X-Hub-Signature-256": "sha256=00", "X-GitHub-Event": "ping",
                                      "X-GitHub-Delivery": "x"})
    assert unsigned.status_code == 401  # not verified: not the sender's, not counted
    assert [github(server, sign).status_code for _ in range(2)] == [200, 200]
    assert_refused(github(server, sign), 2, 60)
    token = server.token("dave")
    assert [read(server, token).status_code for _ in range(2)] == [200, 200]  # the token's reads are its own
    for n in range(4):  # an override by source: Charlie is not limited
        body = json.dumps({"kind": "charlie.activity", "data": {"n": n}}).encode()
        response = requests.post(f"{server.url}/webhooks/charlie", data=body, timeout=10,
                                 headers=sign.signed(body, sign.secrets["CC_CHARLIE_WEBHOOK_SECRET"]))
        assert response.status_code == 202, response.text


def test_websocket_connections_count_as_subscribe(make_sidecar):
    server = make_sidecar({"CC_RATE_LIMIT_SUBSCRIBE": "2/minute"})
    token = server.token("erin")

    async def scenario() -> None:
        async with websockets.connect(f"{server.ws_url}?token={token}"), \
                websockets.connect(f"{server.ws_url}?token={token}"):
            pass
        with pytest.raises(InvalidStatus) as refused:  # the token is in the handshake: refused there
            async with websockets.connect(f"{server.ws_url}?token={token}"):
                pass
        assert refused.value.response.status_code == 429
        assert int(refused.value.response.headers["Retry-After"]) > 0
        # The token in the first message: closed as soon as it is read.
        async with websockets.connect(server.ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == CLOSE_RATE_LIMITED
        # Another user connects as before.
        async with websockets.connect(f"{server.ws_url}?token={server.token('frank')}") as ws:
            await ws.send(json.dumps({"type": "ping"}))
            types = {json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] for _ in range(2)}
            assert "pong" in types

    asyncio.run(scenario())


def test_the_in_process_window_slides_hit_by_hit():
    """Without Redis: the window counts the hits of the last second exactly, and a hit frees its
    place when it ages out of the window, not when a fixed window rolls over."""
    import time

    from streaming.ratelimit import LocalWindows, parse

    windows, (item,) = LocalWindows(), parse("3/second")
    assert [windows.hit(item, "alice", "read") for _ in range(4)] == [True, True, True, False]
    assert windows.hit(item, "bob", "read")  # another key, another window
    stats = windows.get_window_stats(item, "alice", "read")
    assert stats.remaining == 0 and 0 < stats.reset_time - time.time() <= 1
    time.sleep(0.6)
    assert not windows.hit(item, "alice", "read")  # the first three are still in the last second
    time.sleep(0.5)
    assert [windows.hit(item, "alice", "read") for _ in range(4)] == [True, True, True, False]
    assert not windows.hit(item, "alice", "read", cost=2)
