"""The sidecar's REST API over real HTTP (uvicorn on loopback), on a warehouse built from the sandbox.

Each backend has a copy of the session's built world for the module: DuckDB (read through the
serving snapshot, so a dbt build holding the warehouse file does not block reads) and Postgres (a
database of the module's own, read directly).
The expected numbers come from the warehouse itself, so these are the marts a user would check.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import requests
import uvicorn
import websockets

from resources.dbt import DBT_PROJECT_DIR
from resources.settings import Settings
from resources.storage.serving import export_snapshot, snapshot_path
from scripts.chaos.auth_attacks import BODIES, EXPECTED, FAKE_ID
from streaming.app import create_app
from streaming.auth import hmac_sha256_hex, issue_token

SECRET = "test-jwt-secret"
GITHUB_SECRET = "test-github-webhook-secret"


@dataclass
class Backend:
    name: str
    settings: Settings
    query: Callable[[str], list[tuple]]
    sandbox_url: str


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request, now_world, tmp_path_factory) -> Iterator[Backend]:
    """A copy of the session's built world that ends now (tests/conftest.py): on DuckDB its data
    folder, on Postgres its database (`now_world_pg`) and data folder."""
    data_dir = tmp_path_factory.mktemp(f"data_{request.param}") / "data"
    env = {"CC_DATA_DIR": str(data_dir), "CC_SANDBOX_URL": now_world.sandbox.url, "CC_JWT_SECRET": SECRET,
           "CC_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET, "CC_WAREHOUSE": request.param}
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            world = request.getfixturevalue("now_world_pg")
            shutil.copytree(world.data_dir, data_dir)
            pg_url = env["CC_PG_URL"] = stack.enter_context(
                world.copy(request.getfixturevalue("pg_admin_url"), "cc_test_api"))

            def query(sql: str) -> list[tuple]:
                with psycopg.connect(pg_url, options="-c search_path=analytics") as conn:
                    return conn.execute(sql).fetchall()
        else:
            now_world.copy(data_dir)

            def query(sql: str) -> list[tuple]:
                with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
                    return con.execute(sql).fetchall()

        yield Backend(request.param, Settings.from_env(env), query, now_world.sandbox.url)


@pytest.fixture(scope="module")
def server(backend) -> Iterator[str]:
    """The real sidecar app (`create_app`, as `uvicorn streaming.app:app` builds it) on a loopback port."""
    with _serve(backend.settings) as url:
        yield url


@contextlib.contextmanager
def _serve(settings: Settings) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the sidecar did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def http(backend, server) -> Iterator[Callable[..., requests.Response]]:
    token = issue_token(SECRET, "alice", scopes=["commands", "dashboards", "alerts"])
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"

        def call(method: str, path: str, **kwargs) -> requests.Response:
            return session.request(method, server + path, timeout=30, **kwargs)

        yield call


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 20.0) -> Any:
    """`read()` until `done(value)`: the live state is computed in the background."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def get_json(http, path: str, **params) -> dict:
    response = http("GET", path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- auth and caching ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/dashboard/overview", "/dashboard/metrics", "/api/workflows", "/api/events",
                                  "/api/charlie/instances", "/dashboard/dashboards"])
