"""Live workflow state: what a person sees between two builds, over real HTTP and real WebSockets.

A real sidecar (`python -m streaming.serve`) with no build yet: everything it shows comes from the
live state (`streaming/state/`), which runs dbt's own `fct_workflows` SQL over what arrived. Each
test is one case the issue named: a new Linear team links, Backlog with an assignee is pending with
its assignee, Done and merged complete the workflow, a PR edit is not a second event, a cron
failure moves the pushed and the REST overview; and `workflow.updated` reaches its rooms.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import websockets

NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)


def iso(at: datetime) -> str:
    return at.isoformat() + "Z"


@pytest.fixture
def live(make_sidecar):
    server = make_sidecar()
    wait_for(lambda: requests.get(f"{server.url}/healthz", timeout=5).json(),
             lambda h: h["live_state"] == "ready", timeout_s=120)
    return server


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not reached in {timeout_s} s: {value}"
        time.sleep(0.1)


def get(server, path: str, **params) -> dict:
    answer = requests.get(server.url + path, params=params, timeout=10,
                          headers={"Authorization": f"Bearer {server.token()}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def workflows(server, **params) -> dict[str, dict]:
    return {w["id"]: w for w in get(server, "/api/workflows", limit=500, **params)["workflows"]}


def post_linear(server, sign, payload: dict):
    body = sign.linear_body(payload)
    answer = requests.post(f"{server.url}/webhooks/linear", data=body, headers=sign.linear(body, payload["type"]),
                           timeout=10)
    assert answer.status_code == 202, answer.text


def post_github(server, sign, event: str, payload: dict):
    body = json.dumps(payload).encode()
    answer = requests.post(f"{server.url}/webhooks/github", data=body, headers=sign.github(body, event), timeout=10)
    assert answer.status_code == 202, answer.text


def push(server, sign, kind: str, data: dict):
    answer = requests.post(f"{server.url}/events", json={"kind": kind, "data": data}, headers=sign.bearer(),
                           timeout=10)
    assert answer.status_code == 202, answer.text


def linear_issue(identifier: str, state_type: str, state_name: str, at: datetime, **extra) -> dict:
    team = identifier.split("-")[0]
    return {"id": f"issue-{identifier}", "identifier": identifier, "number": int(identifier.split("-")[1]),
            "title": f"Work on {identifier}", "priority": 2, "url": f"https://linear.app/acme/issue/{identifier}",
            "createdAt": iso(at), "updatedAt": iso(at), "team": {"id": f"team-{team}", "key": team, "name": team},
            "state": {"id": f"state-{state_name}", "name": state_name, "type": state_type},
            "creatorId": "user-ann", **extra}


def pull_request(repo: str, number: int, title: str, branch: str, at: datetime, action: str = "opened",
                 merged_at: datetime | None = None) -> dict:
    pr = {"id": abs(hash((repo, number))) % 10**9, "number": number, "title": title, "body": "",
          "state": "closed" if merged_at else "open", "html_url": f"https://github.com/{repo}/pull/{number}",
          "user": {"login": "ann", "type": "User"}, "head": {"ref": branch, "sha": "abc"},
          "base": {"repo": {"full_name": repo}}, "created_at": iso(at),
          "updated_at": iso(merged_at or at + timedelta(minutes=1 if action == "edited" else 0)),
          "closed_at": iso(merged_at) if merged_at else None, "merged_at": iso(merged_at) if merged_at else None,
          "draft": False}
    return {"action": action, "number": number, "pull_request": pr, "repository": {"full_name": repo}}


def test_a_linear_team_first_seen_in_a_webhook_links_a_pr_at_once(live, sign):
    post_linear(live, sign, {"action": "create", "type": "Issue", "createdAt": iso(NOW),
                             "data": linear_issue("VRF-7", "unstarted", "Todo", NOW - timedelta(hours=2))})
    post_github(live, sign, "pull_request",
                pull_request("acme/api", 41, "VRF-7: verify the thing", "vrf-7-verify", NOW - timedelta(hours=1)))
    found = wait_for(lambda: workflows(live), lambda w: "linear:VRF-7" in w and "github" in w["linear:VRF-7"]["sources"])
    assert "github:acme/api#41" not in found  # one workflow, not two
    workflow = found["linear:VRF-7"]
    assert workflow["github"] == {"repo": "acme/api", "prNumber": 41}
    assert workflow["linearIssueKey"] == "VRF-7" and workflow["linearTeamKey"] == "VRF"
    assert workflow["eventCount"] == 2 and workflow["isLive"]


def test_backlog_with_an_assignee_is_pending_with_its_assignee(live, sign):
    issue = linear_issue("ENG-71", "backlog", "Backlog", NOW - timedelta(hours=3),
                         assignee={"id": "user-ann", "name": "Ann Lee"})
    post_linear(live, sign, {"action": "create", "type": "Issue", "createdAt": iso(NOW), "data": issue})
    pending = wait_for(lambda: workflows(live, status="pending"), lambda w: "linear:ENG-71" in w)
    workflow = pending["linear:ENG-71"]
    assert workflow["assignee"] == {"id": "user-ann", "name": "Ann Lee", "type": "human"}
    assert workflow["priority"] == "high" and workflow["statusSource"] == "linear"
    assert "linear:ENG-71" in workflows(live, assignee="Ann Lee")
    assert "linear:ENG-71" not in workflows(live, status="active")
    overview = get(live, "/dashboard/overview")
    assert overview["workflows"]["pending"] == 1 and overview["workflows"]["total"] == 1


def test_done_and_merged_complete_the_workflow_with_completed_at(live, sign):
    started = NOW - timedelta(hours=5)
    post_linear(live, sign, {"action": "create", "type": "Issue", "createdAt": iso(started),
                             "data": linear_issue("ENG-72", "started", "In Progress", started)})
    done_at = NOW - timedelta(hours=1)
    done = linear_issue("ENG-72", "completed", "Done", started, completedAt=iso(done_at), updatedAt=iso(done_at))
    post_linear(live, sign, {"action": "update", "type": "Issue", "createdAt": iso(done_at), "data": done,
                             "updatedFrom": {"stateId": "state-In Progress"}})
    completed = wait_for(lambda: workflows(live), lambda w: w.get("linear:ENG-72", {}).get("status") == "completed")
    assert completed["linear:ENG-72"]["completedAt"] == iso(done_at)
    assert completed["linear:ENG-72"]["cycleTimeHours"] == 4.0

    opened, merged = NOW - timedelta(hours=3), NOW - timedelta(minutes=30)
    post_github(live, sign, "pull_request", pull_request("acme/web", 5, "Tidy up", "tidy", opened))
    assert wait_for(lambda: workflows(live), lambda w: "github:acme/web#5" in w)["github:acme/web#5"]["status"] == "active"
    post_github(live, sign, "pull_request", pull_request("acme/web", 5, "Tidy up", "tidy", opened, "closed", merged))
    merged_pr = wait_for(lambda: workflows(live), lambda w: w["github:acme/web#5"]["status"] == "completed")
    assert merged_pr["github:acme/web#5"]["completedAt"] == iso(merged)
    overview = get(live, "/dashboard/overview")
    assert overview["workflows"]["completed"] == 2 and overview["workflows"]["active"] == 0


def test_a_pr_edit_is_an_update_not_a_second_event(live, sign):
    async def run() -> list[dict]:
        async with websockets.connect(f"{live.ws_url}?token={live.token()}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "rooms": ["events:all"]}))
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
            opened = NOW - timedelta(hours=2)
            for action in ("opened", "edited", "synchronize"):
                await asyncio.to_thread(post_github, live, sign, "pull_request",
                                        pull_request("acme/api", 77, "Speed up", "speed", opened, action))
            messages = []
            while len(messages) < 3:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            return messages

    messages = asyncio.run(run())
    assert [m["type"] for m in messages] == ["github.pr.opened", "github.pr.updated", "github.pr.updated"]
    assert [m["payload"].get("action") for m in messages[1:]] == ["edited", "synchronize"]
    found = wait_for(lambda: workflows(live), lambda w: "github:acme/api#77" in w)
    assert found["github:acme/api#77"]["eventCount"] == 1
    assert get(live, "/dashboard/overview")["events"]["total"] == 1
    assert [e["id"] for e in get(live, "/api/events", limit=100)["events"]] == ["github:pr:acme/api#77:opened"]


def test_a_cron_failure_moves_the_pushed_and_the_rest_overview(live, sign):
    async def run() -> tuple[dict, dict]:
        async with websockets.connect(f"{live.ws_url}?token={live.token()}") as ws:
            await ws.send(json.dumps({"type": "subscribe", "rooms": ["dashboard:overview"]}))
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
            at = NOW - timedelta(minutes=5)
            for seq, (event, code) in enumerate((("started", None), ("failed", 1)), start=1):
                await asyncio.to_thread(push, live, sign, "cron.event", {
                    "seq": seq, "id": f"backup-run-1-{event}", "job": "backup", "host": "db-1", "event": event,
                    "run_id": "backup-run-1", "at": iso(at + timedelta(seconds=seq)), "exit_code": code,
                    "message": f"backup {event}"})
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if message["type"] == "system.status.update" and message["payload"]["cron_jobs"]["failed"] == 1:
                    rest = await asyncio.to_thread(get, live, "/dashboard/overview")
                    return message["payload"], rest
            raise AssertionError("no system.status.update with the failed cron job")

    pushed, rest = asyncio.run(run())
    # The seeds' message, equal to the REST overview's systemStatus at that moment.
    assert pushed == rest["systemStatus"]
    assert pushed["cron_jobs"] == {"total": 1, "healthy": 0, "failed": 1}


def test_workflow_updated_reaches_the_workflow_room_and_workflows_all(live, sign):
    async def run() -> tuple[dict, dict]:
        url = f"{live.ws_url}?token={live.token()}"
        async with websockets.connect(url) as one, websockets.connect(url) as every:
            for ws, room in ((one, "workflows:linear:ENG-73"), (every, "workflows:all")):
                await ws.send(json.dumps({"type": "subscribe", "rooms": [room]}))
                while json.loads(await ws.recv())["type"] != "subscribed":
                    pass
            issue = linear_issue("ENG-73", "unstarted", "Todo", NOW - timedelta(hours=1))
            await asyncio.to_thread(post_linear, live, sign,
                                    {"action": "create", "type": "Issue", "createdAt": iso(NOW), "data": issue})

            async def updated(ws) -> dict:
                while True:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if message["type"] == "workflow.updated":
                        return message

            return await updated(one), await updated(every)

    mine, everyone = asyncio.run(run())
    assert mine["payload"]["id"] == everyone["payload"]["id"] == "linear:ENG-73"
    assert mine["payload"]["status"] == "pending" and mine["payload"]["linearIssueKey"] == "ENG-73"
    assert mine["payload"] == workflows(live)["linear:ENG-73"]


def test_the_live_state_computes_below_the_event_loop_s_priority(live):
    """Its runs (DuckDB, the interpreter released) take a core at a lower priority than the thread
    answering webhooks, so on a busy host the answers do not wait for them (docs/benchmarks.md)."""
    from streaming.state.engine import NICE

    tasks = Path(f"/proc/{live.proc.pid}/task")

    def nice(tid: str) -> int:  # /proc/<pid>/task/<tid>/stat: the 19th field
        return int((tasks / tid / "stat").read_text().rsplit(")", 1)[1].split()[16])

    assert nice(str(live.proc.pid)) == 0  # the event loop's thread
    assert NICE > 0 and NICE in {nice(t.name) for t in tasks.iterdir()}
