"""GraphQL at /graphql over real HTTP and a real WebSocket (uvicorn on loopback), on the session's
built world: the same answers as REST, subscriptions fed by the rooms, limits, grants, the SDL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import uvicorn
import websockets
from fastapi import FastAPI
from graphql import (
    GraphQLObjectType,
    build_client_schema,
    build_schema,
    get_introspection_query,
    lexicographic_sort_schema,
    print_schema,
)
from graphql import get_named_type as named

from resources.settings import Settings
from streaming.app import create_app
from streaming.auth import hmac_sha256_hex, issue_token
from streaming.graphql.export import SDL_PATH

SECRET = "test-jwt-secret"
GITHUB_SECRET = "test-github-webhook-secret"
SDL = build_schema(SDL_PATH.read_text())


@dataclass
class Server:
    url: str
    app: FastAPI

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/graphql"


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[Server]:
    """The sidecar app (`create_app`, as `uvicorn streaming.app:app` builds it) on a loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(settings)
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the sidecar did not start"
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{sock.getsockname()[1]}", app)
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request, now_world, tmp_path_factory) -> Iterator[Settings]:
    """A copy of the session's built world (tests/conftest.py), as test_api's: on DuckDB its data
    folder, on Postgres its database too."""
    data_dir = tmp_path_factory.mktemp(f"graphql_{request.param}") / "data"
    env = {"CC_DATA_DIR": str(data_dir), "CC_SANDBOX_URL": now_world.sandbox.url, "CC_JWT_SECRET": SECRET,
           "CC_GITHUB_WEBHOOK_SECRET": GITHUB_SECRET, "CC_WAREHOUSE": request.param}
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            world = request.getfixturevalue("now_world_pg")
            shutil.copytree(world.data_dir, data_dir)
            env["CC_PG_URL"] = stack.enter_context(world.copy(request.getfixturevalue("pg_admin_url"), "cc_test_gql"))
        else:
            now_world.copy(data_dir)
        yield Settings.from_env(env)


@pytest.fixture(scope="module")
def server(settings) -> Iterator[Server]:
    with serve(settings) as running:
        yield running


def headers(**claims) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, 'alice', **claims)}"}


TOKEN = issue_token(SECRET, "alice")
FULL = {"Authorization": f"Bearer {TOKEN}"}