def test_every_route_refuses_a_missing_or_bad_token(backend, server, path):
    assert requests.get(server + path, timeout=10).status_code == 401
    for token in ("not-a-jwt", issue_token("another-secret", "mallory"), issue_token(SECRET, "bob", ttl_s=-60)):
        response = requests.get(server + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 401, (token, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = requests.post(server + "/api/charlie/command", json={}, timeout=10)
    assert response.status_code == 401


def test_reads_carry_the_seeds_cache_ttls_and_revalidate_by_etag(backend, http):
    ttl = {"/dashboard/overview": 30, "/dashboard/metrics": 30, "/api/workflows": 60, "/api/events": 30,
           "/api/charlie/instances": 300}
    for path, seconds in ttl.items():
        response = http("GET", path)
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == f"private, max-age={seconds}"
        etag = response.headers["ETag"]
        again = http("GET", path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
    widget = get_json(http, f"/dashboard/dashboards/{_default_dashboard(http)['id']}")["widgets"][0]
    response = http("GET", f"/dashboard/widgets/{widget['id']}/data")
    assert response.headers["Cache-Control"] == "private, max-age=60"


# --- overview ------------------------------------------------------------------------------------------

def test_overview_is_the_dashboard_marts(backend, http):
    body = get_json(http, "/dashboard/overview")
    (o,) = backend.query(
        "select workflows_total, workflows_active, workflows_completed, completed_today, events_total,"
        " events_last_24h, instances_total, instances_healthy from dashboard_overview")
    (s,) = backend.query("select sessions_active, cron_jobs_total, cron_jobs_failed, trading_bot_status"
                         " from system_status_update")
    w, e, i = body["workflows"], body["events"], body["instances"]
    assert (w["total"], w["active"], w["completed"], w["completedToday"]) == o[:4]
    assert (e["total"], e["last24h"], i["total"], i["healthy"]) == o[4:]
    assert w["total"] == w["pending"] + w["active"] + w["completed"] + w["canceled"] + w["failed"]
    status = body["systemStatus"]
    assert (status["sessions"]["active"], status["cron_jobs"]["total"], status["cron_jobs"]["failed"],
            status["trading_bot"]["status"]) == s
    assert body["live"] == {"events": 0, "newWorkflows": 0, "latestEventAt": None}
    assert e["total"] > 0 and w["total"] > 0


# --- workflows -----------------------------------------------------------------------------------------

def test_workflows_match_the_marts_with_filters_and_pages(backend, http):
    (total,) = backend.query("select count(*) from fct_workflows")[0]
    page = get_json(http, "/api/workflows", limit=500)
    assert page["total"] == total and len(page["workflows"]) == min(total, 500)
    counts = dict(backend.query("select workflow_id, event_count from fct_workflows"))
    assert all(w["eventCount"] == counts[w["id"]] and not w["isLive"] for w in page["workflows"])

    for status, n in backend.query("select status, count(*) from fct_workflows group by status"):
        got = get_json(http, "/api/workflows", status=status, limit=500)
        assert got["total"] == n and {w["status"] for w in got["workflows"]} == {status}

    (n_github,) = backend.query("select count(*) from fct_workflows where sources like '%github%'")[0]
    got = get_json(http, "/api/workflows", provider="github", limit=1)
    assert got["total"] == n_github > 0 and "github" in got["workflows"][0]["sources"]

    assignee, n = backend.query("select assignee_name, count(*) from fct_workflows where assignee_name is not null"
                                " group by assignee_name order by 2 desc, 1 limit 1")[0]
    got = get_json(http, "/api/workflows", assignee=assignee, limit=500)
    assert got["total"] == n and {w["assignee"]["name"] for w in got["workflows"]} == {assignee}

    # Pages of 7 put together are the first 21 in order, with no gaps or repeats.
    first = get_json(http, "/api/workflows", limit=21)["workflows"]
    pages = [get_json(http, "/api/workflows", limit=7, offset=o) for o in (0, 7, 14)]
    assert [w["id"] for p in pages for w in p["workflows"]] == [w["id"] for w in first]
    assert all(p["hasMore"] for p in pages)
    past = get_json(http, "/api/workflows", limit=10, offset=total + 5)
    assert past["workflows"] == [] and past["total"] == total and not past["hasMore"]

    for params in ({"status": "sleeping"}, {"provider": "jira"}, {"limit": 0}, {"limit": 501}, {"offset": -1}):
        assert http("GET", "/api/workflows", params=params).status_code == 422, params


def walk(http, **params) -> list[dict]:
    """Every page from the first on, each read by the `nextCursor` of the one before."""
    page = get_json(http, "/api/workflows", **params)
    pages = [page]
    while page["nextCursor"]:
        assert page["hasMore"] and len(page["workflows"]) == params["limit"]
        page = get_json(http, "/api/workflows", **params, cursor=page["nextCursor"])
        assert page["offset"] is None and page["total"] == pages[0]["total"]
        pages.append(page)
    assert not page["hasMore"]
    return [w for p in pages for w in p["workflows"]]


def test_workflows_by_cursor_are_each_workflow_once_in_order(backend, http):
    order = " order by last_event_at desc, workflow_id desc"
    everything = [r[0] for r in backend.query("select workflow_id from fct_workflows" + order)]
    walked = walk(http, limit=7)
    assert [w["id"] for w in walked] == everything and len(everything) > 14
    # An offset page and a cursor page from the same place are the same page.
    fourth = get_json(http, "/api/workflows", limit=7, offset=21)
    third = get_json(http, "/api/workflows", limit=7, offset=14)
    assert get_json(http, "/api/workflows", limit=7, cursor=third["nextCursor"])["workflows"] == fourth["workflows"]

    active_github = [r[0] for r in backend.query(
        "select workflow_id from fct_workflows where status = 'active' and sources like '%github%'" + order)]
    assert [w["id"] for w in walk(http, limit=3, status="active", provider="github")] == active_github
    assert active_github
    assignee = backend.query("select assignee_name from fct_workflows where assignee_name is not null"
                             " group by assignee_name order by count(*) desc, 1 limit 1")[0][0]
    theirs = [i for i, name in backend.query("select workflow_id, assignee_name from fct_workflows" + order)
              if name == assignee]
    assert [w["id"] for w in walk(http, limit=2, assignee=assignee)] == theirs and len(theirs) > 2


def _cursor(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).rstrip(b"=").decode()


def test_a_cursor_not_from_next_cursor_is_a_400(backend, http):
    good = get_json(http, "/api/workflows", limit=2)["nextCursor"]
    for cursor in ("garbage!", "bm90IGpzb24", _cursor({"at": "2026-01-01"}), _cursor(["2026-01-01T00:00:00"]),
                   _cursor(["yesterday", "linear:ENG-1"]), _cursor(["2026-01-01T00:00:00+02:00", "linear:ENG-1"]),
                   _cursor(["2026-01-01T00:00:00", ""]), _cursor(["2026-01-01T00:00:00", "x", "dead"]),
                   good.replace(":", ";", 1), "x" * 1001):
        response = http("GET", "/api/workflows", params={"cursor": cursor})
        assert response.status_code in (400, 422), (cursor, response.text)
        assert response.status_code == 422 or "cursor" in response.json()["detail"], response.text
    both = http("GET", "/api/workflows", params={"cursor": good, "offset": 2})
    assert both.status_code == 400 and "offset" in both.json()["detail"]


def test_filters_are_values_never_sql(backend, http):
    evil = "x' or '1'='1"
    assert get_json(http, "/api/workflows", assignee=evil)["total"] == 0
    assert get_json(http, "/api/events", workflow=evil)["events"] == []
    response = http("GET", "/dashboard/metrics", params={"filters": json.dumps({"source": [evil]})})
    assert response.status_code == 200 and response.json()["events"]["total"] == 0


# --- events --------------------------------------------------------------------------------------------

def test_events_of_a_workflow_since_a_time_with_a_limit(backend, http):
    workflow_id, n = backend.query("select workflow_id, count(*) from fct_workflow_events where workflow_id is not null"
                                   " group by workflow_id order by 2 desc, 1 limit 1")[0]
    events = get_json(http, "/api/events", workflow=workflow_id, limit=1000)["events"]
    assert len(events) == n and {e["workflow"]["id"] for e in events} == {workflow_id}
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert set(events[0]) >= {"id", "timestamp", "source", "type", "actor", "target", "payload", "metadata"}

    latest = get_json(http, "/api/events", limit=5)["events"]
    (newest,) = backend.query("select max(event_at) from fct_workflow_events")[0]
    assert len(latest) == 5 and latest[-1]["timestamp"] == newest.isoformat() + "Z"

    since = events[len(events) // 2]["timestamp"]
    later = get_json(http, "/api/events", workflow=workflow_id, since=since, limit=1000)["events"]
    assert later and all(e["timestamp"] >= since for e in later)
    assert len(later) == sum(e["timestamp"] >= since for e in events)
    assert len(get_json(http, "/api/events", workflow=workflow_id, limit=2)["events"]) == 2

    for params in ({"limit": 0}, {"limit": 1001}):
        assert http("GET", "/api/events", params=params).status_code == 422, params
    assert http("GET", "/api/events", params={"since": "yesterday"}).status_code == 400


# --- metrics -------------------------------------------------------------------------------------------

def test_metrics_count_the_marts_over_a_range_and_filters(backend, http):
    lo, hi, total = backend.query("select min(event_at), max(event_at), count(*) from fct_workflow_events")[0]
    window = {"timeRange": "custom", "from": (lo - timedelta(hours=1)).isoformat() + "Z",
              "to": (hi + timedelta(hours=1)).isoformat() + "Z"}
    body = get_json(http, "/dashboard/metrics", **window)
    assert body["events"]["total"] == total
    assert {c["key"]: c["count"] for c in body["events"]["bySource"]} == dict(
        backend.query("select source, count(*) from fct_workflow_events group by source"))
    assert sum(b["count"] for b in body["events"]["series"]) == total
    (completed,) = backend.query("select count(*) from fct_workflows where completed_at is not null")[0]
    assert body["workflows"]["completed"] == completed

    (github,) = backend.query("select count(*) from fct_workflow_events where source = 'github'")[0]
    only = get_json(http, "/dashboard/metrics", **window, filters=json.dumps({"source": "github"}))
    assert only["events"]["total"] == github and [c["key"] for c in only["events"]["bySource"]] == ["github"]

    day = get_json(http, "/dashboard/metrics", timeRange="24h")
    assert day["query"]["grain"] == "hour" and day["events"]["total"] > 0
    assert get_json(http, "/dashboard/metrics", timeRange="30d")["query"]["grain"] == "day"

    assert http("GET", "/dashboard/metrics", params={"timeRange": "2h"}).status_code == 422  # not of the enum
    bad = [{"timeRange": "custom"}, {"timeRange": "custom", "from": window["to"], "to": window["from"]},
           {"timeRange": "custom", "from": "noon", "to": window["to"]},
           {"timeRange": "custom", "from": "2020-01-01T00:00:00Z", "to": "2022-01-01T00:00:00Z"},
           {"timeRange": "24h", "from": window["from"]}, {"filters": "{not json"}, {"filters": '{"colour": "red"}'},
           {"filters": '["github"]'}]
    for params in bad:
        response = http("GET", "/dashboard/metrics", params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.json()["detail"]


def test_metrics_chart_agent_session_cost_and_cron_runs_over_a_range(backend, http):
    """The page's cost and cron charts: sessions and their cost, cron runs by status, per bucket."""
    lo, hi = backend.query("select min(started_at), max(started_at) from int_sessions_attributed")[0]
    window = {"timeRange": "custom", "from": (lo - timedelta(hours=1)).isoformat() + "Z",
              "to": (hi + timedelta(hours=1)).isoformat() + "Z"}
    body = get_json(http, "/dashboard/metrics", **window)
    sessions, cost = backend.query("select count(*), sum(cost_usd) from int_sessions_attributed"
                                   " where started_at is not null")[0]
    assert body["sessions"]["sessions"] == sessions > 0
    assert body["sessions"]["costUsd"] == pytest.approx(float(cost), abs=0.01)
    assert sum(b["costUsd"] for b in body["sessions"]["series"]) == pytest.approx(float(cost), abs=0.01)
    assert {a["key"]: a["count"] for a in body["sessions"]["byAgent"]} == dict(backend.query(
        "select agent_name, count(*) from int_sessions_attributed where started_at is not null group by 1"))

    lo, hi = backend.query("select min(run_at), max(run_at) from fct_cron_runs")[0]
    window = {"timeRange": "custom", "from": (lo - timedelta(hours=1)).isoformat() + "Z",
              "to": (hi + timedelta(hours=1)).isoformat() + "Z"}
    cron = get_json(http, "/dashboard/metrics", **window)["cron"]
    by_status = dict(backend.query("select run_status, count(*) from fct_cron_runs group by 1"))
    assert cron["runs"] == sum(by_status.values()) and cron["failed"] == by_status.get("failed", 0) > 0
    assert sum(b["succeeded"] for b in cron["series"]) == by_status.get("succeeded", 0)
    (host,) = backend.query("select min(host) from fct_cron_runs")[0]
    (on_host,) = backend.query(f"select count(*) from fct_cron_runs where host = '{host}'")[0]
    narrowed = get_json(http, "/dashboard/metrics", **window, filters=json.dumps({"host": host}))["cron"]
    assert narrowed["runs"] == on_host


def test_metrics_filters_narrow_every_block_that_has_the_field(backend, http):
    """The defect: `filters` narrowed the events and left the workflows block counting every
    workflow. Now a workflow counts when one of its events matches, as that event would in
    `events`; a filter a block has no field for is named in `query.filtersNotApplied`."""
    lo, hi = backend.query("select min(event_at), max(event_at) from fct_workflow_events")[0]
    window = {"timeRange": "custom", "from": (lo - timedelta(hours=1)).isoformat() + "Z",
              "to": (hi + timedelta(hours=1)).isoformat() + "Z"}
    everything = get_json(http, "/dashboard/metrics", **window)
    assert everything["query"]["filtersNotApplied"] == {}
    started, completed = backend.query("select count(*), count(completed_at) from fct_workflows")[0]
    assert everything["workflows"] == {"started": started, "completed": completed}

    def with_an_event(condition: str) -> dict[str, int]:
        n, done = backend.query("select count(*), count(completed_at) from fct_workflows w where exists (select 1"
                                f" from fct_workflow_events e where e.workflow_id = w.workflow_id and {condition})")[0]
        return {"started": n, "completed": done}

    for filters, condition in (({"source": "linear"}, "e.source = 'linear'"),
                               ({"source": ["github", "charlie"]}, "e.source in ('github', 'charlie')"),
                               ({"eventType": "github.pr.merged"}, "e.event_type = 'github.pr.merged'"),
                               ({"source": "github", "actorType": "bot"}, "e.source = 'github' and e.actor_type = 'bot'")):
        body = get_json(http, "/dashboard/metrics", **window, filters=json.dumps(filters))
        expected = with_an_event(condition)
        assert body["workflows"] == expected, filters
        assert 0 < expected["started"] < started, (filters, expected)  # the filter keeps some, not all
        assert body["query"]["filtersNotApplied"] == {"system": list(filters), "sessions": list(filters),
                                                      "cron": list(filters)}

    # A dashboard-wide filter bar: each filter narrows the blocks that have its field, and says which do not.
    mixed = get_json(http, "/dashboard/metrics", **window, filters=json.dumps({"source": "linear", "host": "web-1"}))
    assert mixed["workflows"] == with_an_event("e.source = 'linear'")
    assert {c["key"] for c in mixed["events"]["bySource"]} == {"linear"}
    assert mixed["query"]["filtersNotApplied"] == {"events": ["host"], "workflows": ["host"], "system": ["source"],
                                                   "sessions": ["source", "host"], "cron": ["source"]}
    nothing = get_json(http, "/dashboard/metrics", **window, filters=json.dumps({"eventType": "no.such.type"}))
    assert nothing["workflows"] == {"started": 0, "completed": 0} and nothing["events"]["total"] == 0


# --- dashboards and widgets ----------------------------------------------------------------------------

def _default_dashboard(http) -> dict:
    dashboards = get_json(http, "/dashboard/dashboards")["dashboards"]
    return next(d for d in dashboards if d["ownerId"] == "system")


def test_the_default_dashboard_and_every_widget_has_data(backend, http):
    dashboard = get_json(http, f"/dashboard/dashboards/{_default_dashboard(http)['id']}")
    assert dashboard["name"] == "Command Center" and len(dashboard["widgets"]) >= 6
    for widget in dashboard["widgets"]:
        body = get_json(http, f"/dashboard/widgets/{widget['id']}/data")
        assert body["widgetId"] == widget["id"] and body["type"] == widget["type"]
        assert body["data"] is not None, widget
    overview = next(w for w in dashboard["widgets"] if w["type"] == "overview")
    data = get_json(http, f"/dashboard/widgets/{overview['id']}/data")["data"]
    assert data["events"]["total"] == get_json(http, "/dashboard/overview")["events"]["total"]
    assert http("GET", "/dashboard/widgets/00000000-0000-0000-0000-000000000000/data").status_code == 404
    assert http("GET", "/dashboard/widgets/nope/data").status_code == 404


def test_a_widget_is_stored_only_with_a_config_its_data_can_be_read_with(backend, http):
    """Schemathesis created widgets whose data then answered 400: a config is checked when stored."""
    dashboard = http("POST", "/dashboard/dashboards", json={"name": "Checks"}).json()
    widgets = f"/dashboard/dashboards/{dashboard['id']}/widgets"
    for kind, config in [("event_volume", {"timeRange": "5y"}), ("event_volume", {"timeRange": "custom"}),
                         ("system_metrics", {"filters": {"colour": "red"}}), ("recent_events", {"limit": "ten"}),
                         ("workflows", {"status": ["active"]})]:
        refused = http("POST", widgets, json={"type": kind, "title": "bad", "config": config})
        assert refused.status_code == 422, (kind, config, refused.text)
        assert kind in refused.json()["detail"][0]["msg"]
    refused = http("POST", "/dashboard/dashboards", json={
        "name": "Bad", "widgets": [{"type": "event_volume", "title": "t", "config": {"timeRange": "5y"}}]})
    assert refused.status_code == 422, refused.text
    good = http("POST", widgets, json={"type": "event_volume", "title": "ok", "config": {"timeRange": "7d"}})
    assert good.status_code == 201, good.text
    assert http("PUT", f"/dashboard/widgets/{good.json()['id']}", json={"config": {"timeRange": "1y"}}).status_code == 422
    assert http("GET", f"/dashboard/widgets/{good.json()['id']}/data").status_code == 200


def test_dashboards_crud_by_their_owner(backend, http, server):
    created = http("POST", "/dashboard/dashboards", json={
        "name": "Ops", "config": {"columns": 12},
        "widgets": [{"type": "event_volume", "title": "Events 7d", "config": {"timeRange": "7d"},
                     "position": {"x": 0, "y": 0, "w": 6, "h": 3}}]})
    assert created.status_code == 201, created.text
    dashboard = created.json()
    assert dashboard["ownerId"] == "alice" and [w["title"] for w in dashboard["widgets"]] == ["Events 7d"]
    path = f"/dashboard/dashboards/{dashboard['id']}"
    assert get_json(http, path)["widgets"][0]["config"] == {"timeRange": "7d"}
    widget_id = dashboard["widgets"][0]["id"]
    assert get_json(http, f"/dashboard/widgets/{widget_id}/data")["data"]["total"] >= 0

    assert http("PUT", path, json={"name": "Operations"}).json()["name"] == "Operations"
    # Another replica of the sidecar serves the same dashboard (on Postgres, from CC_APP_SCHEMA there);
    # on the same data dir it writes landing files of its own (CC_SIDECAR_WORKER_ID).
    with _serve(backend.settings.model_copy(update={"sidecar_worker_id": "other"})) as other:
        seen = requests.get(other + path, headers={"Authorization": f"Bearer {issue_token(SECRET, 'carol')}"},
                            timeout=10)
        assert seen.status_code == 200 and seen.json()["name"] == "Operations", seen.text
    assert http("GET", "/dashboard/dashboards/not-a-uuid").status_code == 404
    added = http("POST", f"{path}/widgets", json={"type": "recent_events", "title": "Latest", "config": {"limit": 3}})
    assert added.status_code == 201
    assert len(get_json(http, f"/dashboard/widgets/{added.json()['id']}/data")["data"]) == 3
    moved = http("PUT", f"/dashboard/widgets/{widget_id}", json={"position": {"x": 6, "y": 0, "w": 6, "h": 3}})
    assert moved.json()["position"]["x"] == 6
    assert http("DELETE", f"/dashboard/widgets/{added.json()['id']}").status_code == 204
    assert [w["id"] for w in get_json(http, path)["widgets"]] == [widget_id]

    bob = {"Authorization": f"Bearer {issue_token(SECRET, 'bob')}"}
    assert requests.put(server + path, json={"name": "mine"}, headers=bob, timeout=10).status_code == 403
    assert requests.get(server + path, headers=bob, timeout=10).status_code == 200

    for bad in ({"name": ""}, {"name": "x", "widgets": [{"type": "pie", "title": "t"}]}, {"name": "x", "extra": 1}):
        assert http("POST", "/dashboard/dashboards", json=bad).status_code == 422, bad

    assert http("DELETE", path).status_code == 204
    assert http("GET", path).status_code == 404
    assert http("GET", f"/dashboard/widgets/{widget_id}/data").status_code == 404


# --- Charlie -------------------------------------------------------------------------------------------

def test_charlie_instances_are_the_instance_marts(backend, http):
    instances = get_json(http, "/api/charlie/instances")["instances"]
    rows = dict(backend.query("select charlie_instance_id, health_status from dim_charlie_instances"))
    assert {i["id"]: i["health"]["status"] for i in instances} == rows
    active = dict(backend.query("select charlie_instance_id, active_workflows from fct_charlie_instance_workload"))
    assert {i["id"]: i["workload"]["activeWorkflows"] for i in instances} == active


def test_a_charlie_command_is_validated_sent_and_logged(backend, http):
    instances = get_json(http, "/api/charlie/instances")["instances"]
    running = next(i for i in instances if i["health"]["status"] == "healthy")
    sent = http("POST", "/api/charlie/command", json={"instanceId": running["id"], "command": "cancel_task",
                                                       "taskId": "task-42"})
    assert sent.status_code == 202, sent.text
    result = sent.json()
    assert result["status"] == "accepted" and result["httpStatus"] == 202
    received = requests.get(f"{backend.sandbox_url}/charlie/instances/{running['id']}/commands", timeout=10).json()
    assert {"id": result["commandId"], "command": "cancel_task", "args": {"taskId": "task-42"}}.items() <= \
        next(c for c in received["commands"] if c["id"] == result["commandId"]).items()
    log = get_json(http, "/api/charlie/commands", instance=running["id"])["commands"]
    assert log[0]["id"] == result["commandId"] and log[0]["requestedBy"] == "alice" and log[0]["status"] == "accepted"

    offline = next((i for i in instances if i["health"]["status"] == "offline"), None)
    if offline is not None:
        refused = http("POST", "/api/charlie/command", json={"instanceId": offline["id"], "command": "restart"})
        assert refused.status_code == 409 and refused.json()["status"] == "rejected"
    assert http("POST", "/api/charlie/command", json={"instanceId": "ghost", "command": "pause"}).status_code == 404

    for bad in ({"instanceId": running["id"], "command": "self_destruct"},
                {"instanceId": running["id"], "command": "cancel_task"},
                {"instanceId": running["id"], "command": "assign_issue", "issueKey": "not a key"},
                {"instanceId": "../../etc", "command": "pause"},
                {"instanceId": running["id"], "command": "pause", "sudo": True}, {}):
        assert http("POST", "/api/charlie/command", json=bad).status_code == 422, bad
    assert http("POST", "/api/charlie/command", data="{", headers={"Content-Type": "application/json"}
                ).status_code == 422


# --- what a token may read and do (the `rooms` and `scopes` claims) --------------------------------------

def bearer(**claims) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, 'scoped', **claims)}"}


def ws_joins(server: str, headers: dict[str, str], rooms: list[str]) -> list[str]:
    """The rooms /ws on the same sidecar lets the token join of `rooms`."""
    token = headers["Authorization"].removeprefix("Bearer ")

    async def ask() -> list[str]:
        async with websockets.connect(f"{server.replace('http', 'ws', 1)}/ws?token={token}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "rooms": rooms}))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if message["type"] == "subscribed":
                    return message["payload"]["rooms"]

    return asyncio.run(ask())


def test_a_token_limited_to_one_workflow_reads_only_that_workflow(backend, http, server):
    """The defect: such a token was refused other rooms over /ws but listed every workflow and read
    every event over REST. Now REST answers what /ws answers, and names the room it lacks."""
    mine, other = (w["id"] for w in get_json(http, "/api/workflows", limit=2)["workflows"])
    scoped = bearer(rooms=[f"workflows:{mine}"])
    own = requests.get(f"{server}/api/events", params={"workflow": mine, "limit": 1000}, headers=scoped, timeout=30)
    assert own.status_code == 200, own.text
    assert own.json()["events"] == get_json(http, "/api/events", workflow=mine, limit=1000)["events"]
    assert own.json()["events"] and {e["workflow"]["id"] for e in own.json()["events"]} == {mine}
    for path, params, room in (("/api/events", {}, "events:all"), ("/api/events", {"workflow": other}, "events:all"),
                               ("/api/workflows", {}, "workflows:*"), ("/dashboard/overview", {}, "dashboard:overview"),
                               ("/dashboard/metrics", {}, "metrics:realtime"),
                               ("/api/charlie/instances", {}, "dashboard:overview"),
                               ("/dashboard/dashboards", {}, "dashboard:overview")):
        refused = requests.get(server + path, params=params, headers=scoped, timeout=30)
        assert refused.status_code == 403 and f"`{room}`" in refused.json()["detail"], (path, params, refused.text)
    assert ws_joins(server, scoped, [f"workflows:{mine}", f"workflows:{other}", "events:all", "dashboard:overview",
                                     "metrics:realtime", "alerts:all"]) == [f"workflows:{mine}"]
    # A family claim reads the whole family: the list, and any workflow's events.
    family = bearer(rooms=["workflows:*"])
    listed = requests.get(f"{server}/api/workflows", params={"limit": 2}, headers=family, timeout=30)
    assert listed.status_code == 200 and [w["id"] for w in listed.json()["workflows"]] == [mine, other]
    assert requests.get(f"{server}/api/events", params={"workflow": other}, headers=family,
                        timeout=30).status_code == 200


def test_a_command_needs_the_commands_scope(backend, http, server):
    """The defect: any valid token's command was sent to the instance. Now only one whose `scopes`
    claim names `commands`; the others are refused before anything is sent or logged."""
    instance = next(i["id"] for i in get_json(http, "/api/charlie/instances")["instances"]
                    if i["health"]["status"] == "healthy")
    sent_to = f"{backend.sandbox_url}/charlie/instances/{instance}/commands"
    command = {"instanceId": instance, "command": "cancel_task", "taskId": "task-scoped"}
    before = len(requests.get(sent_to, timeout=10).json()["commands"])
    for claims in ({}, {"scopes": ["dashboards"]}, {"rooms": ["workflows:*", "dashboard:overview"]}):
        refused = requests.post(f"{server}/api/charlie/command", json=command, headers=bearer(**claims), timeout=30)
        assert refused.status_code == 403 and "`commands` scope" in refused.json()["detail"], (claims, refused.text)
    assert len(requests.get(sent_to, timeout=10).json()["commands"]) == before
    assert not [c for c in get_json(http, "/api/charlie/commands", instance=instance)["commands"]
                if c["requestedBy"] == "scoped"]
    sent = requests.post(f"{server}/api/charlie/command", json=command, headers=bearer(scopes=["commands"]), timeout=30)
    assert sent.status_code == 202, sent.text
    assert len(requests.get(sent_to, timeout=10).json()["commands"]) == before + 1


def test_widget_data_needs_the_room_of_what_the_widget_shows(backend, http, server):
    widgets = get_json(http, f"/dashboard/dashboards/{_default_dashboard(http)['id']}")["widgets"]
    rooms_of = {"overview": "dashboard:overview", "workflow_status": "dashboard:overview",
                "system_status": "dashboard:overview", "charlie_workload": "dashboard:overview",
                "event_volume": "metrics:realtime", "system_metrics": "metrics:realtime",
                "recent_events": "events:all", "workflows": "workflows:*"}
    assert {w["type"] for w in widgets} == set(rooms_of)
    for widget in widgets:
        room = rooms_of[widget["type"]]
        path = f"{server}/dashboard/widgets/{widget['id']}/data"
        # The dashboard page (dashboard:overview) plus what the widget shows.
        assert requests.get(path, headers=bearer(rooms=["dashboard:overview", room]), timeout=30).status_code == 200
        if room != "dashboard:overview":
            refused = requests.get(path, headers=bearer(rooms=["dashboard:overview"]), timeout=30)
            assert refused.status_code == 403 and f"`{room}`" in refused.json()["detail"], widget
        refused = requests.get(path, headers=bearer(rooms=[room] if room != "dashboard:overview" else []), timeout=30)
        assert refused.status_code == 403, widget


def _claims(grant: tuple[str, str]) -> dict[str, list[str]]:
    kind, name = grant
    return {"rooms": [name], "scopes": []} if kind == "room" else {"rooms": [], "scopes": [name]}


@pytest.mark.parametrize(("route", "grant"), [(r, g) for r, grants in EXPECTED.items() for g in grants],
                         ids=lambda v: " ".join(v))
def test_each_route_is_open_to_a_token_with_just_its_grant(backend, http, server, route, grant):
    """The other side of scope escalation (tests/streaming/test_auth_attacks.py): the room or scope
    the README's table names is enough on its own, with real ids and real marts."""
    method, path = route
    dashboard = _default_dashboard(http)["id"]
    widget = next(w["id"] for w in get_json(http, f"/dashboard/dashboards/{dashboard}")["widgets"]
                  if w["type"] == "overview")
    body = {"POST /api/charlie/command": {"instanceId": "ghost", "command": "pause"},
            "POST /dashboard/dashboards": {"name": "Mine"},
            "PUT /dashboard/dashboards/{dashboard_id}": {"name": "Mine"},
            "POST /dashboard/dashboards/{dashboard_id}/widgets": {"type": "overview", "title": "Mine"},
            "PUT /dashboard/widgets/{widget_id}": {"title": "Mine"}}.get(f"{method} {path}")
    if method != "GET":  # changes go to ids that name nothing (404), so the shared dashboard stays as it is
        dashboard = widget = "00000000-0000-0000-0000-000000000000"
    url = server + path.replace("{dashboard_id}", dashboard).replace("{widget_id}", widget).replace("{alert_id}", FAKE_ID)
    headers = bearer(**_claims(grant))
    answer = requests.request(method, url, json=body, headers=headers, timeout=30)
    assert answer.status_code in (200, 201, 404), answer.text
    if answer.status_code == 201:
        assert requests.delete(f"{server}/dashboard/dashboards/{answer.json()['id']}", headers=headers,
                               timeout=30).status_code == 204


# --- query hygiene -------------------------------------------------------------------------------------

# Every operation the document lists, so a route added later is covered without a line here; the
# webhook routes take signed deliveries, whose URLs a sender may have been given with any query.
DOCUMENT = create_app().openapi()
OPERATIONS = [(method.upper(), path) for path, operations in DOCUMENT["paths"].items()
              for method, operation in operations.items() if "webhooks" not in operation.get("tags", [])]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=" ".join)
def test_a_query_parameter_the_route_does_not_take_is_a_400(backend, http, method, path):
    """The defect: unknown parameters were ignored, so a misspelt filter answered as if it had not
    been sent. Now every route refuses one before doing anything, naming it and what it takes."""
    taken = [p["name"] for p in DOCUMENT["paths"][path][method.lower()].get("parameters", []) if p["in"] == "query"]
    dashboards = get_json(http, "/dashboard/dashboards")["dashboards"]
    body = BODIES.get(path) if method in ("POST", "PUT") else None
    response = http(method, path.replace("{dashboard_id}", FAKE_ID).replace("{widget_id}", FAKE_ID).replace("{alert_id}", FAKE_ID),
                    params={"colour": "red"}, json=body)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "`colour`" in detail and f"{method} {path}" in detail, detail
    assert all(f"`{name}`" in detail for name in taken) if taken else "takes no query parameters" in detail, detail
    assert get_json(http, "/dashboard/dashboards")["dashboards"] == dashboards  # nothing was changed


def test_a_misspelt_parameter_is_named_with_the_one_meant(backend, http):
    response = http("GET", "/api/workflows", params={"Status": "active", "limit": 5, "colour": "red"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("unknown query parameters `Status`, `colour`: GET /api/workflows takes "), detail
    assert "did you mean `status` for `Status`?" in detail
    response = http("GET", "/dashboard/metrics", params={"timerange": "7d"})
    assert response.status_code == 400 and "`timeRange` for `timerange`" in response.json()["detail"]
    # What a route takes, each sent, is still a 200; `filters` too (declared in the document only).
    assert http("GET", "/dashboard/metrics", params={"timeRange": "24h", "filters": '{"host": "web-1"}'}).ok
    assert http("GET", "/api/workflows", params={"status": "active", "limit": 5, "offset": 0}).ok


def test_workflows_all_is_joined_with_the_grant_that_lists_every_workflow(backend, http, server):
    """The room of every workflow's updates and the list of every workflow are one grant: a token
    joins `workflows:all` exactly when it may read `/api/workflows`."""
    for claims, granted in (({}, True), ({"rooms": ["workflows:*"]}, True), ({"rooms": ["workflows:all"]}, True),
                            ({"rooms": ["*"]}, True), ({"rooms": ["workflows:linear:*"]}, False),
                            ({"rooms": ["workflows:a*"]}, False),
                            ({"rooms": ["events:all", "dashboard:overview", "metrics:realtime"]}, False)):
        headers = bearer(**claims)
        listed = requests.get(f"{server}/api/workflows", params={"limit": 1}, headers=headers, timeout=30)
        assert listed.status_code == (200 if granted else 403), (claims, listed.text)
        assert ws_joins(server, headers, ["workflows:all"]) == (["workflows:all"] if granted else []), claims
    # `workflows:all` is not a family: it grants no one workflow's events.
    some = get_json(http, "/api/workflows", limit=1)["workflows"][0]["id"]
    assert requests.get(f"{server}/api/events", params={"workflow": some}, headers=bearer(rooms=["workflows:all"]),
                        timeout=30).status_code == 403


# --- live events and builds ----------------------------------------------------------------------------

def _pull_request_opened(repo: str, number: int, title: str, branch: str, at: datetime) -> dict:
    stamp = at.isoformat() + "Z"
    return {"action": "opened", "number": number, "repository": {"full_name": repo},
            "sender": {"login": "octo", "type": "User"},
            "pull_request": {"id": 7_000_000 + number, "number": number, "title": title, "body": "", "state": "open",
                             "draft": False,
                             "created_at": stamp, "updated_at": stamp, "merged_at": None, "closed_at": None,
                             "html_url": f"https://github.com/{repo}/pull/{number}",
                             "user": {"login": "octo", "type": "User"}, "head": {"ref": branch},
                             "base": {"repo": {"full_name": repo}}}}


def _deliver(server: str, payload: dict) -> None:
    body = json.dumps(payload).encode()
    response = requests.post(f"{server}/webhooks/github", data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": f"delivery-{payload['repository']['full_name']}-{payload['number']}",
        "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(GITHUB_SECRET, body)})
    assert response.status_code < 300, response.text


def test_a_webhook_is_visible_before_the_next_build(backend, http, server):
    before = get_json(http, "/dashboard/overview")
    # An existing Linear-rooted workflow gets a new PR naming its issue; an unknown repo's PR starts a new one.
    issue_key, workflow_id, count = backend.query(
        "select linear_issue_key, workflow_id, event_count from fct_workflows where linear_issue_key is not null"
        " order by workflow_id limit 1")[0]
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    _deliver(server, _pull_request_opened("acme/api", 90001, f"{issue_key}: fix it", f"{issue_key.lower()}-fix", now))
    _deliver(server, _pull_request_opened("acme/brand-new", 7, "Brand new thing", "feature", now))
    # The live state recomputes both workflows by fct_workflows' SQL, in the background.
    after = wait_for(lambda: get_json(http, "/dashboard/overview"),
                     lambda o: o["workflows"]["total"] == before["workflows"]["total"] + 1
                     and o["events"]["total"] == before["events"]["total"] + 2)
    assert after["events"]["total"] == before["events"]["total"] + 2
    assert after["events"]["last24h"] == before["events"]["last24h"] + 2
    assert after["workflows"]["total"] == before["workflows"]["total"] + 1
    assert after["live"]["events"] == 2 and after["live"]["newWorkflows"] == 1

    # Both are the newest now (one order, live or built): their last events are the two PRs.
    top = get_json(http, "/api/workflows", limit=2)
    assert {w["id"] for w in top["workflows"]} == {"github:acme/brand-new#7", workflow_id}
    assert all(w["isLive"] for w in top["workflows"])
    assert top["total"] == before["workflows"]["total"] + 1
    mine = [w for w in get_json(http, "/api/workflows", limit=500, offset=0)["workflows"] if w["id"] == workflow_id]
    if mine:  # on the first page of 500
        assert mine[0]["eventCount"] == count + 1 and mine[0]["liveEventCount"] == 1
        # The PR joined the Linear workflow: it is the workflow's (newest) PR now, not only a count.
        assert mine[0]["github"] == {"repo": "acme/api", "prNumber": 90001} and "github" in mine[0]["sources"]
        assert mine[0]["isLive"]
    events_of = get_json(http, "/api/events", workflow=workflow_id, limit=1000)["events"]
    assert len(events_of) == count + 1 and events_of[-1]["isLive"]
    assert get_json(http, "/api/events", limit=2)["events"][-1]["isLive"]

    # A build that does not contain them keeps them visible (the webhook has not reached the lake yet).
    if backend.name == "duckdb":
        export_snapshot(backend.settings.duckdb_path, snapshot_path(backend.settings))
        time.sleep(0.6)  # the snapshot is re-checked every 0.5 s
        assert get_json(http, "/dashboard/overview")["live"]["events"] == 2


def test_cursor_pages_merge_live_and_built_workflows_each_once_in_order(backend, http, server):
    # Four pull requests in repos no build has seen: four live-only workflows, each newer than the last.
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    for n in range(4):
        _deliver(server, _pull_request_opened(f"acme/cursor-{n}", 1, f"Cursor {n}", "feature",
                                              now - timedelta(minutes=10 - n)))
    mine = [f"github:acme/cursor-{n}#1" for n in (3, 2, 1, 0)]
    wait_for(lambda: {w["id"] for w in get_json(http, "/api/workflows", limit=10)["workflows"]},
             lambda ids: set(mine) <= ids)
    warehouse = [r[0] for r in backend.query(
        "select workflow_id from fct_workflows order by last_event_at desc, workflow_id desc")]

    walked = walk(http, limit=3)
    ids = [w["id"] for w in walked]
    # One order over built and live workflows (a built one with new events moves up), none twice;
    # every built workflow is there (earlier tests' live ones too).
    assert len(ids) == len(set(ids)) and set(warehouse) | set(mine) <= set(ids)
    assert all(w["isLive"] for w in walked if w["id"] not in warehouse)
    order = [(w["lastEventAt"], w["id"]) for w in walked]
    assert order == sorted(order, reverse=True)
    assert [i for i in ids if i in mine] == mine  # newest first among them
    assert all(w["isLive"] for w in walked if w["id"] in mine)
    untouched = [i for i in ids if not next(w for w in walked if w["id"] == i)["isLive"]]
    assert untouched == [i for i in warehouse if i in untouched]  # the built ones keep the marts' order
    first = get_json(http, "/api/workflows", limit=3)
    assert first["total"] == len(walked)
    # A page that ends on a live workflow goes on from it like from any other.
    live_at = max(i for i, w in enumerate(walked) if w["isLive"])
    second = get_json(http, "/api/workflows", limit=live_at + 1)
    assert second["workflows"][-1]["isLive"]
    rest = get_json(http, "/api/workflows", limit=3, cursor=second["nextCursor"])["workflows"]
    assert [w["id"] for w in rest] == ids[live_at + 1:live_at + 4]
    # Filters apply to live and built rows alike.
    assert [w["id"] for w in walk(http, limit=5, status="completed")] == [
        w["id"] for w in walked if w["status"] == "completed"]


def _write_locked(path: Path) -> bool:
    """Whether another process holds DuckDB's write lock on `path`: F_GETLK asks without taking it
    (opening the file with DuckDB to find out could make the build's own open fail)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        query = struct.pack("@hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        return struct.unpack("@hhqqi4x", fcntl.fcntl(fd, fcntl.F_GETLK, query))[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)


@pytest.mark.timeout(300)
def test_overview_is_served_while_a_dbt_build_holds_the_warehouse(backend, http):
    # DuckDB: dbt holds the file's write lock (checked without opening it). Postgres: readers and
    # the rebuilding transactions do not wait on each other; the build simply runs.
    warehouse = backend.settings.duckdb_path
    target = warehouse.parent / "dbt_target"
    env = {**os.environ, **backend.settings.dbt_env()}
    build = subprocess.Popen(
        [str(Path(sys.executable).parent / "dbt"), "run", "--select", "+dashboard_overview", "--project-dir",
         str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR), "--target", backend.name, "--target-path", str(target),
         "--log-path", str(target)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    served_while_locked = 0
    try:
        while build.poll() is None:
            locked = _write_locked(warehouse) if backend.name == "duckdb" else True
            response = http("GET", "/dashboard/overview")
            assert response.status_code == 200, response.text
            if locked and build.poll() is None:
                served_while_locked += 1
                assert response.json()["events"]["total"] > 0
            time.sleep(0.05)
    finally:
        if build.poll() is None:
            build.kill()
        build.wait(30)
    assert served_while_locked > 0, "the build never held the warehouse while the overview was read"
