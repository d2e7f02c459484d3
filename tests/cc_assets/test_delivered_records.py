"""Records that webhook deliveries and pushes carry reach the staging models of their entities: with
deliveries only (no poll of those entities), the deliveries' raw asset, the normalizer and a dbt
build give the marts an operator reads (fct_workflows, the cron health, the status update) what
a poll would have given them; and a record both polled and delivered is one staging row, the newer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from contextlib import nullcontext
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from cc_assets.definitions import defs
from cc_assets.delivered import delivered_records
from cc_assets.normalized import normalized_events
from cc_assets.sources import raw_assets
from cc_events.registry import RAW_TABLES
from cc_events.sources.webhooks import LANDING_STREAM
from resources.dbt import DBT_PROJECT_DIR
from resources.platform import PlatformResource
from resources.storage.lake import raw_schema
from resources.storage.landing import LandingLog
from resources.storage.warehouse import open_warehouse
from scripts.chaos.harness import throwaway_database

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
TODAY = NOW.date()
# Deliveries are received today (their partition), a few seconds apart, in the order sent.
BASE = max(NOW - timedelta(hours=1), datetime.combine(TODAY, time()))
BACKLOG = {"id": "state-backlog", "name": "Backlog", "color": "#bec2c8", "type": "backlog"}
STARTED = {"id": "state-started", "name": "In Progress", "color": "#f2c94c", "type": "started"}
DONE = {"id": "state-done", "name": "Done", "color": "#5e6ad2", "type": "completed"}
VRF = {"id": "team-vrf", "key": "VRF", "name": "Verification"}
# The entities the deliveries carry: no poll of these lands anything, not even an empty partition.
DELIVERED_ONLY = {("linear", "issues"), ("github", "pull_requests"), ("cron", "events")}


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds") + "Z"


def at(seconds: int) -> datetime:
    return BASE + timedelta(seconds=seconds)


class Sender:
    """Lands deliveries in the landing log as the sidecar does when it acknowledges one."""

    def __init__(self, data_dir: Path) -> None:
        self.log = LandingLog(data_dir / "landing")

    def send(self, source: str, event: str, payload, received_at: datetime) -> None:
        delivery_id = uuid.uuid4().hex
        action = payload.get("action") if isinstance(payload, dict) else None
        self.log.append(LANDING_STREAM, [{
            "id": f"{source}:{delivery_id}", "source": source, "delivery_id": delivery_id, "event": event,
            "action": action, "status": "normalized", "reason": None, "repo": None, "payload": payload,
        }], received_at)


def linear_issue(linear_webhooks, action: str, issue_id: str, identifier: str, state: dict, updated: datetime):
    payload = linear_webhooks.issue_created(issue_id=issue_id, identifier=identifier, state=state,
                                            updated_at=iso(updated))
    payload["data"].update(team=VRF, teamId=VRF["id"], createdAt=iso(BASE - timedelta(days=1)))
    return {**payload, "action": action}


def pull_request(action: str, number: int, title: str, updated: datetime, merged: datetime | None = None) -> dict:
    pr = {"id": 700000 + number, "number": number, "title": title, "body": "", "draft": False,
          "state": "closed" if merged else "open", "user": {"login": "ann", "type": "User"},
          "head": {"ref": f"feature-{number}", "sha": f"{number:040x}"},
          "created_at": iso(BASE - timedelta(hours=2)), "updated_at": iso(updated),
          "closed_at": iso(merged) if merged else None, "merged_at": iso(merged) if merged else None,
          "merged_by": {"login": "bob", "type": "User"} if merged else None,
          "html_url": f"https://github.com/acme/api/pull/{number}"}
    return {"action": action, "number": number, "pull_request": pr, "repository": {"full_name": "acme/api"},
            "sender": {"login": "ann", "type": "User"}}


def cron_run(seq: int, kind: str, moment: datetime, exit_code: int | None = None) -> dict:
    return {"seq": seq, "id": f"cev_{seq:016x}", "job": "nightly-backup", "host": "db-1", "event": kind,
            "run_id": "run-nightly-1", "at": iso(moment), "duration_ms": None if kind == "started" else 4200,
            "exit_code": exit_code, "message": "disk full" if kind == "failed" else None}


def land_deliveries(platform: PlatformResource) -> None:
    """The deliveries, the records they carry and the normalizer for today, as the webhooks job runs them."""
    deliveries = next(a for a in raw_assets if a.key == AssetKey(["raw", "webhooks", "deliveries"]))
    assert materialize([deliveries, delivered_records, normalized_events], partition_key=TODAY.isoformat(),
                       resources={"platform": platform}, instance=DagsterInstance.ephemeral()).success


def land_empty_polls(platform: PlatformResource, skip=()) -> None:
    """Every other polled table as a poll that found nothing today (dbt reads every source)."""
    for (source, entity), table in RAW_TABLES.items():
        if source != "webhooks" and (source, entity) not in skip:
            platform.land(("raw", source, entity), TODAY, [], raw_schema(table), NOW)


def build(platform: PlatformResource) -> None:
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("transform_job").execute_in_process(
            instance=instance, resources={"platform": platform}, raise_on_error=False)
    assert result.success, "dbt build failed"


def send_the_world(sender: Sender, linear_webhooks) -> None:
    # A Backlog issue of a team no poll has listed, assigned to Ann, and a PR naming it.
    sender.send("linear", "Issue", linear_issue(linear_webhooks, "create", "lin-7", "VRF-7", BACKLOG, at(0)), at(1))
    sender.send("github", "pull_request", pull_request("opened", 5, "VRF-7: verify the signer", at(2)), at(3))
    # A PR opened, then merged.
    sender.send("github", "pull_request", pull_request("opened", 6, "Speed up login", at(4)), at(5))
    sender.send("github", "pull_request", pull_request("closed", 6, "Speed up login", at(6), merged=at(6)), at(7))
    # A cron run that failed, pushed to POST /events.
    sender.send("events", "cron.event", cron_run(1, "started", at(8)), at(9))
    sender.send("events", "cron.event", cron_run(2, "failed", at(10), exit_code=2), at(11))


def assert_the_marts_show_the_deliveries(platform: PlatformResource) -> None:
    with open_warehouse(platform.settings()) as con:
        workflows = {row[0]: row[1:] for row in con.execute(
            "select coalesce(linear_issue_key, github_repo || '#' || github_pr_number), status, assignee_name,"
            " assignee_id, priority, github_pr_number, completed_at from fct_workflows").fetchall()}
        health = con.execute("select is_healthy, failed_count, last_failure_exit_code from fct_cron_job_health"
                             " where job_name = 'nightly-backup'").fetchall()
        status = con.execute("select cron_jobs_total, cron_jobs_failed from system_status_update").fetchall()
    # The Linear issue decides the workflow: pending (Backlog) with its assignee, and the PR that
    # names VRF-7 joined it (the team is known from the delivered issue).
    assert workflows["VRF-7"][:5] == ("pending", "Ann Lee", "user-ann", "high", 5)
    assert workflows["acme/api#6"][0] == "completed"
    assert workflows["acme/api#6"][5] == at(6)
    assert len(workflows) == 2
    assert health == [(False, 1, 2)]
    assert status == [(1, 1)]


def test_deliveries_alone_reach_the_marts_on_duckdb(tmp_path, linear_webhooks):
    data_dir = tmp_path / "data"
    platform = PlatformResource(data_dir=str(data_dir), warehouse="duckdb")
    send_the_world(Sender(data_dir), linear_webhooks)
    land_deliveries(platform)
    land_empty_polls(platform, skip=DELIVERED_ONLY)
    build(platform)
    assert_the_marts_show_the_deliveries(platform)


@pytest.mark.postgres
def test_deliveries_alone_reach_the_marts_on_postgres(tmp_path, pg_admin_url, linear_webhooks):
    with throwaway_database(pg_admin_url, "cc_test_delivered") as pg_url:
        data_dir = tmp_path / "data"
        platform = PlatformResource(data_dir=str(data_dir), warehouse="postgres", pg_url=pg_url)
        send_the_world(Sender(data_dir), linear_webhooks)
        land_deliveries(platform)
        land_empty_polls(platform, skip=DELIVERED_ONLY)
        build(platform)
        assert_the_marts_show_the_deliveries(platform)


# --- one record, polled and delivered ---------------------------------------------------------------


def polled_issue(linear_webhooks, issue_id: str, identifier: str, state: dict, updated: datetime) -> dict:
    """The issue as the poll's `issues` query returns it."""
    data = linear_issue(linear_webhooks, "create", issue_id, identifier, state, updated)["data"]
    return {**{k: data[k] for k in ("id", "identifier", "title", "priority", "url", "createdAt", "updatedAt",
                                    "team", "state", "assignee")}, "creator": {"id": "user-ann", "name": "Ann Lee"}}