def rest(server: Server, path: str, auth: dict = FULL, **params) -> dict:
    response = requests.get(server.url + path, params=params, headers=auth, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def gql(server: Server, query: str, auth: dict | None = FULL, **variables) -> dict:
    response = requests.post(server.url + "/graphql", json={"query": query, "variables": variables},
                             headers=auth or {}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def data(server: Server, query: str, auth: dict = FULL, **variables) -> dict:
    body = gql(server, query, auth, **variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def fields(type_name: str, skip: tuple[str, ...] = ()) -> str:
    """Every field of `type_name` (as the committed SDL has it), nested objects in full."""
    kind = SDL.get_type(type_name)
    assert isinstance(kind, GraphQLObjectType)
    out = []
    for name, field in kind.fields.items():
        if name in skip or field.args:
            continue
        inner = named(field.type)
        out.append(f"{name} {{ {fields(inner.name)} }}" if isinstance(inner, GraphQLObjectType) else name)
    return " ".join(out)


WORKFLOW, EVENT = fields("Workflow"), fields("Event")
PAGE = f"workflows {{ {WORKFLOW} }} total limit offset hasMore nextCursor"


def without(body: dict, *keys: str) -> dict:
    return {k: v for k, v in body.items() if k not in keys}


# --- the same answers as REST --------------------------------------------------------------------------

def test_queries_answer_what_rest_answers(server):
    overview = data(server, f"{{ overview {{ {fields('Overview')} }} }}")["overview"]
    assert without(overview, "generatedAt") == without(rest(server, "/dashboard/overview"), "generatedAt")
    assert overview["workflows"]["total"] > 0 and overview["events"]["total"] > 0

    # A workflow page, the next one by its cursor, and a filtered one.
    query = f"query($limit: Int!, $cursor: String, $status: WorkflowStatus) {{ workflows(limit: $limit, " \
            f"cursor: $cursor, status: $status) {{ {PAGE} }} }}"
    first = data(server, query, limit=7)["workflows"]
    assert first == rest(server, "/api/workflows", limit=7) and first["hasMore"]
    second = data(server, query, limit=7, cursor=first["nextCursor"])["workflows"]
    assert second == rest(server, "/api/workflows", limit=7, cursor=first["nextCursor"])
    assert not {w["id"] for w in first["workflows"]} & {w["id"] for w in second["workflows"]}
    active = data(server, query, limit=50, status="active")["workflows"]
    assert active == rest(server, "/api/workflows", limit=50, status="active") and active["workflows"]

    # A workflow's events: nested under each workflow of a page, and on their own.
    nested = data(server, f"{{ workflows(limit: 5) {{ workflows {{ id events(limit: 200) {{ events {{ {EVENT} }} "
                          "nextSince } } } }")["workflows"]["workflows"]
    for workflow in nested:
        expected = rest(server, "/api/events", workflow=workflow["id"], limit=200)
        assert workflow["events"] == expected and expected["events"], workflow["id"]
    # One with more events than the page of 3 (the world ends now: the newest workflow may have one).
    longer = next((w for w in nested if len(w["events"]["events"]) > 3), None)
    assert longer is not None, "none of the first 5 workflows has more than 3 events"
    events = data(server, f"query($w: String) {{ events(workflow: $w, limit: 3) {{ events {{ {EVENT} }} nextSince }} }}",
                  w=longer["id"])["events"]
    assert events == rest(server, "/api/events", workflow=longer["id"], limit=3) and len(events["events"]) == 3

    assert data(server, f"{{ charlieInstances {{ {fields('CharlieInstanceList')} }} }}")["charlieInstances"] == \
        rest(server, "/api/charlie/instances")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start, end = (end - timedelta(days=4)).isoformat(), end.isoformat()  # a fixed window: presets slide
    metrics = data(server, f'query($from: String, $to: String) {{ metrics(timeRange: CUSTOM, from: $from, to: $to, '
                           f'filters: {{source: "github"}}) {{ {fields("Metrics")} }} }}', **{"from": start, "to": end})
    expected = rest(server, "/dashboard/metrics", timeRange="custom", filters=json.dumps({"source": "github"}),
                    **{"from": start, "to": end})
    assert without(metrics["metrics"], "generatedAt") == without(expected, "generatedAt")
    assert expected["events"]["total"] > 0
    assert data(server, f"{{ alerts(limit: 5) {{ {fields('AlertList')} }} }}")["alerts"] == \
        rest(server, "/api/alerts", limit=5)


def test_a_bad_argument_is_refused_as_rest_refuses_it(server):
    for query, said in (("{ workflows(limit: 501) { total } }", "`limit` must be from 1 to 500"),
                        ('{ workflows(cursor: "garbage!") { total } }', "`cursor` is not a `nextCursor`"),
                        ('{ events(since: "yesterday") { nextSince } }', "`since` is not an ISO 8601 time"),
                        ("{ metrics(timeRange: CUSTOM) { generatedAt } }", "timeRange=custom needs both"),
                        ('{ metrics(filters: {colour: "red"}) { generatedAt } }', "unknown filter 'colour'")):
        body = gql(server, query)
        assert body["data"] is None and said in body["errors"][0]["message"], (query, body)


def test_a_page_of_workflows_with_their_events_is_one_query(server):
    """No N+1: the events of a page of 50 workflows are one read of the marts (data loaders)."""
    marts = server.app.state.serving.marts
    read = marts.query
    asked: list[str] = []

    def counting(sql: str, params: dict | None = None):
        asked.append(sql)
        return read(sql, params)

    marts.query = counting
    try:
        page = data(server, "{ workflows(limit: 50) { total workflows { id events(limit: 5) { events { id } } } } }")
    finally:
        del marts.query
    workflows = page["workflows"]["workflows"]
    assert len(workflows) == min(50, page["workflows"]["total"]) > 20 and all(w["events"]["events"] for w in workflows)
    assert len([sql for sql in asked if "fct_workflow_events" in sql]) == 1, asked


# --- limits ----------------------------------------------------------------------------------------------

def test_an_expensive_or_deep_query_is_refused_before_it_reads_anything(server, settings):
    costly = "{ workflows(limit: 500) { workflows { id events(limit: 1000) { events { id actor { id } } } } } }"
    body = gql(server, costly)
    assert body["data"] is None
    message = body["errors"][0]["message"]
    assert "query cost" in message and "over this server's limit of 10000 (CC_GRAPHQL_MAX_COST)" in message, message
    # Aliases and fragments cost what they ask for.
    aliased = "fragment W on WorkflowPage { workflows { id } } { " + " ".join(
        f"p{n}: workflows(limit: 500) {{ ...W }}" for n in range(21)) + " }"
    assert "query cost 10521 is over" in gql(server, aliased)["errors"][0]["message"]
    # Variables count as given.
    query = "query($n: Int!) { workflows(limit: $n) { workflows { events(limit: $n) { events { id } } } } }"
    assert "query cost" in gql(server, query, n=200)["errors"][0]["message"]
    assert "errors" not in gql(server, query, n=10)

    deep = "{ workflows(limit: 1) { workflows { events(limit: 1) { events { actor { id } } } } } }"  # depth 6
    assert "errors" not in gql(server, deep)
    # The limits are read from the sidecar's settings at each operation: here with CC_GRAPHQL_MAX_DEPTH=5.
    settings_now = server.app.state.settings
    server.app.state.settings = settings.model_copy(update={"graphql_max_depth": 5})
    marts = server.app.state.serving.marts
    asked: list[str] = []
    read = marts.query
    marts.query = lambda sql, params=None: asked.append(sql) or read(sql, params)
    try:
        body = gql(server, deep)
        shallow = gql(server, "{ workflows(limit: 1) { workflows { id } } }")
    finally:
        del marts.query
        server.app.state.settings = settings_now
    assert body["data"] is None and body["errors"][0]["message"].startswith(
        "query depth 6 is over this server's limit of 5 (CC_GRAPHQL_MAX_DEPTH)"), body
    assert body["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"
    assert "errors" not in shallow
    assert not [sql for sql in asked if "fct_workflow_events" in sql]  # the deep one was refused before reading


# --- grants ----------------------------------------------------------------------------------------------

def test_no_token_or_a_bad_one_reads_nothing(server):
    for auth, said in ((None, "no token"), ({"Authorization": "Bearer not-a-jwt"}, "invalid token"),
                       ({"Authorization": f"Bearer {issue_token('another-secret', 'mallory')}"}, "invalid token"),
                       (headers(ttl_s=-60), "token expired")):
        body = gql(server, "{ overview { asOf } workflows { total } }", auth)
        assert body["data"] is None, body
        assert {e["message"].split(":")[0] for e in body["errors"]} == {said}, body
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_scoped_token_reads_over_graphql_what_it_reads_over_rest(server):
    mine, other = (w["id"] for w in rest(server, "/api/workflows", limit=2)["workflows"])
    scoped = headers(rooms=[f"workflows:{mine}"])
    own = data(server, f"query($w: String) {{ events(workflow: $w, limit: 1000) {{ events {{ {EVENT} }} nextSince }} }}",
               scoped, w=mine)["events"]
    assert own == rest(server, "/api/events", scoped, workflow=mine, limit=1000) and own["events"]
    for query, room in (("{ overview { asOf } }", "dashboard:overview"), ("{ workflows { total } }", "workflows:*"),
                        (f'{{ events(workflow: "{other}") {{ nextSince }} }}', "events:all"),
                        ("{ events { nextSince } }", "events:all"), ("{ metrics { generatedAt } }", "metrics:realtime"),
                        ("{ charlieInstances { instances { id } } }", "dashboard:overview"),
                        ("{ alerts { nextCursor } }", "alerts:all"), ("{ reports { kind } }", "dashboard:overview")):
        body = gql(server, query, scoped)
        assert body["data"] is None and f"`{room}`" in body["errors"][0]["message"], (query, body)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert requests.get(server.url + {"dashboard:overview": "/dashboard/overview", "workflows:*": "/api/workflows",
                                          "events:all": "/api/events", "metrics:realtime": "/dashboard/metrics",
                                          "alerts:all": "/api/alerts"}[room],
                            headers=scoped, timeout=30).status_code == 403
    # `workflows:all` lists every workflow, yet grants no one workflow's events: each is refused, by name.
    listing = gql(server, "{ workflows(limit: 2) { workflows { id events { nextSince } } } }",
                  headers(rooms=["workflows:all"]))
    assert [w["events"] for w in listing["data"]["workflows"]["workflows"]] == [None, None]
    assert all("`events:all` or `workflows:" in e["message"] for e in listing["errors"]) and len(listing["errors"]) == 2


# --- subscriptions ---------------------------------------------------------------------------------------

async def _connect(server: Server, payload: dict[str, Any]):
    ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    return ws


async def _subscribe(ws, op: str, query: str, **variables) -> None:
    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables}}))


