"""Linear state changes and comments pushed live, landed for the marts; Charlie's bearer token.

Real HTTP to a real uvicorn, real WebSocket clients; the Linear bodies are built from Linear's
documented payload shape (tests/conftest.py `linear_webhooks`) and signed as Linear signs them."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pyarrow.parquet as pq
import requests
import websockets
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from cc_assets.normalized import normalized_events
from cc_assets.sources import raw_assets
from resources.platform import PlatformResource
from sensors.webhooks import webhooks_sensor

ROOM = "workflows:linear:ENG-42"
STATE_CHANGE_ID = "linear:issue:lin-42:state_changed:1767609000000"


def post_linear(sidecar, sign, payload: dict, timestamp_ms: int | None = None, secret: str | None = None):
    body = sign.linear_body(payload, timestamp_ms)
    headers = sign.linear(body, payload["type"], **({"secret": secret} if secret else {}))
    return requests.post(f"{sidecar.url}/webhooks/linear", data=body, headers=headers, timeout=10)


async def recv_until(ws, type_: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if message["type"] == type_:
            return message


async def received(sidecar, sign, payload: dict, type_: str) -> tuple[dict, dict, dict]:
    """Post `payload` while one client listens on `events:all` and one on the issue's workflow."""
    async with websockets.connect(f"{sidecar.ws_url}?token={sidecar.token()}") as everything, \
            websockets.connect(f"{sidecar.ws_url}?token={sidecar.token('scoped', rooms=['workflows:*'])}") as scoped:
        for ws, room in ((everything, "events:all"), (scoped, ROOM)):
            await ws.send(json.dumps({"type": "subscribe", "rooms": [room]}))
            assert (await recv_until(ws, "subscribed"))["payload"]["rooms"] == [room]
        answer = await asyncio.to_thread(post_linear, sidecar, sign, payload)
        assert answer.status_code == 202, answer.text
        return answer.json(), await recv_until(everything, type_), await recv_until(scoped, type_)


def test_a_state_change_reaches_the_rooms_at_once_and_is_landed(sidecar, sign, linear_webhooks):
    answer, everywhere, in_workflow = asyncio.run(
        received(sidecar, sign, linear_webhooks.state_changed(), "linear.issue.state_changed"))
    assert answer["status"] == "normalized" and answer["events"] == [STATE_CHANGE_ID]
    assert (everywhere["room"], in_workflow["room"]) == ("events:all", ROOM)
    event = in_workflow["payload"]
    assert event == everywhere["payload"]
    assert event["id"] == STATE_CHANGE_ID and event["workflow"]["id"] == "linear:ENG-42"
    assert event["target"] == {"type": "issue", "id": "ENG-42", "title": "Fix login",
                               "url": "https://linear.app/acme/issue/ENG-42/fix-login"}
    assert event["payload"] == {"identifier": "ENG-42", "from": None, "to": "In Progress", "to_type": "started"}
    assert event["metadata"]["correlationKeys"] == ["linear:ENG-42"]
    [landed] = sidecar.landed()
    assert (landed["source"], landed["event"], landed["action"], landed["status"]) == \
        ("linear", "Issue", "update", "normalized")
    assert landed["payload"]["updatedFrom"]["stateId"] == "state-todo"


def test_a_comment_reaches_the_rooms_at_once_and_is_landed(sidecar, sign, linear_webhooks):
    answer, everywhere, in_workflow = asyncio.run(
        received(sidecar, sign, linear_webhooks.comment_created(), "linear.comment.created"))
    assert answer["events"] == ["linear:comment:cmt-7"]
    assert (everywhere["room"], in_workflow["room"]) == ("events:all", ROOM)
    event = in_workflow["payload"]
    assert event["id"] == "linear:comment:cmt-7" and event["actor"]["name"] == "Ann Lee"
    assert event["metadata"]["parentEventId"] == "linear:issue:lin-42:created"
    assert [r["status"] for r in sidecar.landed()] == ["normalized"]


