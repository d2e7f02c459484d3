"""The OpenAPI document is what the API does: schemathesis over /openapi.json (every check, fixed
seed, a few dozen examples an operation) against a real sidecar process over a small built
warehouse (a copy of the session's), and the mismatches it once found, each asked directly.
"""

from __future__ import annotations

import pytest
import requests

from scripts.chaos.built import sidecar_on
from scripts.chaos.schemathesis_api import full_token, run_schemathesis


@pytest.fixture(scope="module")
def sidecar(now_world, tmp_path_factory):
    """A sidecar process on a copy of the session's built world (`now_world`, tests/streaming/conftest.py)."""
    # Schemathesis reads and changes hundreds of times a minute with one token: over any limit a real
    # token has, and a 429 is not what it is here to find (tests/streaming/test_rate_limits.py is).
    unlimited = {"CC_RATE_LIMIT_READ": "unlimited", "CC_RATE_LIMIT_COMMAND": "unlimited"}
    with sidecar_on(now_world.copy(tmp_path_factory.mktemp("openapi") / "data"), now_world.sandbox.url,
                    unlimited) as server:
        yield server


@pytest.fixture(scope="module")
def http(sidecar):
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {full_token()}"

        def call(method: str, path: str, **kwargs) -> requests.Response:
            return session.request(method, sidecar.url + path, timeout=30, **kwargs)

        yield call


def test_schemathesis_finds_no_mismatch(sidecar, tmp_path):
    run = run_schemathesis(sidecar, tmp_path, seed=1, max_examples=30)
    assert run.requests > 500, run.output[-3000:]
    assert not run.failures and run.server_errors == 0, f"{run.summary()}\n{run.output[-6000:]}"


def test_a_since_that_is_not_a_time_is_a_400(http):
    for since in ("0.5", "1700000000", "yesterday", ""):
        response = http("GET", "/api/events", params={"since": since})
        assert response.status_code == 400 and "since" in response.json()["detail"], (since, response.text)
    for since in ("2026-01-01T00:00:00Z", "2026-01-01t00:00:00z", "2026-01-01T00:00:00+05:30", "0001-01-01T00:00:00+01:00"):
        assert http("GET", "/api/events", params={"since": since}).status_code == 200, since


def test_a_405_allows_every_method_of_the_path(http):
    for path, methods in (("/dashboard/dashboards", {"GET", "POST"}),
                          ("/dashboard/dashboards/x", {"GET", "PUT", "DELETE"}),
                          ("/dashboard/widgets/x", {"PUT", "DELETE"})):
        response = http("PATCH", path)
        assert response.status_code == 405
        assert {m.strip() for m in response.headers["Allow"].split(",")} == methods, path


def test_every_cursor_the_document_allows_is_a_place_in_the_order(http):
    first = http("GET", "/api/workflows", params={"limit": 3}).json()
    cursor = first["nextCursor"]
    after = http("GET", "/api/workflows", params={"limit": 3, "cursor": cursor})
    assert after.status_code == 200 and after.json()["workflows"][0]["id"] != first["workflows"][-1]["id"]
    # Not from a page, yet of the documented pattern: the workflows after that place, none before 1970.
    assert http("GET", "/api/workflows", params={"cursor": "0:marts:x"}).json()["workflows"] == []
    everything = http("GET", "/api/workflows", params={"cursor": "99999999999999999:marts:~"}).json()
    assert everything["workflows"] and everything["total"] == first["total"]
    for bad in ("garbage", "12:warm:x", "-1:marts:x", "12:marts:"):
        assert http("GET", "/api/workflows", params={"cursor": bad}).status_code == 422, bad


def test_metrics_say_which_range_is_wrong(http):
    assert http("GET", "/dashboard/metrics", params={"timeRange": "2h"}).status_code == 422
    assert http("GET", "/dashboard/metrics", params={"to": ""}).status_code == 400
    filters = '{"source": ["github"], "host": "web-1"}'
    assert http("GET", "/dashboard/metrics", params={"filters": filters}).status_code == 200
    assert http("GET", "/dashboard/metrics", params={"filters": ""}).status_code == 400