def run_staging(platform: PlatformResource, target: str, tmp_path: Path) -> list[tuple]:
    settings = platform.settings()
    out = tmp_path / "dbt_target"
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--select", "stg_linear__issues", "--project-dir",
         str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--target", target, "--target-path", str(out),
         "--log-path", str(out)], env={**os.environ, **settings.dbt_env()}, check=True, stdout=subprocess.DEVNULL)
    with open_warehouse(settings) as con:
        return con.execute("select issue_key, state_type, updated_at from stg_linear__issues order by 1").fetchall()


@pytest.mark.parametrize("target", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_record_polled_and_delivered_is_one_staging_row_the_newer_copy(target, tmp_path, linear_webhooks, request):
    with (throwaway_database(request.getfixturevalue("pg_admin_url"), "cc_test_delivered") if target == "postgres"
          else nullcontext()) as pg_url:
        data_dir = tmp_path / "data"
        platform = PlatformResource(data_dir=str(data_dir), warehouse=target, pg_url=pg_url)
        # VRF-8: polled in Backlog, then moved to Done by a webhook (the delivered copy is newer).
        # VRF-9: delivered when created, then polled In Progress (the polled copy is newer), and
        # delivered again later with the older state (a late redelivery: its record is older).
        polled = [polled_issue(linear_webhooks, "lin-8", "VRF-8", BACKLOG, at(0)),
                  polled_issue(linear_webhooks, "lin-9", "VRF-9", STARTED, at(20))]
        table = RAW_TABLES["linear", "issues"]
        rows = [{**table.flatten(issue), "_raw": "{}"} for issue in polled]
        platform.land(("raw", "linear", "issues"), TODAY, rows, raw_schema(table), at(21))
        sender = Sender(data_dir)
        sender.send("linear", "Issue", linear_issue(linear_webhooks, "update", "lin-8", "VRF-8", DONE, at(30)), at(31))
        sender.send("linear", "Issue", linear_issue(linear_webhooks, "create", "lin-9", "VRF-9", BACKLOG, at(10)),
                    at(40))
        land_deliveries(platform)
        assert run_staging(platform, target, tmp_path) == [("VRF-8", "completed", at(30)), ("VRF-9", "started", at(20))]
