"""The agent-side sources (OpenClaw, cron, weather): generated from the same org, served over real HTTP,
and a truth that leaves every workflow of `truth.parquet` as it was."""

from __future__ import annotations

import json
import time
from collections import Counter
from itertools import chain

import pyarrow.parquet as pq
import pytest
import requests

from sandbox import generate
from sandbox import truth as truth_mod
from sandbox.agents import MODEL_PRICES, cron_times, generate_agents, session_cost
from sandbox.generator import to_epoch

END = "2026-11-20T12:00:00Z"
EVENTS = 600
DAY = 86400


def _world(seed: int = 7, events: int = 2000, days: int = 7):
    org = generate(seed, events, days, END)
    truth = truth_mod.build(org)
    agents = generate_agents(org)
    return org, truth, agents, truth_mod.build_agents(agents, truth)


@pytest.fixture(scope="module")
def world():
    return _world()


# ---- the generated sources -------------------------------------------------------------------------
def test_same_arguments_give_the_same_agent_truth_and_the_main_truth_is_untouched(tmp_path):
    _, truth, _, first = _world()
    _, truth_again, _, second = _world()
    a = truth_mod.write_parquet(first, tmp_path / "a" / "truth_agents.parquet")
    b = truth_mod.write_parquet(second, tmp_path / "b" / "truth_agents.parquet")
    assert a.read_bytes() == b.read_bytes()
    assert truth.event_id == truth_again.event_id
    # The agent sources use their own random streams: the main world is what it was without them.
    assert truth.event_id == truth_mod.build(generate(7, 2000, 7, END)).event_id
    assert _world(seed=8)[3].event_id != first.event_id


def test_sessions_join_one_existing_workflow_and_merge_none(world):
    org, truth, agents, agents_truth = world
    together = truth_mod.build_from(chain(truth_mod.events(org), truth_mod.agent_events(agents)))
    combined = dict(zip(together.event_id, together.workflow_id, strict=True))
    main = dict(zip(truth.event_id, truth.workflow_id, strict=True))
    assert {e: combined[e] for e in main} == main  # no workflow of the main truth changed
    mine = dict(zip(agents_truth.event_id, agents_truth.workflow_id, strict=True))
    assert {e: combined[e] for e in mine} == mine
    workflows = {w for w in truth.workflow_id if w}
    linked = {w for w in agents_truth.workflow_id if w}
    assert linked and linked <= workflows
    by_source = Counter((s, w is not None) for s, w in zip(agents_truth.source, agents_truth.workflow_id,
                                                           strict=True))
    assert by_source[("openclaw", True)] and by_source[("openclaw", False)]  # some sessions name nothing
    assert not by_source[("cron", True)] and not by_source[("weather", True)]


def test_everything_happens_inside_the_window(world):
    org, _, agents, agents_truth = world
    assert all(org.start <= t <= org.end for t in agents_truth.event_at)
    assert agents_truth.event_at == sorted(agents_truth.event_at)
    for s in agents.sessions:
        assert org.start <= s.started_at <= s.updated_at <= org.end
        assert (s.ended_at is None) == (s.status == "running")
        assert s.ended_at is None or s.ended_at == s.updated_at
    assert [e.seq for e in agents.cron_events] == list(range(1, len(agents.cron_events) + 1))
    assert [e.at for e in agents.cron_events] == sorted(e.at for e in agents.cron_events)
    assert all(o.detected_at <= o.updated_at <= org.end for o in agents.opportunities)


def test_sessions_cost_what_their_model_costs(world):
    _, _, agents, _ = world
    for s in agents.sessions:
        assert s.model in MODEL_PRICES and s.tokens_input > s.tokens_output > 0
        assert s.cost_usd == session_cost(s.model, s.tokens_input, s.tokens_output) > 0
    assert session_cost("claude-sonnet-4-5", 1_000_000, 100_000) == 4.5
    statuses = Counter(s.status for s in agents.sessions)
    assert statuses["completed"] > statuses["failed"] + statuses["cancelled"] > 0