async def _next(ws, wanted: Callable[[dict], bool], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if wanted(message):
            return message


def _pull_request_opened(repo: str, number: int, title: str, branch: str) -> bytes:
    stamp = datetime.now(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"
    return json.dumps({"action": "opened", "number": number, "repository": {"full_name": repo},
                       "sender": {"login": "octo", "type": "User"},
                       "pull_request": {"id": 8_000_000 + number, "number": number, "title": title, "body": "",
                                        "state": "open", "draft": False, "created_at": stamp, "updated_at": stamp,
                                        "merged_at": None, "closed_at": None,
                                        "html_url": f"https://github.com/{repo}/pull/{number}",
                                        "user": {"login": "octo", "type": "User"}, "head": {"ref": branch},
                                        "base": {"repo": {"full_name": repo}}}}).encode()


def _health(server: Server) -> dict:
    return requests.get(server.url + "/healthz", timeout=10).json()


def _clients(server: Server) -> int:
    return _health(server)["clients"]


def test_a_subscription_gets_a_webhooks_event_and_the_workflow_update_within_a_second(server):
    """graphql-transport-ws, fed by the same rooms as /ws: a signed webhook's event reaches the
    subscriber within the bar's second of the webhook's acknowledgement (a /ws client of
    `events:all` gets it from the same fan-out), and the workflow's new state within the second
    too: the live state waits at most `MAX_SPACING_S` before computing it, and an arrival after a
    quiet spell only `COALESCE_S` (streaming/state/workflows.py)."""
    # A Linear issue's workflow with no pull request yet: the workflow shows its newest-created PR,
    # and the world ends now, so one of its own PRs may be newer than this test's.
    listed = rest(server, "/api/workflows", limit=500)["workflows"]
    issue_key, workflow_id = next((w["linearIssueKey"], w["id"]) for w in listed
                                  if w["linearIssueKey"] and not w.get("github"))
    body = _pull_request_opened("acme/api", 91001, f"{issue_key}: subscribed", f"{issue_key.lower()}-sub")

    async def scenario():
        deadline = time.monotonic() + 60
        while (await asyncio.to_thread(_health, server))["live_state"] != "ready":  # what computes the update
            assert time.monotonic() < deadline, "the live state did not get ready"
            await asyncio.sleep(0.1)
        before = await asyncio.to_thread(_clients, server)
        ws = await _connect(server, {"Authorization": FULL["Authorization"]})
        plain = await websockets.connect(f"{server.url.replace('http://', 'ws://')}/ws?token={TOKEN}")
        try:
            await plain.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
            await _next(plain, lambda m: m["type"] == "subscribed", 5)
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await _subscribe(ws, "events", f"subscription {{ newEvents {{ type room timestamp event {{ {EVENT} }} }} }}")
            await _subscribe(ws, "updates", f"subscription($id: String) {{ workflowUpdates(id: $id) {{ {WORKFLOW} }} }}",
                             id=workflow_id)
            while await asyncio.to_thread(_clients, server) < before + 3:  # all three joined their rooms
                await asyncio.sleep(0.02)
            response = await asyncio.to_thread(requests.post, server.url + "/webhooks/github", data=body, timeout=10,
                                               headers={"Content-Type": "application/json",
                                                        "X-GitHub-Event": "pull_request",
                                                        "X-GitHub-Delivery": "graphql-subscription-1",
                                                        "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(GITHUB_SECRET, body)})
            assert response.status_code == 202, response.text
            acknowledged = time.monotonic()
            got = {}
            while len(got) < 2:
                # The event and the workflow's new state within the bar's second (the live state
                # waits at most MAX_SPACING_S before a run); on a host busier than its cores (CI on
                # two xdist workers) the run itself is slowed as much, so there a second more.
                busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
                within = 1.0 if "events" not in got or not busy else 2.0
                try:
                    message = await _next(ws, lambda m: m["type"] == "next", within - (time.monotonic() - acknowledged))
                except TimeoutError:
                    state = (await asyncio.to_thread(_health, server)).get("live_state_detail")
                    raise AssertionError(f"only {sorted(got)} within {within} s of the webhook's 202 "
                                         f"(live state: {state})") from None
                update = (message["payload"].get("data") or {}).get("workflowUpdates") or {}
                if message["id"] == "updates" and update.get("github") != {"repo": "acme/api", "prNumber": 91001}:
                    continue  # a state computed before the pull request's record: the next one has it
                got[message["id"]] = message["payload"]
            event_ids = response.json()["events"]
            over_ws = await _next(plain, lambda m: m.get("room") == "events:all", 5)
            assert over_ws["payload"]["id"] in event_ids
            return event_ids, got
        finally:
            await ws.close()
            await plain.close()

    event_ids, got = asyncio.run(scenario())
    assert "errors" not in got["events"] and "errors" not in got["updates"], got
    pushed = got["events"]["data"]["newEvents"]
    assert pushed["room"] == "events:all" and pushed["event"]["id"] in event_ids
    assert pushed["event"]["workflow"] == {"id": workflow_id} and pushed["event"]["isLive"]
    updated = got["updates"]["data"]["workflowUpdates"]
    assert updated["id"] == workflow_id and updated["isLive"]
    assert updated["github"] == {"repo": "acme/api", "prNumber": 91001}
    # What it was pushed is what REST lists for it now.
    listed = next(w for w in rest(server, "/api/workflows", limit=500)["workflows"] if w["id"] == workflow_id)
    assert without(listed, "eventCount", "liveEventCount") == without(updated, "eventCount", "liveEventCount")


def test_a_subscription_needs_a_token_and_a_room_the_token_may_join(server):
    async def scenario():
        for payload, said in (({}, "no token"), ({"token": "not-a-jwt"}, "invalid token"),
                              ({"Authorization": headers(ttl_s=-5)["Authorization"]}, "token expired")):
            ws = await _connect(server, payload)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 4403 and closed.value.rcvd.reason.startswith(said), payload

        token = issue_token(SECRET, "bob", rooms=["workflows:linear:*"])
        ws = await _connect(server, {"token": token})
        try:
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await _subscribe(ws, "all", "subscription { workflowUpdates { id } }")
            await _subscribe(ws, "events", "subscription { newEvents { type } }")
            await _subscribe(ws, "status", "subscription { systemStatus { sessions { active } } }")
            await _subscribe(ws, "mine", 'subscription { workflowUpdates(id: "linear:ENG-1") { id } }')
            refused = {}
            while len(refused) < 3:
                message = await _next(ws, lambda m: m["type"] == "error", 5)
                refused[message["id"]] = message["payload"][0]["message"]
            assert refused == {"all": "may not join `workflows:all`: the token's rooms claim does not allow it",
                               "events": "may not join `events:all`: the token's rooms claim does not allow it",
                               "status": "may not join `dashboard:overview`: the token's rooms claim does not "
                                         "allow it"}
            await _subscribe(ws, "star", 'subscription { workflowUpdates(id: "*") { id } }')
            star = await _next(ws, lambda m: m.get("id") == "star", 5)
            assert star["type"] == "error" and "is not a room" in star["payload"][0]["message"]
        finally:
            await ws.close()

    asyncio.run(scenario())


# --- the SDL -------------------------------------------------------------------------------------------

def test_the_committed_sdl_is_the_running_servers_schema(server):
    """`streaming/graphql/schema.graphql` is what the server's introspection says (no token needed, as
    for /openapi.json): a schema change comes with `python -m streaming.graphql.export`."""
    answer = gql(server, get_introspection_query(descriptions=True, specified_by_url=True), auth=None)
    assert "errors" not in answer, answer
    live = print_schema(lexicographic_sort_schema(build_client_schema(answer["data"])))
    assert live == print_schema(lexicographic_sort_schema(SDL)), (
        f"{SDL_PATH.relative_to(SDL_PATH.parents[2])} is not the running server's schema: "
        "run `python -m streaming.graphql.export` and commit the file")


# --- reports ---------------------------------------------------------------------------------------------

def test_reports_are_listed_newest_first_with_their_headlines(server, settings):
    for kind, day, value in (("daily", "2026-11-19", 120), ("daily", "2026-11-20", 140), ("weekly", "2026-11-16", 800)):
        folder = settings.reports_dir / kind / day
        folder.mkdir(parents=True)
        (folder / "report.html").write_text("<html></html>")
        (folder / "headlines.csv").write_text("metric,label,value,previous,change,change_pct\n"
                                              f"events,Events,{value},100,{value - 100},{value - 100}.0\n")
    (settings.reports_dir / "daily" / ".2026-11-21.abc.tmp").mkdir()  # a report being written
    reports = data(server, "{ reports { kind period files headlines { metric value previous changePct } } }")["reports"]
    assert [(r["kind"], r["period"]) for r in reports] == [("daily", "2026-11-20"), ("daily", "2026-11-19"),
                                                          ("weekly", "2026-11-16")]
    assert reports[0]["files"] == ["headlines.csv", "report.html"]
    assert reports[0]["headlines"] == [{"metric": "events", "value": 140.0, "previous": 100.0, "changePct": 40.0}]
    weekly = data(server, "{ reports(kind: weekly, limit: 1) { period } }")["reports"]
    assert weekly == [{"period": "2026-11-16"}]
