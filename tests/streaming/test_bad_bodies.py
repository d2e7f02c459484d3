"""Signed bodies the sidecar cannot store are refused before their delivery id is taken, with a
4xx that says why; nesting too deep for any reader is a 400 on every route, never a 500.

Each probe is what a hostile or buggy sender could send: a lone surrogate escape (valid to
Python's JSON parser, not Unicode, so no encoder or Parquet writer can store it), nesting a few
hundred levels deep (past what the landing line's encoder takes), and thousands of levels (past
what any parser here takes)."""

from __future__ import annotations

import json

import pytest
import requests

LONE_SURROGATE = '"\\ud800"'  # the six characters \ud800 inside a JSON string


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def post(sidecar, path: str, body: bytes, headers: dict) -> requests.Response:
    return requests.post(f"{sidecar.url}{path}", data=body, headers=headers, timeout=30)


def github(sidecar, sign, body: bytes, delivery: str) -> requests.Response:
    return post(sidecar, "/webhooks/github", body, sign.github(body, "issues", delivery))


def charlie(sidecar, sign, body: bytes, delivery: str) -> requests.Response:
    headers = {**sign.signed(body, sign.secrets["CC_CHARLIE_WEBHOOK_SECRET"]), "X-Delivery-Id": delivery}
    return post(sidecar, "/webhooks/charlie", body, headers)


UNSTORABLE = {
    "lone surrogate": ('{"action": "opened", "title": ' + LONE_SURROGATE + "}", "surrogate"),
    # A line break makes the sidecar re-encode the body (a landing line is one line).
    "300 levels, pretty": ('{\n  "action": "opened",\n  "deep": ' + deep(300) + "\n}", "nested"),
}


@pytest.mark.parametrize("route", [github, charlie], ids=["github", "charlie"])
@pytest.mark.parametrize("case", UNSTORABLE, ids=list(UNSTORABLE))
def test_an_unstorable_body_is_refused_and_its_id_stays_free(sidecar, sign, route, case):
    text, reason = UNSTORABLE[case]
    body = (text if route is github else '{"kind": "charlie.activity", "data": ' + text + "}").encode()
    for _ in range(2):  # the sender's retry gets the same answer, not "200 duplicate"
        answer = route(sidecar, sign, body, "d-1")
        assert 400 <= answer.status_code < 500, answer.text
        assert reason in answer.json()["detail"]
    assert sidecar.landed() == []
    # The id was never taken: the sender's fixed body under the same delivery id is landed.
    fixed = b'{"action": "opened"}' if route is github else b'{"kind": "charlie.activity", "data": {}}'
    assert route(sidecar, sign, fixed, "d-1").status_code == 202
    assert [r["delivery_id"] for r in sidecar.landed()] == ["d-1"]


def test_too_deep_a_body_is_400_on_every_route(sidecar, sign):
    body = deep(5000).encode()
    secrets = sign.secrets
    answers = {
        "github": github(sidecar, sign, body, "deep-1"),
        "linear": post(sidecar, "/webhooks/linear", body, sign.linear(body)),
        "charlie": post(sidecar, "/webhooks/charlie", body, sign.signed(body, secrets["CC_CHARLIE_WEBHOOK_SECRET"])),
        "events": post(sidecar, "/events", body, sign.bearer()),
    }
    for route, answer in answers.items():
        assert answer.status_code == 400, (route, answer.status_code, answer.text)
        assert "nested" in answer.json()["detail"], route
    assert sidecar.landed() == []


def test_too_deep_filters_are_400(sidecar):
    filters = deep(3000)  # 6 KB of brackets (18 KB escaped): past the parser's recursion limit
    answer = requests.get(f"{sidecar.url}/dashboard/metrics", params={"filters": filters},
                          headers={"Authorization": f"Bearer {sidecar.token()}"}, timeout=30)
    assert answer.status_code == 400, answer.text
    assert "nested" in answer.json()["detail"]
    still = requests.get(f"{sidecar.url}/dashboard/metrics", params={"filters": json.dumps({"source": "github"})},
                         headers={"Authorization": f"Bearer {sidecar.token()}"}, timeout=30)
    assert still.status_code != 400, still.text


def test_the_deepest_storable_body_lands_and_the_assets_read_it(sidecar, sign):
    from datetime import UTC, datetime

    import pyarrow.parquet as pq
    from dagster import AssetKey, DagsterInstance, materialize

    from cc_assets.normalized import normalized_events
    from cc_assets.sources import raw_assets
    from resources.platform import PlatformResource

    body = ('{\n "action": "opened",\n "deep": ' + deep(127) + "\n}").encode()  # 128 levels, the most; re-encoded (line breaks)
    assert github(sidecar, sign, body, "deep-ok").status_code == 202
    today = datetime.now(UTC).date().isoformat()
    platform = PlatformResource(data_dir=str(sidecar.data_dir))
    raw = next(a for a in raw_assets if a.key == AssetKey(["raw", "webhooks", "deliveries"]))
    assert materialize([raw, normalized_events], partition_key=today, resources={"platform": platform},
                       instance=DagsterInstance.ephemeral(), selection=[raw.key, *normalized_events.keys]).success
    rows = pq.read_table(sidecar.data_dir / "lake" / "raw" / "webhooks" / "deliveries" / f"date={today}"
                         / "part-0.parquet").to_pylist()
    assert [r["delivery_id"] for r in rows] == ["deep-ok"]
    assert json.loads(rows[0]["_raw"])["payload"]["deep"] == json.loads(deep(127))
