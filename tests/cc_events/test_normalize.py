"""The normalizer on real GitHub payloads and on the sources' record shapes."""

import json
import re

import pytest

from cc_events import InvalidRecord, NormalizeContext, normalize

CTX = NormalizeContext(
    linear_team_keys=frozenset({"ENG"}),
    charlie_github_logins={"charlie-alpha[bot]": "charlie-alpha"},
    charlie_linear_users={"u-charlie": "charlie-alpha"},
    charlie_names={"charlie-alpha": "Charlie Alpha"},
)


def test_real_github_pull_request_payload(github_fixtures):
    for path in sorted((github_fixtures / "pull_request").glob("*.json")):
        pr = json.loads(path.read_text())["pull_request"]
        events = normalize("github", "pull_requests", pr, CTX)
        repo = pr["base"]["repo"]["full_name"].lower()
        opened = events[0]
        assert opened.id == f"github:pr:{repo}#{pr['number']}:opened"
        assert opened.type == "github.pr.opened"
        assert opened.target.url == pr["html_url"]
        assert f"github:{repo}#{pr['number']}" in [k.key for k in opened.keys]
        assert opened.actor.type in ("human", "bot")
        types = [e.type for e in events]
        if pr.get("merged_at"):
            assert "github.pr.merged" in types
        elif pr.get("closed_at"):
            assert "github.pr.closed" in types


def test_real_github_review_and_issue_payloads(github_fixtures):
    payload = json.loads(next((github_fixtures / "pull_request_review").glob("*.json")).read_text())
    repo = payload["repository"]["full_name"]
    [review] = normalize("github", "reviews", payload["review"], CTX,
                         {"repo": repo, "pull_number": payload["pull_request"]["number"]})
    assert review.type == "github.review.submitted"
    assert [k.key for k in review.keys] == [f"github:{repo.lower()}#{payload['pull_request']['number']}"]
    issue_payload = json.loads(next((github_fixtures / "issues").glob("*.json")).read_text())
    events = normalize("github", "issues", issue_payload["issue"], CTX,
                       {"repo": issue_payload["repository"]["full_name"]})
    assert events[0].type == "github.issue.opened"


def test_pr_naming_a_linear_key_and_a_charlie_author():
    pr = {
        "number": 12, "title": "[ENG-7] Speed up SHA-256 hashing", "body": "Closes #3", "state": "closed",
        "created_at": "2026-11-20T10:00:00Z", "merged_at": "2026-11-21T09:30:00+01:00",
        "closed_at": "2026-11-21T08:30:00Z", "html_url": "https://github.com/acme/api/pull/12",
        "user": {"login": "charlie-alpha[bot]", "type": "Bot"}, "head": {"ref": "charlie/eng-7-speed"},
    }
    opened, merged = normalize("github", "pull_requests", pr, CTX, {"repo": "acme/api"})
    assert [k.key for k in opened.keys] == ["github:acme/api#12", "github:acme/api#3", "linear:ENG-7"]
    assert opened.actor.type == "charlie" and opened.actor.instance == "charlie-alpha"
    assert merged.timestamp.isoformat() == "2026-11-21T08:30:00"  # offsets become naive UTC
    assert merged.parent_event_id == opened.id


def test_linear_issue_history_and_charlie_assignee():
    issue = {
        "id": "i1", "identifier": "ENG-7", "title": "Speed up hashing", "priority": 2,
        "createdAt": "2026-11-20T09:00:00Z", "creator": {"id": "u-charlie", "name": "charlie"},
        "team": {"key": "ENG"}, "state": {"name": "Done", "type": "completed"},
        "history": {"nodes": [
            {"id": "h1", "createdAt": "2026-11-20T10:00:00Z", "fromState": {"name": "Todo"},
             "toState": {"name": "In Progress", "type": "started"}, "actor": {"id": "u9", "name": "Ann"}},
            {"id": "h2", "createdAt": "2026-11-20T11:00:00Z", "toState": None},
        ]},
    }
    created, changed = normalize("linear", "issues", issue, CTX)
    assert created.actor.type == "charlie"
    assert changed.id == "linear:history:h1" and changed.actor.name == "Ann"
    assert {k.key for e in (created, changed) for k in e.keys} == {"linear:ENG-7"}


def test_charlie_activity_keys():
    [event] = normalize("charlie", "activity", {
        "id": "a1", "instance_id": "charlie-alpha", "type": "pr.opened", "timestamp": "2026-11-20T10:00:00Z",
        "issue_key": "ENG-7", "repo": "acme/api", "pr_number": 12, "correlation_id": "run-9",
        "message": "Opened acme/api#12 for ENG-7",
    }, CTX)
    assert event.type == "charlie.pr.opened"
    assert [k.key for k in event.keys] == ["corr:run-9", "github:acme/api#12", "linear:ENG-7"]
    assert event.to_message()["metadata"]["correlationId"] == "run-9"


@pytest.mark.parametrize("record, reason", [
    ({"title": "no number"}, "missing required field(s): number, created_at, html_url"),
    ({"number": 1, "created_at": "yesterday", "html_url": "u"}, "created_at: not an ISO 8601 time: 'yesterday'"),
    (["not", "an", "object"], "record is a list"),
])
def test_invalid_records_say_why(record, reason):
    with pytest.raises(InvalidRecord, match=re.escape(reason)):
        normalize("github", "pull_requests", record, CTX, {"repo": "acme/api"})
