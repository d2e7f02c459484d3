"""Live state parity: a sandbox world replayed through the sidecar equals dbt's build of it.

`python -m scripts.parity [--events 5000] [--days 7] [--on-built]`

1. A sandbox world is generated and ingested as usual into a scratch lake (the sources' own
   records, as their APIs return them).
2. Each record is turned into the delivery that would have announced it: GitHub `pull_request`
   (opened, then closed/merged or edited), `issues`, `pull_request_review` and `push` webhooks,
   Linear `Issue` (create, then the state move) and `Comment` webhooks, and pushed Charlie
   activity, cron runs and agent sessions (`POST /webhooks/charlie`, `POST /events`), in the order
   they happened. The configuration the sources are polled for (Linear teams and users, the
   Charlie instances) is copied into a fresh data directory as the poll would have landed it.
3. A real sidecar (`python -m streaming.serve`) receives them all over HTTP; once its live state has
   settled, `/api/workflows` (every page), `/dashboard/overview` and `/api/events` are read.
4. The sidecar stops; the webhook deliveries are landed and dbt builds from them (`webhooks_job`,
   `transform_job`), and every workflow's fields are compared with `fct_workflows`, field by field,
   as are the overview's workflow and event totals and the events' ids.

With `--on-built`, everything before the world's last day is delivered and built first, and the
sidecar then receives the last day on top of that warehouse.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import requests

from scripts.chaos.harness import SECRETS, Sidecar, bearer, github_headers, linear_body, linear_headers

# The polled configuration copied as is: what makes ENG-12 a key and a login a Charlie instance.
CONFIGURATION = (("linear", "teams"), ("linear", "users"), ("charlie", "instances"), ("charlie", "health"))


@dataclass(frozen=True)
class Outgoing:
    """One delivery: where it goes, its body, and when the thing it announces happened."""

    at: datetime
    route: str
    kind: str  # the GitHub event, the Linear type, or the pushed kind
    payload: dict[str, Any]
    key: str = ""  # the thing it is about: deliveries of one thing are sent in order, on one connection

    def send(self, session: requests.Session, url: str) -> requests.Response:
        if self.route == "/webhooks/github":
            body = json.dumps(self.payload).encode()
            headers = github_headers(body, self.kind)
        elif self.route == "/webhooks/linear":
            body = linear_body(self.payload)  # signed now: Linear's replay window is 60 s
            headers = linear_headers(body, self.kind)
        else:
            body = json.dumps({"kind": self.kind, "data": self.payload}).encode()
            headers = bearer(SECRETS["CC_CHARLIE_WEBHOOK_SECRET"] if self.route == "/webhooks/charlie"
                             else SECRETS["CC_EVENTS_API_TOKEN"])
        return session.post(url + self.route, data=body, headers=headers, timeout=30)


def _rows(lake: Path, source: str, entity: str) -> list[dict[str, Any]]:
    files = list((lake / "raw" / source / entity).glob("*/*.parquet"))
    if not files:
        return []
    with duckdb.connect() as con:
        cursor = con.execute(f"select * from read_parquet({[str(f) for f in files]!r}, union_by_name = true)")
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _latest(rows: list[dict], key: str = "id", order: str = "updated_at") -> list[dict]:
    best: dict[Any, dict] = {}
    for row in rows:
        held = best.get(row[key])
        if held is None or (row.get(order) or datetime.min, row["_ingested_at"]) >= (
                held.get(order) or datetime.min, held["_ingested_at"]):
            best[row[key]] = row
    return list(best.values())


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def deliveries(lake: Path) -> list[Outgoing]:
    """The deliveries that would have announced the world in `lake`, oldest first."""
    out: list[Outgoing] = []
    for row in _latest(_rows(lake, "github", "pull_requests")):
        pr = json.loads(row["_raw"])
        repo = {"full_name": row["repo"]}
        opened = {**pr, "state": "open", "merged_at": None, "closed_at": None, "merged": False,
                  "updated_at": pr["created_at"]}
        key = f"pr:{row['repo']}#{pr['number']}"
        out.append(Outgoing(_time(pr["created_at"]), "/webhooks/github", "pull_request",
                            {"action": "opened", "number": pr["number"], "pull_request": opened, "repository": repo}, key))
        ended = pr.get("merged_at") or pr.get("closed_at")
        if ended:
            out.append(Outgoing(_time(ended), "/webhooks/github", "pull_request",
                                {"action": "closed", "number": pr["number"], "pull_request": pr, "repository": repo},
                                key))
        if _time(pr["updated_at"]) > _time(ended or pr["created_at"]):
            out.append(Outgoing(_time(pr["updated_at"]), "/webhooks/github", "pull_request",
                                {"action": "edited", "number": pr["number"], "pull_request": pr, "repository": repo},
                                key))
    for row in _latest(_rows(lake, "github", "issues")):
        issue = json.loads(row["_raw"])
        repo = {"full_name": row["repo"]}
        key = f"issue:{row['repo']}#{issue['number']}"
        out.append(Outgoing(_time(issue["created_at"]), "/webhooks/github", "issues",
                            {"action": "opened", "issue": {**issue, "state": "open", "closed_at": None},
                             "repository": repo}, key))
        if issue.get("closed_at"):
            out.append(Outgoing(_time(issue["closed_at"]), "/webhooks/github", "issues",
                                {"action": "closed", "issue": issue, "repository": repo}, key))
    for row in _latest(_rows(lake, "github", "reviews"), order="submitted_at"):
        review = json.loads(row["_raw"])
        out.append(Outgoing(_time(review["submitted_at"]), "/webhooks/github", "pull_request_review",
                            {"action": "submitted", "review": review, "pull_request": {"number": row["pull_number"]},
                             "repository": {"full_name": row["repo"]}}))
    for row in _latest(_rows(lake, "github", "commits"), key="sha", order="authored_at"):
        commit = json.loads(row["_raw"])
        inner = commit.get("commit") or {}
        author = inner.get("author") or {}
        login = (commit.get("author") or {}).get("login")
        out.append(Outgoing(_time(author["date"]), "/webhooks/github", "push", {
            "ref": "refs/heads/main", "repository": {"full_name": row["repo"]},
            "commits": [{"id": commit["sha"], "message": inner.get("message"), "timestamp": author["date"],
                         "url": commit.get("html_url"),
                         "author": {"name": author.get("name"), "email": author.get("email"), "username": login}}]}))
    for row in _latest(_rows(lake, "linear", "issues")):
        issue = json.loads(row["_raw"])
        issue.pop("history", None)  # the poll's history query: a webhook carries the issue alone
        state = issue.get("state") or {}
        moved_at = issue.get("completedAt") or issue.get("canceledAt") or issue.get("startedAt")
        if moved_at and state.get("type") in ("started", "completed", "canceled"):
            first = {**issue, "state": {"id": f"{state.get('id')}-before", "name": "Todo", "type": "unstarted"},
                     "completedAt": None, "canceledAt": None, "startedAt": None, "updatedAt": issue["createdAt"]}
            out.append(Outgoing(_time(issue["createdAt"]), "/webhooks/linear", "Issue",
                                {"action": "create", "type": "Issue", "data": first, "createdAt": issue["createdAt"]},
                                issue["id"]))
            out.append(Outgoing(_time(moved_at), "/webhooks/linear", "Issue",
                                {"action": "update", "type": "Issue", "data": {**issue, "updatedAt": moved_at},
                                 "updatedFrom": {"stateId": first["state"]["id"]}, "createdAt": moved_at}, issue["id"]))
        else:
            out.append(Outgoing(_time(issue["createdAt"]), "/webhooks/linear", "Issue",
                                {"action": "create", "type": "Issue", "data": issue, "createdAt": issue["createdAt"]},
                                issue["id"]))
    for row in _latest(_rows(lake, "linear", "comments")):
        comment = json.loads(row["_raw"])
        out.append(Outgoing(_time(comment["createdAt"]), "/webhooks/linear", "Comment",
                            {"action": "create", "type": "Comment", "data": comment, "createdAt": comment["createdAt"]}))
    for source, entity, kind, at in (("charlie", "activity", "charlie.activity", "occurred_at"),
                                     ("cron", "events", "cron.event", "occurred_at"),
                                     ("openclaw", "sessions", "openclaw.session", "started_at")):
        route = "/webhooks/charlie" if source == "charlie" else "/events"
        for row in _latest(_rows(lake, source, entity), order="updated_at" if entity == "sessions" else at):
            record = json.loads(row["_raw"])
            out.append(Outgoing(_time(row[at]), route, kind, record, str(record.get("run_id") or row["id"])))
    return sorted(out, key=lambda d: d.at)


# --- the run -----------------------------------------------------------------------------------------


def ingest_world(work: Path, events: int, days: int, end: datetime) -> Path:
    """A sandbox world ingested into `work/world`: its lake, as the poll lands it."""
    from dagster import DagsterInstance

    first = (end - timedelta(days=days)).date()
    # The world starts empty: its partitions start at its first day (cc_assets/catalog.py).
    os.environ.setdefault("CC_PARTITIONS_START", first.isoformat())
    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from sandbox.process import run_sandbox

    data = work / "world"
    tags = {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": end.date().isoformat()}
    # The replay is measured, not the APIs' budgets: lift them for a large world (as bench.py does).
    with run_sandbox(work / "sandbox", events=events, days=days, end=end, rate_limit=10_000_000) as sandbox, \
            DagsterInstance.ephemeral() as instance:
        sandbox.set_limits(linear_requests=10**9, linear_complexity=10**12)
        platform = PlatformResource(data_dir=str(data), sandbox_url=sandbox.url)
        result = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=tags, resources={"platform": platform}, raise_on_error=False)
        if not result.success:
            raise RuntimeError("ingesting the sandbox world failed")
    return data


def build(data: Path, warehouse: str = "duckdb", pg_url: str | None = None) -> None:
    """Land the sidecar's deliveries (every day its landing log has) and build dbt from them."""
    from dagster import DagsterInstance

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from resources.storage.landing import landing_for

    platform = PlatformResource(data_dir=str(data), warehouse=warehouse, pg_url=pg_url)
    days = [d.isoformat() for d in landing_for(platform.settings()).days("webhooks")]  # files, or CC_LANDING_URL's
    with DagsterInstance.ephemeral() as instance:
        for day in days:
            landed = defs.resolve_job_def("webhooks_job").execute_in_process(
                instance=instance, partition_key=day[:10], resources={"platform": platform}, raise_on_error=False)
            if not landed.success:
                raise RuntimeError(f"landing the webhook deliveries of {day} failed")
        built = defs.resolve_job_def("transform_job").execute_in_process(
            instance=instance, resources={"platform": platform}, raise_on_error=False)
        if not built.success:
            raise RuntimeError("the dbt build failed")


