"""What a delivery carries into the delivered raw tables (`carried_rows`): the polled table's
columns and lineage, one row per carried record, and the team keys the normalizer learns from them."""

import json
from datetime import UTC, date, datetime, timedelta, timezone

from cc_events import NormalizeContext
from cc_events.delivered import DELIVERED_TABLES, LINEAGE_COLUMNS, carried_rows
from cc_events.latest import context_from_lake
from cc_events.registry import PUSHED_KINDS, RAW_TABLES, normalize_delivery
from resources.storage.lake import Lake, raw_schema

RECEIVED = datetime(2026, 1, 5, 10, 0, 1, 250000)
DONE = {"id": "state-done", "name": "Done", "color": "#5e6ad2", "type": "completed"}
CRON = {"seq": 7, "id": "cev_0000000000000007", "job": "nightly-backup", "host": "db-1", "event": "failed",
        "run_id": "run-7", "at": "2026-01-05T09:59:00Z", "duration_ms": 1200, "exit_code": 2, "message": "disk full"}


def columns(key):
    return [c.name for c in RAW_TABLES[key].columns] + list(LINEAGE_COLUMNS)


def test_a_linear_issue_is_a_row_of_the_polled_tables_columns_landed_when_received(linear_webhooks):
    payload = linear_webhooks.issue_created()
    [(key, row)] = carried_rows("linear", "Issue", payload, RECEIVED)
    assert key == ("linear", "issues")
    assert list(row) == columns(key)
    assert {k: row[k] for k in ("identifier", "team_key", "state_type", "assignee_name", "priority")} == {
        "identifier": "ENG-42", "team_key": "ENG", "state_type": "unstarted", "assignee_name": "Ann Lee",
        "priority": 2}
    assert row["updated_at"] == datetime(2026, 1, 5, 10)
    assert (row["_partition_date"], row["_ingested_at"]) == (date(2026, 1, 5), RECEIVED)
    assert json.loads(row["_raw"])["identifier"] == "ENG-42"
    # The lake's Parquet schema takes the row as it is.
    assert raw_schema(DELIVERED_TABLES[key]).names == list(row)


def test_an_update_carries_the_issue_in_its_new_state_but_no_second_created_event(linear_webhooks):
    payload = linear_webhooks.state_changed(to=DONE, at="2026-01-05T11:00:00.000Z")
    payload["data"]["cycleId"] = "cycle-3"
    [(key, row)] = carried_rows("linear", "Issue", payload, RECEIVED)
    assert key == ("linear", "issues") and row["state_type"] == "completed" and row["cycle_id"] == "cycle-3"
    events = normalize_delivery("linear", "Issue", payload, NormalizeContext(frozenset({"ENG"})))
    assert [e.type for e in events] == ["linear.issue.state_changed"]
    assert carried_rows("linear", "Issue", linear_webhooks.issue_removed(), RECEIVED) == []


def test_pushed_cron_runs_are_rows_and_an_unusable_one_is_rejected_with_its_reason():
    rejected = []
    rows = carried_rows("events", "cron.event", [CRON, {**CRON, "seq": None}], RECEIVED, rejected)
    assert [(key, row["run_event"], row["exit_code"]) for key, row in rows] == [(("cron", "events"), "failed", 2)]
    assert [(key, reason) for key, reason, _ in rejected] == [(("cron", "events"), "missing required field seq")]
    assert carried_rows("events", "alert", {"text": "hi"}, RECEIVED) == []


def test_a_github_pull_request_carries_its_repo_and_an_aware_time_becomes_naive_utc():
    pr = {"id": 11, "number": 5, "title": "VRF-7: verify", "state": "open", "user": {"login": "ann", "type": "User"},
          "head": {"ref": "vrf-7", "sha": "abc"}, "created_at": "2026-01-05T09:00:00Z",
          "updated_at": "2026-01-05T09:00:00Z", "html_url": "https://github.com/acme/api/pull/5"}
    payload = {"action": "opened", "pull_request": pr, "repository": {"full_name": "Acme/API"}}
    received = datetime(2026, 1, 5, 11, 0, 1, 250000, tzinfo=timezone(timedelta(hours=1)))
    [(key, row)] = carried_rows("github", "pull_request", payload, received)
    assert key == ("github", "pull_requests") and row["repo"] == "acme/api" and row["number"] == 5
    assert row["_ingested_at"] == RECEIVED and row["_ingested_at"].tzinfo is None
    assert carried_rows("github", "pull_request", {"action": "opened"}, RECEIVED) == []  # a dead letter upstream
    assert carried_rows("github", "ping", {"zen": "hi"}, RECEIVED) == []


def test_every_record_the_github_fixtures_carry_has_a_delivered_table(github_fixtures):
    carried = set()
    for folder in sorted(p for p in github_fixtures.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.json")):
            rejected = []
            rows = carried_rows("github", folder.name, json.loads(path.read_text()), RECEIVED, rejected)
            assert rejected == [], path
            carried.update(key for key, _ in rows)
    assert {("github", "pull_requests"), ("github", "issues"), ("github", "reviews")} <= carried


def test_every_pushed_kind_and_webhook_entity_has_a_delivered_table_with_the_polled_columns():
    assert set(PUSHED_KINDS.values()) <= set(DELIVERED_TABLES)
    assert {("linear", "issues"), ("linear", "comments"), ("github", "commits")} <= set(DELIVERED_TABLES)
    for (source, entity), table in DELIVERED_TABLES.items():
        assert (table.source, table.entity) == ("webhooks", f"{source}__{entity}")
        assert table.columns == RAW_TABLES[source, entity].columns


def test_the_normalizer_learns_the_teams_of_delivered_linear_issues(tmp_path, linear_webhooks):
    lake = Lake(tmp_path / "lake")
    assert "VRF" not in context_from_lake(lake).linear_team_keys
    payload = linear_webhooks.issue_created(issue_id="lin-7", identifier="VRF-7")
    payload["data"]["team"] = {"id": "team-vrf", "key": "VRF", "name": "Verification"}
    untold = linear_webhooks.issue_created(issue_id="lin-8", identifier="QA-8")
    del untold["data"]["team"]  # a payload without its team: the identifier's prefix is the key
    table = DELIVERED_TABLES["linear", "issues"]
    rows = [row for p in (payload, untold) for _, row in carried_rows("linear", "Issue", p, RECEIVED)]
    lake.write(("raw", table.source, table.entity), RECEIVED.date(), rows, raw_schema(table),
               datetime.now(UTC).replace(tzinfo=None))
    ctx = context_from_lake(lake)
    assert {"VRF", "QA"} <= ctx.linear_team_keys
    assert [k.key for k in ctx.extractor.all_keys("VRF-7: verify the signer", repo="acme/api")] == ["linear:VRF-7"]
