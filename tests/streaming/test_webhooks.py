"""Webhooks in, over real HTTP to a real uvicorn: signatures, limits, dedupe, every fixture."""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid

import requests


def post(sidecar, path, body: bytes, headers, **kwargs):
    return requests.post(f"{sidecar.url}{path}", data=body, headers=headers, timeout=10, **kwargs)


def test_every_github_fixture_is_acknowledged_and_landed_once(sidecar, sign, github_fixtures):
    paths = sorted(github_fixtures.glob("*/*.json"))
    assert len(paths) > 50
    deliveries = {}
    for path in paths:
        body = path.read_bytes()
        event = path.parent.name
        headers = sign.github(body, event)
        response = post(sidecar, "/webhooks/github", body, headers)
        assert response.status_code in (200, 202), (path, response.text)
        deliveries[headers["X-GitHub-Delivery"]] = (event, response.json())
    for event, answer in deliveries.values():
        if event == "ping":
            assert answer["status"] == "pong" and answer["zen"]
        elif event in ("pull_request", "issues", "pull_request_review"):
            assert answer["status"] == "normalized" and answer["events"], answer
        elif event in ("release", "workflow_run", "check_run", "status", "create", "delete", "deployment"):
            assert answer["status"] == "raw" and answer["events"] == []
    landed = sidecar.landed()
    assert sorted(r["delivery_id"] for r in landed) == sorted(deliveries)
    pr = next(r for r in landed if r["event"] == "pull_request")
    assert pr["repo"] == "codertocat/hello-world" and pr["payload"]["pull_request"]["number"] == 2


def test_pr_webhook_has_the_polled_event_ids(sidecar, sign, github_fixtures):
    body = (github_fixtures / "pull_request" / "closed.payload.json").read_bytes()
    answer = post(sidecar, "/webhooks/github", body, sign.github(body, "pull_request")).json()
    assert answer["events"] == ["github:pr:codertocat/hello-world#2:opened", "github:pr:codertocat/hello-world#2:closed"]