def send_all(url: str, outgoing: list[Outgoing], connections: int = 4) -> None:
    """Send every delivery, each thing's in order on one of `connections` connections (a thing's
    deliveries depend on each other; different things' do not: correlation is order-free)."""
    from concurrent.futures import ThreadPoolExecutor

    shards: list[list[Outgoing]] = [[] for _ in range(connections)]
    for delivery in outgoing:
        shards[hash(delivery.key or delivery.at) % connections].append(delivery)

    def send(shard: list[Outgoing]) -> None:
        with requests.Session() as session:
            for delivery in shard:
                answer = delivery.send(session, url)
                if answer.status_code not in (200, 202):
                    raise RuntimeError(f"{delivery.route} {delivery.kind} at {delivery.at}: {answer.status_code} "
                                       f"{answer.text[:300]}")

    with ThreadPoolExecutor(connections) as pool:
        for done in [pool.submit(send, shard) for shard in shards]:
            done.result()


def _reader(url: str) -> requests.Session:
    from streaming.auth import issue_token

    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + issue_token(SECRETS["CC_JWT_SECRET"], "parity")
    return session


def settled(url: str, timeout_s: float = 900.0) -> None:
    """Wait until the live state has taken in every live event (it is computed in the background)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        health = requests.get(url + "/healthz", timeout=10).json()
        state = health.get("live_state_detail") or {}
        key = (health.get("live_events"), state.get("computed_events"), state.get("pending"))
        if health.get("live_state") == "ready" and not state.get("pending") and key == last:
            return
        last = key
        time.sleep(0.5)
    raise RuntimeError(f"the live state did not settle in {timeout_s:.0f} s: {health}")


def read_api(url: str) -> dict[str, Any]:
    with _reader(url) as session:
        workflows: dict[str, dict] = {}
        cursor = None
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = session.get(url + "/api/workflows", params=params, timeout=60).json()
            for w in page["workflows"]:
                if w["id"] in workflows:
                    raise RuntimeError(f"/api/workflows listed {w['id']} twice")
                workflows[w["id"]] = w
            cursor = page.get("nextCursor")
            if not cursor:
                break
        overview = session.get(url + "/dashboard/overview", timeout=60).json()
        events = session.get(url + "/api/events", params={"limit": 1000, "since": "1970-01-01T00:00:00Z"},
                             timeout=60).json()["events"]
        total = page["total"]
    return {"workflows": workflows, "overview": overview, "events": events, "total": total}


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return _time(value).isoformat() + "Z"


def _num(value: Any) -> float | None:
    return None if value is None else float(Decimal(str(value)))


def expected(row: dict[str, Any]) -> dict[str, Any]:
    """A `fct_workflows` row as `/api/workflows` must show it."""
    split = lambda v: [s for s in (v or "").split(", ") if s]  # noqa: E731
    return {
        "id": row["workflow_id"], "name": row["workflow_name"], "status": row["status"],
        "statusSource": row["status_source"],
        "assignee": {"id": row["assignee_id"], "name": row["assignee_name"], "type": row["assignee_type"]}
        if row["assignee_id"] else None,
        "charlieInstanceId": row["charlie_instance_id"], "priority": row["priority"],
        "linearIssueKey": row["linear_issue_key"], "linearTeamKey": row["linear_team_key"],
        "github": {"repo": row["github_repo"], "prNumber": row["github_pr_number"]} if row["github_repo"] else None,
        "prCount": int(row["pr_count"] or 0), "sources": split(row["sources"]), "actors": split(row["actors"]),
        "actorCount": int(row["actor_count"] or 0), "eventCount": int(row["event_count"]),
        "firstEventAt": _iso(row["first_event_at"]), "lastEventAt": _iso(row["last_event_at"]),
        "completedAt": _iso(row["completed_at"]), "cycleTimeHours": _num(row["cycle_time_hours"]),
        "sessionCount": int(row["session_count"] or 0), "sessionCostUsd": _num(row["session_cost_usd"]) or 0.0,
        "ci": {"lastConclusion": row["last_ci_conclusion"], "lastCompletedAt": _iso(row["last_ci_completed_at"]),
               "runCount": int(row["ci_run_count"]), "failedRunCount": int(row["ci_failed_run_count"])}
        if row["ci_run_count"] else None,
    }


@dataclass
class Report:
    world_events: int = 0
    deliveries: int = 0
    workflows: int = 0
    equal: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    overview_equal: bool = False
    overview_diff: dict[str, Any] = field(default_factory=dict)
    events_equal: bool = False
    events_diff: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    boundary_columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.equal == self.workflows and not self.mismatches and self.overview_equal and self.events_equal

    def line(self) -> str:
        return (f"{self.equal:,} / {self.workflows:,} workflows equal field by field"
                f" ({self.deliveries:,} deliveries), overview {'equal' if self.overview_equal else 'DIFFERS'},"
                f" events {'equal' if self.events_equal else 'DIFFER'}")


def compare(api: dict[str, Any], warehouse: Path, report: Report) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        def rows(sql: str) -> list[dict]:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]

        built = {r["workflow_id"]: r for r in rows("select * from fct_workflows")}
        overview = rows("select * from dashboard_overview")[0]
        events = [r["event_id"] for r in rows("select event_id from fct_workflow_events order by event_at, event_id")]
    live = api["workflows"]
    report.workflows = len(built)
    for workflow_id, row in built.items():
        want = expected(row)
        got = live.get(workflow_id)
        if got is None:
            report.mismatches.append({"id": workflow_id, "missing": "not in /api/workflows"})
            continue
        diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        if diff:
            report.mismatches.append({"id": workflow_id, **diff})
        else:
            report.equal += 1
    for workflow_id in live.keys() - built.keys():
        report.mismatches.append({"id": workflow_id, "extra": "in /api/workflows, not in fct_workflows"})
    o = api["overview"]
    pairs = {"workflows.total": (o["workflows"]["total"], overview["workflows_total"]),
             "workflows.pending": (o["workflows"]["pending"], overview["workflows_pending"]),
             "workflows.active": (o["workflows"]["active"], overview["workflows_active"]),
             "workflows.completed": (o["workflows"]["completed"], overview["workflows_completed"]),
             "workflows.canceled": (o["workflows"]["canceled"], overview["workflows_canceled"]),
             "workflows.failed": (o["workflows"]["failed"], overview["workflows_failed"]),
             "workflows.avgCycleTimeHours": (o["workflows"]["avgCycleTimeHours"], _num(overview["avg_cycle_time_hours"])),
             "workflows.medianCycleTimeHours": (o["workflows"]["medianCycleTimeHours"],
                                                _num(overview["median_cycle_time_hours"])),
             "events.total": (o["events"]["total"], overview["events_total"]),
             "/api/workflows total": (api["total"], overview["workflows_total"])}
    report.overview_diff = {k: v for k, v in pairs.items() if v[0] != v[1]}
    report.overview_equal = not report.overview_diff
    got_events = [e["id"] for e in api["events"]]
    want_events = events[:len(got_events)] if len(events) > len(got_events) else events
    report.events_equal = got_events == want_events
    if not report.events_equal:
        report.events_diff = {"api": len(got_events), "marts": len(events),
                              "first_difference": next((i for i, (a, b) in enumerate(zip(got_events, want_events, strict=False))
                                                        if a != b), None)}


def _empty_tables(data: Path, end: datetime) -> None:
    """An empty partition for each polled-only table (CI runs, cycles, host metrics, ...): what a
    poll that found nothing writes. dbt reads every source; only the ones with a delivered twin
    may be missing (macros/polled_and_delivered.sql)."""
    from cc_events.delivered import DELIVERED_TABLES
    from cc_events.registry import RAW_TABLES
    from resources.storage.lake import Lake, raw_schema

    lake = Lake(data / "lake")
    for (source, entity), table in RAW_TABLES.items():
        if (source, entity) in DELIVERED_TABLES or source == "webhooks":
            continue
        if not list((data / "lake" / "raw" / source / entity).glob("*/*.parquet")):
            lake.write(("raw", source, entity), end.date(), [], raw_schema(table), end)


@contextlib.contextmanager
def _sidecar(data: Path) -> Iterator[Sidecar]:
    server = Sidecar(data, dict(SECRETS)).start()
    try:
        yield server
    finally:
        server.stop()


def run(events: int = 5000, days: int = 7, on_built: bool = False, work: Path | None = None,
        end: datetime | None = None, world: Path | None = None) -> Report:
    """Replay a world and compare. `world`: a data directory whose lake already holds one (the
    demo's); else a sandbox world of `events` over `days` is generated and ingested first."""
    report = Report()
    end = end or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with contextlib.ExitStack() as stack:
        work = work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cc-parity-")))
        started = time.monotonic()
        if world is None:
            world = ingest_world(work, events, days, end)
            report.world_events = events
        outgoing = deliveries(world / "lake")
        report.deliveries = len(outgoing)
        report.seconds["world"] = time.monotonic() - started
        data = work / "replay"
        for source, entity in CONFIGURATION:
            src = world / "lake" / "raw" / source / entity
            if src.exists():
                shutil.copytree(src, data / "lake" / "raw" / source / entity)
        _empty_tables(data, end)
        live = outgoing
        if on_built:
            cut = datetime.combine(end.date(), datetime.min.time())
            before, live = [d for d in outgoing if d.at < cut], [d for d in outgoing if d.at >= cut]
            with _sidecar(data) as server:
                send_all(server.url, before)
            build(data)
        started = time.monotonic()
        with _sidecar(data) as server:
            send_all(server.url, live)
            report.seconds["replay"] = time.monotonic() - started
            settled(server.url)
            report.seconds["settled"] = time.monotonic() - started
            api = read_api(server.url)
        started = time.monotonic()
        build(data)
        report.seconds["build"] = time.monotonic() - started
        compare(api, data / "warehouse.duckdb", report)
        report.boundary_columns = boundary_columns(data / "warehouse.duckdb")
    return report


def boundary_columns(warehouse: Path) -> dict[str, list[str]]:
    """The columns of the tables the live state fills itself, as the build wrote them."""
    from streaming.state.engine import BOUNDARY_COLUMNS

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: [r[0] for r in con.execute(f"describe {t}").fetchall()] for t in BOUNDARY_COLUMNS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--on-built", action="store_true", help="deliver the last day on top of a built warehouse")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    report = run(args.events, args.days, args.on_built, args.keep)
    print(report.line())
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
    for mismatch in report.mismatches[:10]:
        print("  ", mismatch)
    if report.overview_diff:
        print("   overview (api, marts):", report.overview_diff)
    if report.events_diff:
        print("   events:", report.events_diff)
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
