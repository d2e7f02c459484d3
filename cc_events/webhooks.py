"""Webhook deliveries → the source records they carry → normalized events.

A pull_request webhook carries the same PR object `GET /pulls` returns, a push carries commits,
a Linear `Issue` create the issue and a `Comment` create the comment: each is handed to the very
normalizer the polled record goes through, so a PR seen both by webhook and by the REST poll has
the same event ids (`github:pr:acme/api#12:opened`) and the staging dedupe on `event_id` counts
it once.

A Linear `Issue` update that moves the issue to another state is the one exception: the poll
counts that move from the issue's history entry, whose id the webhook does not carry. The update
becomes the same `linear.issue.state_changed` event (same normalizer, `linear_state_change`) under
its own id, `linear:issue:<issue id>:state_changed:<epoch ms of updatedAt>`, and dbt pairs it with
the poll's `linear:history:<id>` twin (`int_linear_state_changes_paired`) so the marts count it once.

Delivery kinds with no normalizer (ping, releases, workflow runs, other Linear updates, removes,
…) are stored raw: they yield no event. A known kind whose payload lacks what the normalizer
needs raises `InvalidRecord` — a dead letter with the reason, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cc_events.model import InvalidRecord, NormalizedEvent
from cc_events.normalize import NormalizeContext, linear_state_change, normalize, parse_time

# The landing-log stream the sidecar appends every acknowledged delivery to (raw/webhooks/deliveries).
LANDING_STREAM = "webhooks"

# (source, entity) of the polled table a record of this kind belongs to.
SourceRecord = tuple[str, str, Mapping[str, Any], dict[str, Any]]

# `POST /events` and `POST /webhooks/charlie` kinds: what bots, cron runners and agents push.
EVENT_KINDS: dict[str, tuple[str, str]] = {
    "charlie.activity": ("charlie", "activity"),
    "cron.event": ("cron", "events"),
    "openclaw.session": ("openclaw", "sessions"),
    "weather.opportunity": ("weather", "opportunities"),
}
METRICS_KIND = "system.metrics"

_EPOCH = datetime(1970, 1, 1)


def _object(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"payload has no `{name}` object")
    return value


def _repo(payload: Mapping[str, Any]) -> str:
    full_name = _object(payload, "repository").get("full_name")
    if not full_name:
        raise InvalidRecord("payload has no repository.full_name")
    return str(full_name).lower()


def _push_commit(commit: Mapping[str, Any]) -> dict[str, Any]:
    """A push payload's commit in the shape `GET /repos/{repo}/commits` lists it."""
    author = commit.get("author") or {}
    return {
        "sha": commit.get("id"),
        "commit": {"message": commit.get("message"),
                   "author": {"name": author.get("name"), "email": author.get("email"),
                              "date": commit.get("timestamp")}},
        "author": {"login": author.get("username")} if author.get("username") else None,
        "html_url": commit.get("url"),
    }


def github_records(event: str, payload: Mapping[str, Any]) -> list[SourceRecord]:
    if event == "pull_request":
        return [("github", "pull_requests", _object(payload, "pull_request"), {"repo": _repo(payload)})]
    if event == "issues":
        return [("github", "issues", _object(payload, "issue"), {"repo": _repo(payload)})]
    if event == "pull_request_review":
        pull = _object(payload, "pull_request")
        return [("github", "reviews", _object(payload, "review"),
                 {"repo": _repo(payload), "pull_number": pull.get("number")})]
    if event == "push":
        commits = payload.get("commits")
        if not isinstance(commits, list):
            raise InvalidRecord("push payload has no `commits` list")
        repo = _repo(payload)
        return [("github", "commits", _push_commit(c), {"repo": repo}) for c in commits if isinstance(c, Mapping)]
    return []


# A Linear comment's URL: https://linear.app/<org>/issue/ENG-12/<slug>#comment-<id>.
_LINEAR_ISSUE_URL = re.compile(r"/issue/([A-Za-z][A-Za-z0-9]*-\d+)(?:[/#?]|$)")


