"""`/metrics`: the sidecar's own metrics in Prometheus' text format, read with prometheus-client's own
parser, moving as a webhook lands, a REST read is answered and a slow client is dropped; correct
for a sidecar of several workers whichever worker answers."""

from __future__ import annotations

import asyncio
import json
import uuid

import requests
from prometheus_client.parser import text_string_to_metric_families

from scripts.chaos.harness import SECRETS, SidecarWorkers, signed_headers
from scripts.chaos.slow_ws_client import slow_beside_normal


def scrape(server, token: str | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample: (name, sorted labels) -> value, parsed as Prometheus would."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{server.url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_as_a_webhook_lands_a_rest_read_is_answered_and_a_slow_client_is_dropped(
        make_sidecar, sign, github_fixtures):
    server = make_sidecar({"CC_WS_SLOW_AFTER_S": "1", "CC_WS_QUEUE_MAX": "50", "CC_RATE_LIMIT_READ": "2/minute"})
    before = scrape(server)
    assert value(before, "cc_ws_clients") == 0

    body = (github_fixtures / "pull_request" / "opened.payload.json").read_bytes()
    headers = sign.github(body, "pull_request")
    assert requests.post(f"{server.url}/webhooks/github", data=body, headers=headers, timeout=10).status_code == 202
    assert requests.post(f"{server.url}/webhooks/github", data=body, headers=headers, timeout=10).status_code == 200
    token = server.token("reader")
    reads = [requests.get(f"{server.url}/api/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=10)
             for _ in range(3)]
    assert [r.status_code for r in reads] == [200, 200, 429]
    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("cc_webhook_deliveries_total", source="github", outcome="landed") == 1
    assert grew("cc_webhook_deliveries_total", source="github", outcome="duplicate") == 1
    assert grew("cc_dedupe_hits_total", stream="webhooks") == 1
    assert grew("cc_webhook_ack_seconds_count", source="github") == 2
    assert grew("cc_landing_fsync_seconds_count") == 1 and value(after, "cc_landing_fsync_seconds_sum") > 0
    assert grew("cc_http_requests_total", route="/api/alerts", method="GET", status="200") == 2
    assert grew("cc_http_requests_total", route="/api/alerts", method="GET", status="429") == 1
    assert grew("cc_http_request_seconds_count", route="/api/alerts", method="GET") == 3
    assert grew("cc_rate_limit_refusals_total", action="read") == 1
    assert value(after, "process_cpu_seconds_total") > 0

    outcome = asyncio.run(slow_beside_normal(server, normal=1, rate=200, load_s=15, padding=2000))
    assert outcome.close_code == 4408, outcome
    dropped = scrape(server)
    assert value(dropped, "cc_ws_slow_clients_dropped_total") - value(after, "cc_ws_slow_clients_dropped_total") == 1
    # The reading client got every event, each in a frame the sidecar counted.
    assert value(dropped, "cc_ws_frames_sent_total") - value(after, "cc_ws_frames_sent_total") >= 1
    assert value(dropped, "cc_ws_bytes_sent_total") - value(after, "cc_ws_bytes_sent_total") > \
        2000 * len(outcome.sent.acked)
    assert value(dropped, "cc_webhook_deliveries_total", source="github", outcome="landed") == \
        1 + len(outcome.sent.acked)


def test_metrics_can_need_a_token_or_be_off(make_sidecar):
    guarded = make_sidecar({"CC_METRICS_TOKEN": "scrape-token-0123456789"})
    assert requests.get(f"{guarded.url}/metrics", timeout=10).status_code == 401
    wrong = requests.get(f"{guarded.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    assert scrape(guarded, "scrape-token-0123456789")
    off = make_sidecar({"CC_METRICS_ENABLED": "false"})
    assert requests.get(f"{off.url}/metrics", timeout=10).status_code == 404


def test_any_worker_answers_for_every_worker(tmp_path, redis_url):
    server = SidecarWorkers(tmp_path / "data", {**SECRETS, "CC_REDIS_URL": f"{redis_url}?channel=cc-test-{uuid.uuid4().hex}"})
    server.start(timeout_s=120)
    try:
        sent = 0
        while sent < 200:  # each on a connection of its own, so the kernel spreads them over the workers
            body = json.dumps({"kind": "charlie.activity", "data": {
                "id": f"m{sent}", "instance_id": "charlie-1", "type": "task_started",
                "timestamp": "2026-01-05T10:00:00Z", "message": "metrics"}}).encode()
            response = requests.post(f"{server.url}/webhooks/charlie", data=body, timeout=30,
                                     headers=signed_headers(body, SECRETS["CC_CHARLIE_WEBHOOK_SECRET"]))
            assert response.status_code == 202, response.text
            sent += 1
            if sent >= 20 and all(h["landed_lines"] for h in server.by_worker().values()):
                break
        landed = {name: health["landed_lines"] for name, health in server.by_worker().items()}
        assert len(landed) == 2 and all(landed.values()), landed  # both workers took some
        for _ in range(4):  # whichever worker answers, the sum of both
            samples = scrape(server)
            assert value(samples, "cc_webhook_deliveries_total", source="charlie", outcome="landed") == sent
            assert value(samples, "cc_webhook_ack_seconds_count", source="charlie") == sent
    finally:
        server.stop()