def test_a_few_sessions_per_issue_charlie_works(world):
    org, _, agents, _ = world
    worked = {a.issue.identifier for a in org.activities if a.issue and not a.correlation_id}
    charlie = [s for s in agents.sessions if s.instance is not None and s.issue is not None]
    assert worked and 1.5 <= len(charlie) / len(worked) <= 4
    covered = {s.issue.identifier for s in charlie}
    assert covered <= worked and len(covered) >= 0.95 * len(worked)
    assert all(s.agent == s.instance.id for s in agents.sessions if s.instance)
    assert {s.agent for s in agents.sessions if s.instance is None} >= {"claude-code", "codex"}


def test_cron_runs_follow_their_schedules(world):
    org, _, agents, _ = world
    jobs = {j.name: j for j in agents.cron_jobs}
    assert len(jobs) == 11
    starts = Counter(e.job.name for e in agents.cron_events if e.event == "started")
    for name, job in jobs.items():  # a run fired at the very end may start a second or two too late
        assert 0 <= len(cron_times(job.schedule, org.start, org.end)) - starts[name] <= 1
    assert starts["session-reaper"] == pytest.approx(7 * 288, abs=2)
    runs = Counter(e.run_id for e in agents.cron_events)
    assert max(runs.values()) == 2
    outcomes = Counter(e.event for e in agents.cron_events)
    assert outcomes["succeeded"] > 20 * outcomes["failed"] > 0
    assert all(e.exit_code != 0 for e in agents.cron_events if e.event == "failed")


def test_cron_expressions():
    monday = to_epoch("2026-11-16T00:00:00Z")
    week = monday + 7 * DAY - 60
    assert len(cron_times("*/5 * * * *", monday, monday + DAY - 1)) == 288
    assert cron_times("0 3 * * 1", monday, week) == [monday + 3 * 3600]
    assert len(cron_times("0 6 * * 1-5", monday, week)) == 5
    assert len(cron_times("0 */6 * * *", monday, monday + DAY - 1)) == 4
    assert len(cron_times("0 0 1 * 0", monday, week)) == 1  # day of month or day of week: the Sunday


def test_weather_opportunities_look_like_markets(world):
    org, _, agents, _ = world
    opportunities = agents.opportunities
    assert 10 * 7 <= len(opportunities) <= 60 * 7
    assert {o.status for o in opportunities} >= {"taken", "expired"}
    for o in opportunities:
        assert 20 < o.forecast_high_f < 100 and 1 <= abs(o.forecast_high_f - o.market_implied_high_f) <= 4.6
        assert 3 <= o.edge_pct <= 25 and 0.45 <= o.confidence <= 0.95 and 5 <= o.suggested_stake_usd <= 250
        assert o.contract.startswith("KXHIGH") if o.market == "kalshi" else o.contract.startswith("highest-")


# ---- over HTTP -------------------------------------------------------------------------------------


def sessions(http, sandbox, limit=1000, **params):
    out, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        r = http.get(f"{sandbox.openclaw_url}/v1/sessions", params=query)
        assert r.status_code == 200, r.text
        out += r.json()["sessions"]
        if not (cursor := r.json()["next_cursor"]):
            return out


def opportunities(http, sandbox, per_page=200, **params):
    out, page = [], 1
    while page:
        r = http.get(f"{sandbox.weather_url}/v1/opportunities", params={"page": page, "per_page": per_page, **params})
        assert r.status_code == 200, r.text
        out += r.json()["opportunities"]
        page = r.json()["next_page"]
    return out


def cron_events(http, sandbox, after=0, limit=1000):
    out = []
    while True:
        body = http.get(f"{sandbox.cron_url}/v1/events", params={"after": after, "limit": limit}).json()
        out += body["events"]
        if not body["has_more"]:
            return out
        after = body["last_seq"]


