"""The REST API's `Serving` is built in the app's lifespan: the sidecar still starts, and lands
webhooks, with its Postgres down, and the REST API says "retry later" until Postgres is back."""

from __future__ import annotations

import json

import requests

from scripts.chaos.harness import free_port

BODY = json.dumps({"action": "opened", "issue": {"number": 7, "title": "slow disk"},
                   "repository": {"full_name": "acme/api"}}).encode()


def test_postgres_down_at_start_lands_webhooks_and_answers_the_rest_api_with_503(make_sidecar, sign):
    nobody = f"postgresql://127.0.0.1:{free_port()}/cc"  # a port nothing listens on
    server = make_sidecar({"CC_WAREHOUSE": "postgres", "CC_PG_URL": nobody})

    reply = requests.post(f"{server.url}/webhooks/github", data=BODY,
                          headers=sign.github(BODY, "issues", "down-1"), timeout=60)
    assert reply.status_code == 202
    assert [line["delivery_id"] for line in server.landed()] == ["down-1"]

    auth = {"Authorization": f"Bearer {server.token()}"}
    for path in ("/dashboard/dashboards", "/dashboard/overview", "/api/charlie/commands"):
        answer = requests.get(server.url + path, headers=auth, timeout=60)
        assert (answer.status_code, answer.headers.get("Retry-After")) == (503, "30"), (path, answer.text)
        assert "unavailable" in answer.json()["detail"]