def test_redelivery_is_acknowledged_but_not_landed_again(sidecar, sign, github_fixtures):
    body = (github_fixtures / "issues" / "opened.payload.json").read_bytes()
    headers = sign.github(body, "issues", delivery="fixed-delivery-1")
    first = post(sidecar, "/webhooks/github", body, headers)
    again = post(sidecar, "/webhooks/github", body, headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert [r["delivery_id"] for r in sidecar.landed()] == ["fixed-delivery-1"]


def test_bad_github_input(sidecar, sign, github_fixtures):
    body = (github_fixtures / "pull_request" / "opened.payload.json").read_bytes()
    # Signed with another secret, or not at all, or for another body.
    assert post(sidecar, "/webhooks/github", body, sign.github(body, "pull_request", secret="wrong")).status_code == 401
    unsigned = {k: v for k, v in sign.github(body, "pull_request").items() if k != "X-Hub-Signature-256"}
    assert post(sidecar, "/webhooks/github", body, unsigned).status_code == 401
    tampered = sign.github(body, "pull_request")
    assert post(sidecar, "/webhooks/github", body.replace(b"Codertocat", b"Mallory"), tampered).status_code == 401
    # Malformed JSON, correctly signed.
    bad = b'{"action": "opened", "pull_request": '
    response = post(sidecar, "/webhooks/github", bad, sign.github(bad, "pull_request"))
    assert response.status_code == 400 and "malformed JSON" in response.json()["detail"]
    # Missing event header.
    no_event = {k: v for k, v in sign.github(body, "pull_request").items() if k != "X-GitHub-Event"}
    assert post(sidecar, "/webhooks/github", body, no_event).status_code == 400
    # Valid signature, known event, a shape the normalizer cannot use: accepted as a dead letter.
    odd = json.dumps({"action": "opened", "repository": {"full_name": "acme/api"}}).encode()
    response = post(sidecar, "/webhooks/github", odd, sign.github(odd, "pull_request"))
    assert response.status_code == 202
    assert response.json()["status"] == "dead_letter" and "pull_request" in response.json()["reason"]
    landed = sidecar.landed()
    assert [(r["status"], r["reason"] is not None) for r in landed] == [("dead_letter", True)]


def test_body_over_the_limit_is_413_by_header_and_by_stream(sidecar, sign):
    big = json.dumps({"action": "x", "blob": "a" * (300 * 1024)}).encode()  # the fixture's cap: 256 KiB
    assert post(sidecar, "/webhooks/github", big, sign.github(big, "push")).status_code == 413

    def chunks():  # no Content-Length: chunked transfer, counted while it streams
        for i in range(0, len(big), 16 * 1024):
            yield big[i:i + 16 * 1024]

    response = requests.post(f"{sidecar.url}/webhooks/github", data=chunks(), headers=sign.github(big, "push"),
                             timeout=10)
    assert response.status_code == 413
    assert sidecar.landed() == []


def test_linear_signature_and_replay_window(sidecar, sign):
    issue = {"id": "lin-1", "identifier": "ENG-42", "title": "Fix login", "createdAt": "2026-01-05T10:00:00.000Z",
             "updatedAt": "2026-01-05T10:00:00.000Z", "priority": 2, "url": "https://linear.app/acme/issue/ENG-42",
             "team": {"id": "t1", "key": "ENG"}, "state": {"name": "Todo", "type": "unstarted"}}
    payload = {"action": "create", "type": "Issue", "data": issue, "url": issue["url"],
               "createdAt": issue["createdAt"], "webhookId": str(uuid.uuid4())}
    body = sign.linear_body(payload)
    response = post(sidecar, "/webhooks/linear", body, sign.linear(body))
    assert response.status_code == 202, response.text
    assert response.json()["events"] == ["linear:issue:lin-1:created"]
    assert post(sidecar, "/webhooks/linear", body, sign.linear(body, secret="wrong")).status_code == 401
    stale = sign.linear_body(payload, int(time.time() * 1000) - 61_000)
    response = post(sidecar, "/webhooks/linear", stale, sign.linear(stale))
    assert response.status_code == 401 and "webhookTimestamp" in response.json()["detail"]
    no_stamp = json.dumps(payload).encode()
    assert post(sidecar, "/webhooks/linear", no_stamp, sign.linear(no_stamp)).status_code == 401
    comment = sign.linear_body({"action": "create", "type": "Comment", "data": {"id": "c1", "body": "hi"}})
    response = post(sidecar, "/webhooks/linear", comment, sign.linear(comment, "Comment"))
    assert response.status_code == 202 and response.json()["status"] == "raw"
    assert post(sidecar, "/webhooks/linear", b"[1,", sign.linear(b"[1,")).status_code == 400


def test_charlie_webhook_and_events_endpoint(sidecar, sign):
    activity = {"id": "act-9", "instance_id": "charlie-alpha", "type": "task.failed", "timestamp": "2026-01-05T10:00:00Z",
                "issue_key": "ENG-42", "correlation_id": "corr-1", "message": "tests failed"}
    body = json.dumps(activity).encode()
    secret = sign.secrets["CC_CHARLIE_WEBHOOK_SECRET"]
    response = post(sidecar, "/webhooks/charlie", body, sign.signed(body, secret))
    assert response.status_code == 202 and response.json()["events"] == ["charlie:activity:act-9"]
    assert post(sidecar, "/webhooks/charlie", body, sign.signed(body, "wrong")).status_code == 401

    token = sign.secrets["CC_EVENTS_API_TOKEN"]
    cron = json.dumps({"kind": "cron.event", "id": "push-1", "data": {
        "seq": 1, "id": "ev-1", "job": "backup", "event": "failed", "run_id": "r1", "at": "2026-01-05T10:00:00Z"}}).encode()
    response = post(sidecar, "/events", cron, sign.bearer())
    assert response.status_code == 202 and response.json()["events"] == ["cron:run:r1:failed"]
    signed = json.dumps({"kind": "deploy.finished", "data": {"service": "api"}}).encode()
    response = post(sidecar, "/events", signed, sign.signed(signed, token))
    assert response.status_code == 202 and response.json()["status"] == "raw"
    assert post(sidecar, "/events", signed, sign.bearer("wrong")).status_code == 401
    assert post(sidecar, "/events", signed, {"Content-Type": "application/json"}).status_code == 401
    assert post(sidecar, "/events", b'{"data": 1}', sign.bearer()).status_code == 400
    bad_shape = json.dumps({"kind": "cron.event", "data": {"job": "backup"}}).encode()
    response = post(sidecar, "/events", bad_shape, sign.bearer())
    assert response.status_code == 202 and response.json()["status"] == "dead_letter"

    sample = {"id": "host-a:1", "host": "host-a", "sampled_at": "2026-01-05T10:00:00", "cpu_percent": 12.5}
    metrics = json.dumps({"kind": "system.metrics", "data": [sample]}).encode()
    response = post(sidecar, "/events", metrics, sign.bearer())
    assert response.status_code == 202, response.text
    assert [r["id"] for r in sidecar.landed("system_metrics")] == ["host-a:1"]
    schema_invalid = json.dumps({"kind": "system.metrics", "data": [{"host": "h"}]}).encode()
    assert post(sidecar, "/events", schema_invalid, sign.bearer()).status_code == 400


def test_a_route_without_its_secret_refuses_everything(make_sidecar, sign, github_fixtures):
    bare = make_sidecar(secrets=False)
    body = (github_fixtures / "pull_request" / "opened.payload.json").read_bytes()
    for path, headers in [("/webhooks/github", sign.github(body, "pull_request")),
                          ("/webhooks/linear", sign.linear(body)),
                          ("/webhooks/charlie", sign.signed(body, "x")),
                          ("/events", sign.bearer())]:
        response = post(bare, path, body, headers)
        assert response.status_code == 403, path
        assert "is not set" in response.json()["detail"]
    assert bare.landed() == []


def test_concurrent_acks_share_fsyncs(sidecar, sign):
    """Group commit: many concurrent deliveries, far fewer fsyncs, every one landed."""
    token_headers = sign.bearer()

    def send(i: int) -> int:
        body = json.dumps({"kind": "deploy.finished", "id": f"d-{i}", "data": {"n": i}}).encode()
        return requests.post(f"{sidecar.url}/events", data=body, headers=token_headers, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(send, range(400)))
    assert codes == [202] * 400
    health = requests.get(f"{sidecar.url}/healthz", timeout=5).json()
    assert health["landed_lines"] == 400
    assert health["landing_fsyncs"] < 400
    assert len({r["id"] for r in sidecar.landed()}) == 400


def test_compact_and_pretty_bodies_land_as_one_line_each_with_the_payload_sent(sidecar, sign, github_fixtures):
    # A compact body is landed as it came, a pretty-printed one (line breaks) re-encoded: either
    # way one line per delivery that reads back as the payload GitHub sent.
    payload = json.loads((github_fixtures / "pull_request" / "opened.payload.json").read_text())
    payload["pull_request"]["title"] = "naïve \u2028 title with \"quotes\""
    bodies = {"compact": json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
              "pretty": json.dumps(payload, indent=2).encode()}
    for body in bodies.values():
        assert post(sidecar, "/webhooks/github", body, sign.github(body, "pull_request")).status_code == 202
    landed = sidecar.landed()
    assert len(landed) == 2
    assert all(r["payload"] == payload and r["event"] == "pull_request" and r["_received_at"] for r in landed)