def read_sse(response, retries=None):
    """(events as (id, event, data dict), comments) from a whole SSE response; `retry:` values go to `retries`."""
    events, comments, fields = [], [], {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "data" in fields:
                events.append((fields.get("id"), fields.get("event"), json.loads(fields["data"])))
            fields = {}
        elif line.startswith(":"):
            comments.append(line)
        else:
            name, _, value = line.partition(": ")
            fields[name] = value
            if name == "retry" and retries is not None:
                retries.append(value)
    return events, comments


def test_sessions_page_by_cursor_oldest_update_first(sandbox, http):
    whole = sessions(http, sandbox)
    paged = sessions(http, sandbox, limit=7)
    assert len(whole) > 14 and [s["id"] for s in paged] == [s["id"] for s in whole]
    assert len({s["id"] for s in whole}) == len(whole)
    keys = [(s["updated_at"], s["id"]) for s in whole]
    assert keys == sorted(keys)
    since = whole[len(whole) // 2]["updated_at"]
    later = sessions(http, sandbox, limit=5, updated_since=since)
    assert [s["id"] for s in later] == [s["id"] for s in whole if s["updated_at"] >= since]
    one = http.get(f"{sandbox.openclaw_url}/v1/sessions/{whole[0]['id']}").json()
    assert one == whole[0]
    assert set(one) == {"id", "agent", "instance_id", "status", "model", "started_at", "ended_at", "updated_at",
                        "tokens_input", "tokens_output", "cost_usd", "issue_key", "repo", "pr_number", "title"}
    assert http.get(f"{sandbox.openclaw_url}/v1/sessions/ses_nope").status_code == 404
    assert http.get(f"{sandbox.openclaw_url}/v1/sessions", params={"cursor": "zz"}).status_code == 400
    assert http.get(f"{sandbox.openclaw_url}/v1/sessions", params={"updated_since": "yesterday"}).status_code == 400


def test_cron_events_poll_by_seq(sandbox, http):
    whole = cron_events(http, sandbox)
    assert [e["seq"] for e in whole] == list(range(1, len(whole) + 1))
    tail = cron_events(http, sandbox, after=len(whole) - 25, limit=10)
    assert tail == whole[-25:]
    empty = http.get(f"{sandbox.cron_url}/v1/events", params={"after": len(whole)}).json()
    assert empty == {"events": [], "last_seq": len(whole), "has_more": False}
    jobs = http.get(f"{sandbox.cron_url}/v1/jobs").json()["jobs"]
    assert len(jobs) == 11 and {e["job"] for e in whole} == {j["name"] for j in jobs}
    finished = next(e for e in whole if e["event"] == "failed")
    assert finished["exit_code"] and finished["duration_ms"] > 0 and finished["message"]
    assert http.get(f"{sandbox.cron_url}/v1/events", params={"after": "x"}).status_code == 400


def test_sse_resumes_after_last_event_id(sandbox, http):
    whole = cron_events(http, sandbox)
    start = len(whole) - 10
    with http.get(f"{sandbox.cron_url}/v1/stream", params={"max_events": 4}, stream=True, timeout=10,
                  headers={"Last-Event-ID": str(start)}) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Cache-Control"] == "no-cache"
        retries = []
        events, _ = read_sse(r, retries)
    assert retries == ["1000"]
    assert [int(i) for i, _, _ in events] == [start + 1, start + 2, start + 3, start + 4]
    assert [d for _, _, d in events] == whole[start : start + 4]
    assert [kind for _, kind, _ in events] == [d["event"] for _, _, d in events]
    with http.get(f"{sandbox.cron_url}/v1/stream", params={"max_events": 2, "last_event_id": start + 8},
                  stream=True, timeout=10) as r:
        events, _ = read_sse(r)
    assert [d["seq"] for _, _, d in events] == [start + 9, start + 10]


def test_sse_sends_heartbeats_when_caught_up_and_ends_on_timeout(sandbox, http):
    last = len(cron_events(http, sandbox))
    began = time.monotonic()
    with http.get(f"{sandbox.cron_url}/v1/stream", params={"heartbeat": 0.1, "timeout": 0.65}, stream=True,
                  timeout=10, headers={"Last-Event-ID": str(last - 1)}) as r:
        events, comments = read_sse(r)
    took = time.monotonic() - began
    assert [d["seq"] for _, _, d in events] == [last]
    assert 4 <= len(comments) <= 7 and all(c.startswith(": heartbeat 20") for c in comments)
    assert 0.6 <= took < 3


def test_sse_drop_fault_cuts_the_connection_mid_stream(sandbox, http):
    sandbox.set_faults([{"match": "/cron/v1/stream", "kind": "drop_stream", "after": 3, "times": 1}])
    seen = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError), \
            http.get(f"{sandbox.cron_url}/v1/stream", params={"max_events": 10}, stream=True, timeout=10,
                     headers={"Last-Event-ID": "100"}) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("id: "):
                seen.append(int(line[4:]))
    assert seen == [101, 102, 103]
    with http.get(f"{sandbox.cron_url}/v1/stream", params={"max_events": 2}, stream=True, timeout=10,
                  headers={"Last-Event-ID": "103"}) as r:
        assert [d["seq"] for _, _, d in read_sse(r)[0]] == [104, 105]
    bad = http.get(f"{sandbox.cron_url}/v1/stream", headers={"Last-Event-ID": "abc"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"


def test_weather_pages_and_since(sandbox, http):
    whole = opportunities(http, sandbox)
    paged = opportunities(http, sandbox, per_page=9)
    assert len(whole) > 18 and paged == whole
    keys = [(o["updated_at"], o["id"]) for o in whole]
    assert keys == sorted(keys)
    since = whole[len(whole) // 3]["updated_at"]
    assert opportunities(http, sandbox, per_page=4, since=since) == [o for o in whole if o["updated_at"] >= since]
    last = http.get(f"{sandbox.weather_url}/v1/opportunities", params={"page": 999}).json()
    assert last == {"opportunities": [], "next_page": None}
    assert http.get(f"{sandbox.weather_url}/v1/opportunities/{whole[0]['id']}").json() == whole[0]
    assert http.get(f"{sandbox.weather_url}/v1/opportunities", params={"page": 0}).status_code == 400


def test_faults_reach_the_new_sources(sandbox, http):
    sandbox.set_faults([{"match": "/openclaw", "status": 503, "times": 1},
                        {"match": "/weather", "kind": "bad_record", "times": 1}])
    down = http.get(f"{sandbox.openclaw_url}/v1/sessions")
    assert down.status_code == 503 and down.json()["error"] == "unavailable"
    assert http.get(f"{sandbox.openclaw_url}/v1/sessions").status_code == 200
    page = http.get(f"{sandbox.weather_url}/v1/opportunities").json()["opportunities"]
    assert sum("id" not in o for o in page) == 1


def test_agent_truth_agrees_with_the_served_records_and_the_main_truth(sandbox, http):
    rows = http.get(f"{sandbox.url}/_sandbox/truth/agents").json()
    truth = {r["event_id"]: r for r in rows}
    table = pq.read_table(sandbox.agents_truth_path).to_pylist()
    assert {r["event_id"]: r["workflow_id"] for r in table} == {e: r["workflow_id"] for e, r in truth.items()}
    main = {r["event_id"]: r["workflow_id"] for r in pq.read_table(sandbox.truth_path).to_pylist()}
    assert not set(main) & set(truth)
    # What a reader of docs/contract_sources.md expects from the served records.
    issues = {}
    after = None
    query = "query($after: String) { issues(first: 100, after: $after) { nodes { id identifier } " \
            "pageInfo { hasNextPage endCursor } } }"
    while True:
        conn = http.post(sandbox.linear_url, json={"query": query, "variables": {"after": after}}).json()
        conn = conn["data"]["issues"]
        issues |= {n["identifier"]: n["id"] for n in conn["nodes"]}
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    expected = {}
    for s in sessions(http, sandbox):
        workflows = set()
        if s["issue_key"]:
            workflows.add(main[f"linear:issue:{issues[s['issue_key']]}:created"])
        if s["repo"]:
            workflows.add(main[f"github:pr:{s['repo']}#{s['pr_number']}:opened"])
        assert len(workflows) <= 1
        workflow = workflows.pop() if workflows else None
        expected[f"openclaw:session:{s['id']}:started"] = ("openclaw.session.started", workflow)
        if s["ended_at"]:
            expected[f"openclaw:session:{s['id']}:ended"] = (f"openclaw.session.{s['status']}", workflow)
    for e in cron_events(http, sandbox):
        expected[f"cron:run:{e['run_id']}:{e['event']}"] = (f"cron.job.{e['event']}", None)
    for o in opportunities(http, sandbox):
        expected[f"weather:opportunity:{o['id']}"] = ("weather.opportunity.detected", None)
    assert {e: (r["event_type"], r["workflow_id"]) for e, r in truth.items()} == expected
    info = sandbox.info()["agents"]
    assert info["events_generated"] == len(rows) and info["truth_path"] == str(sandbox.agents_truth_path)
