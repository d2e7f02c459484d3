"""CI runs and Linear comments through the one normalizer: ids, keys into the PR or issue workflow,
what is not an event yet, and what is schema-invalid."""

import pytest

from cc_events import InvalidRecord, NormalizeContext, normalize
from cc_events.registry import RAW_TABLES

CTX = NormalizeContext(linear_team_keys=frozenset({"ENG", "OPS"}))
PULL_REF = {"number": 12, "head": {"ref": "alice/eng-7-fix", "sha": "abc"}, "base": {"ref": "main"}}
RUN = {
    "id": 11000000042, "name": "CI", "run_number": 7, "run_attempt": 2, "event": "pull_request",
    "status": "completed", "conclusion": "success", "head_branch": "alice/eng-7-fix", "head_sha": "abc",
    "created_at": "2026-11-20T10:00:00Z", "updated_at": "2026-11-20T10:30:00Z",
    "run_started_at": "2026-11-20T10:20:00Z", "html_url": "https://github.com/acme/api/actions/runs/11000000042",
    "actor": {"login": "alice", "type": "User"}, "pull_requests": [PULL_REF],
}
CHECK = {
    "id": 30000000001, "name": "test", "head_sha": "abc", "status": "completed", "conclusion": "failure",
    "started_at": "2026-11-20T10:01:00Z", "completed_at": "2026-11-20T10:09:00Z",
    "html_url": "https://github.com/acme/api/actions/runs/1/job/30000000001", "app": {"slug": "github-actions"},
    "pull_requests": [PULL_REF],
}
COMMENT = {
    "id": "c-1", "body": "Might be related to OPS-3.", "createdAt": "2026-11-20T09:00:00.000Z",
    "updatedAt": "2026-11-20T09:30:00.000Z", "user": {"id": "u-1", "name": "Alice"},
    "issue": {"id": "i-7", "identifier": "eng-7"},
}


def test_a_finished_run_is_an_event_in_its_prs_workflow():
    [event] = normalize("github", "workflow_runs", RUN, CTX, {"repo": "Acme/API"})
    assert event.id == "github:workflow_run:11000000042:2" and event.type == "github.workflow_run.completed"
    assert [k.key for k in event.keys] == ["github:acme/api#12"]  # not the branch's ENG-7: the PR names that
    assert event.timestamp.isoformat() == "2026-11-20T10:30:00"
    assert event.payload["conclusion"] == "success" and event.payload["run_attempt"] == 2
    assert event.actor.id == "github:alice"


def test_a_push_run_names_no_key_and_a_running_one_is_no_event_yet():
    [push] = normalize("github", "workflow_runs", {**RUN, "event": "push", "pull_requests": []}, CTX,
                       {"repo": "acme/api"})
    assert push.keys == ()
    assert normalize("github", "workflow_runs", {**RUN, "status": "in_progress", "conclusion": None}, CTX,
                     {"repo": "acme/api"}) == []


def test_a_check_run_names_the_pr_it_was_fetched_for_and_the_prs_it_lists():
    [event] = normalize("github", "check_runs", {**CHECK, "pull_requests": []}, CTX,
                        {"repo": "acme/api", "pull_number": 12})
    assert event.id == "github:check_run:30000000001" and event.type == "github.check_run.completed"
    assert [k.key for k in event.keys] == ["github:acme/api#12"]
    assert event.actor.type == "bot" and event.actor.name == "github-actions[bot]"
    [both] = normalize("github", "check_runs", CHECK, CTX, {"repo": "acme/api", "pull_number": 13})
    assert [k.key for k in both.keys] == ["github:acme/api#12", "github:acme/api#13"]
    assert normalize("github", "check_runs", {**CHECK, "status": "queued"}, CTX,
                     {"repo": "acme/api", "pull_number": 12}) == []


def test_a_finished_check_run_without_its_end_is_invalid():
    with pytest.raises(InvalidRecord, match="completed_at"):
        normalize("github", "check_runs", {**CHECK, "completed_at": None}, CTX, {"repo": "acme/api", "pull_number": 1})
    with pytest.raises(InvalidRecord, match="created_at"):
        normalize("github", "workflow_runs", {k: v for k, v in RUN.items() if k != "created_at"}, CTX,
                  {"repo": "acme/api"})


def test_a_comment_names_its_issue_only():
    [event] = normalize("linear", "comments", COMMENT, CTX)
    assert event.id == "linear:comment:c-1" and event.type == "linear.comment.created"
    assert [k.key for k in event.keys] == ["linear:ENG-7"]  # OPS-3 in the text is a mention, not a link
    assert event.parent_event_id == "linear:issue:i-7:created"
    assert event.payload["edited"] is True and event.actor.id == "linear:u-1"
    with pytest.raises(InvalidRecord, match="without its issue"):
        normalize("linear", "comments", {**COMMENT, "issue": None}, CTX)


def test_raw_tables_flatten_the_new_records():
    run = RAW_TABLES["github", "workflow_runs"].flatten(RUN, {"repo": "acme/api"})
    assert run["pr_number"] == 12 and run["run_attempt"] == 2 and run["workflow_name"] == "CI"
    assert RAW_TABLES["github", "workflow_runs"].flatten({**RUN, "pull_requests": []}, {"repo": "a/b"})["pr_number"] is None
    check = RAW_TABLES["github", "check_runs"].flatten(CHECK, {"repo": "acme/api", "pull_number": 12})
    assert check["app_slug"] == "github-actions" and check["check_name"] == "test"
    with pytest.raises(InvalidRecord, match="pull_number"):
        RAW_TABLES["github", "check_runs"].flatten(CHECK, {"repo": "acme/api"})
    comment = RAW_TABLES["linear", "comments"].flatten(COMMENT)
    assert comment["issue_identifier"] == "eng-7" and comment["user_name"] == "Alice"
    cycle = {"id": "cy-1", "number": 4, "startsAt": "2026-11-16T00:00:00.000Z", "endsAt": "2026-11-23T00:00:00.000Z",
             "team": {"id": "t-1", "key": "ENG"}}
    assert RAW_TABLES["linear", "cycles"].flatten(cycle)["team_key"] == "ENG"
    with pytest.raises(InvalidRecord, match="endsAt"):
        RAW_TABLES["linear", "cycles"].flatten({**cycle, "endsAt": None})