def test_linear_updates_removes_and_bad_input(sidecar, sign, linear_webhooks):
    # An update that moves no state and a remove are landed raw: the poll has no event for them.
    for payload in (linear_webhooks.reassigned(), linear_webhooks.issue_removed(),
                    linear_webhooks.comment_created(action="remove")):
        response = post_linear(sidecar, sign, payload)
        assert response.status_code == 202 and response.json()["status"] == "raw", response.text
    # Signed with another secret, or stale: refused before anything is landed.
    change = linear_webhooks.state_changed()
    assert post_linear(sidecar, sign, change, secret="wrong").status_code == 401
    stale = post_linear(sidecar, sign, change, int(time.time() * 1000) - 61_000)
    assert stale.status_code == 401 and "webhookTimestamp" in stale.json()["detail"]
    # Signed, but a state change without the state it moved to: a dead letter with the reason.
    broken = {**change, "data": {**change["data"], "state": None}}
    response = post_linear(sidecar, sign, broken)
    assert response.status_code == 202 and response.json()["status"] == "dead_letter"
    assert "state" in response.json()["reason"]
    assert [r["status"] for r in sidecar.landed()] == ["raw", "raw", "raw", "dead_letter"]


def test_linear_deliveries_reach_the_normalized_events(make_sidecar, sign, linear_webhooks):
    """Landing log → raw/webhooks/deliveries → normalized/events: what dbt reads, with the ids the
    sidecar answered (the state change pairs with the poll's history entry in dbt)."""
    server = make_sidecar()
    ids = []
    for payload in (linear_webhooks.issue_created(), linear_webhooks.state_changed(),
                    linear_webhooks.comment_created(), linear_webhooks.reassigned()):
        response = post_linear(server, sign, payload)
        assert response.status_code == 202, response.text
        ids.extend(response.json()["events"])
    assert ids == ["linear:issue:lin-42:created", STATE_CHANGE_ID, "linear:comment:cmt-7"]
    server.stop()

    today = datetime.now(UTC).date().isoformat()
    platform = PlatformResource(data_dir=str(server.data_dir))
    assert [r.partition_key for r in webhooks_sensor(build_sensor_context(resources={"platform": platform}))] == [today]
    raw = next(a for a in raw_assets if a.key == AssetKey(["raw", "webhooks", "deliveries"]))
    assert materialize([raw, normalized_events], partition_key=today, resources={"platform": platform},
                       instance=DagsterInstance.ephemeral(), selection=[raw.key, *normalized_events.keys]).success
    lake = server.data_dir / "lake" / "normalized"
    events = pq.read_table(lake / "events" / f"date={today}" / "part-0.parquet").to_pylist()
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    change = next(e for e in events if e["event_id"] == STATE_CHANGE_ID)
    assert change["event_type"] == "linear.issue.state_changed" and change["target_id"] == "ENG-42"
    keys = pq.read_table(lake / "event_keys" / f"date={today}" / "part-0.parquet").to_pylist()
    assert {(k["event_id"], k["correlation_key"]) for k in keys} == {(i, "linear:ENG-42") for i in ids}


def test_charlie_takes_its_secret_as_a_bearer_token(sidecar, sign):
    activity = {"id": "act-31", "instance_id": "charlie-alpha", "type": "task.started",
                "timestamp": "2026-01-05T10:00:00Z", "issue_key": "ENG-42", "message": "on it"}
    body = json.dumps(activity).encode()
    secret = sign.secrets["CC_CHARLIE_WEBHOOK_SECRET"]

    def post(headers):
        return requests.post(f"{sidecar.url}/webhooks/charlie", data=body, headers=headers, timeout=10)

    response = post(sign.bearer(secret))
    assert response.status_code == 202 and response.json()["events"] == ["charlie:activity:act-31"]
    for refused in (sign.bearer("wrong"), sign.bearer(sign.secrets["CC_EVENTS_API_TOKEN"]),
                    {"Content-Type": "application/json", "Authorization": secret},  # no scheme
                    {**sign.bearer(secret), "X-Signature-256": "sha256=" + "0" * 64}):  # a signature that fails
        answer = post(refused)
        assert answer.status_code == 401, refused
        assert "Bearer" in answer.json()["detail"]
    assert [r["delivery_id"] for r in sidecar.landed()] == [response.json()["delivery"].split(":", 1)[1]]