def _linear_issue(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """A created issue as the poll sees it: the webhook names its creator by `creatorId` only,
    and the `actor` of the delivery is that user (with the name the poll's `creator` has)."""
    data = _object(payload, "data")
    if isinstance(data.get("creator"), Mapping) or not data.get("creatorId"):
        return data
    actor = payload.get("actor")
    same = isinstance(actor, Mapping) and actor.get("id") == data["creatorId"]
    return {**data, "creator": {"id": data["creatorId"], "name": actor.get("name") if same else None}}


def _linear_comment(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A `Comment` webhook's comment in the shape the poll's `comments` query returns it; None
    for a comment on something other than an issue (a project update, a document)."""
    data = _object(payload, "data")
    issue = data.get("issue") if isinstance(data.get("issue"), Mapping) else {}
    issue_id = issue.get("id") or data.get("issueId")
    if not issue_id:
        return None
    identifier = issue.get("identifier")
    if not identifier:  # older payloads carry issueId only; the comment's URL names the issue
        found = _LINEAR_ISSUE_URL.search(str(data.get("url") or payload.get("url") or ""))
        identifier = found.group(1) if found else None
    user = data.get("user") if isinstance(data.get("user"), Mapping) else None
    if user is None and data.get("userId"):
        user = {"id": data["userId"]}
    return {"id": data.get("id"), "body": data.get("body"), "createdAt": data.get("createdAt"),
            "updatedAt": data.get("updatedAt"), "user": user, "issue": {"id": issue_id, "identifier": identifier}}


def linear_records(event: str, payload: Mapping[str, Any]) -> list[SourceRecord]:
    """Creates only: an update is a state change (`linear_issue_update`) or nothing the poll
    counts either, and a remove has no event in the poll (its earlier events stay)."""
    if payload.get("action") != "create":
        return []
    if event == "Issue":
        return [("linear", "issues", _linear_issue(payload), {})]
    if event == "Comment":
        comment = _linear_comment(payload)
        return [] if comment is None else [("linear", "comments", comment, {})]
    return []


def linear_issue_update(payload: Mapping[str, Any], ctx: NormalizeContext) -> list[NormalizedEvent]:
    """An `Issue` update whose `updatedFrom` has a `stateId`: the move, as the poll's history
    entry for it would normalize (`from` stays unknown: `updatedFrom` has the old state's id only)."""
    before = payload.get("updatedFrom")
    if not isinstance(before, Mapping) or "stateId" not in before:
        return []  # assignee, priority, title…: the poll has no event for those either
    issue = _object(payload, "data")
    state = _object(issue, "state")
    if not issue.get("id"):
        raise InvalidRecord("Issue update without data.id")
    at = parse_time(issue.get("updatedAt") or payload.get("createdAt"), "data.updatedAt")
    actor = payload.get("actor")
    # The poll's history names a user or nobody (an integration, an automation): so do we.
    if not isinstance(actor, Mapping) or actor.get("type") not in (None, "user"):
        actor = None
    entry = {"createdAt": at, "actor": actor, "fromState": {"id": before["stateId"]}, "toState": state}
    stamp = (at - _EPOCH) // timedelta(milliseconds=1)
    return [linear_state_change(issue, entry, ctx, f"linear:issue:{issue['id']}:state_changed:{stamp}")]


def pushed_records(kind: str, data: Any) -> list[SourceRecord]:
    """`POST /events` / `POST /webhooks/charlie`: one record, or a list of them, of a known kind."""
    if kind not in EVENT_KINDS:
        return []
    source, entity = EVENT_KINDS[kind]
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not isinstance(item, Mapping):
            raise InvalidRecord(f"{kind}: a record is a {type(item).__name__}, not an object")
    return [(source, entity, item, {}) for item in items]


def delivery_records(source: str, event: str, payload: Any) -> list[SourceRecord]:
    """The source records a delivery carries; [] when it is stored raw only."""
    if source in ("events", "charlie"):
        return pushed_records(event, payload)
    if not isinstance(payload, Mapping):
        raise InvalidRecord(f"payload is a {type(payload).__name__}, not an object")
    if source == "github":
        return github_records(event, payload)
    if source == "linear":
        return linear_records(event, payload)
    return []


def normalize_delivery(source: str, event: str, payload: Any, ctx: NormalizeContext) -> list[NormalizedEvent]:
    if source == "linear" and event == "Issue" and isinstance(payload, Mapping) and payload.get("action") == "update":
        return linear_issue_update(payload, ctx)
    events: list[NormalizedEvent] = []
    for rec_source, entity, record, extra in delivery_records(source, event, payload):
        events.extend(normalize(rec_source, entity, record, ctx, extra))
    return events


def webhook_delivery(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """Normalizer of `raw/webhooks/deliveries`: the envelope the sidecar landed."""
    if not record.get("source") or not record.get("event"):
        raise InvalidRecord("delivery without source or event")
    return normalize_delivery(str(record["source"]), str(record["event"]), record.get("payload"), ctx)
