"""Webhook deliveries → the source records they carry → normalized events.

A pull_request webhook carries the same PR object `GET /pulls` returns, a push carries commits,
a Linear `Issue` webhook the issue: each is handed to the very normalizer the polled record goes
through, so a PR seen both by webhook and by the REST poll has the same event ids
(`github:pr:acme/api#12:opened`) and the staging dedupe on `event_id` counts it once.

Delivery kinds with no normalizer (ping, releases, workflow runs, comments, …) are stored raw:
`delivery_records` returns nothing for them. A known kind whose payload lacks what the normalizer
needs raises `InvalidRecord` — a dead letter with the reason, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cc_events.model import InvalidRecord, NormalizedEvent
from cc_events.normalize import NormalizeContext, normalize

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


def linear_records(event: str, payload: Mapping[str, Any]) -> list[SourceRecord]:
    # The webhook's issue has no `history`: it yields the created event; state changes are
    # counted from the poll's history entries, whose ids the webhook does not carry.
    if event == "Issue":
        if payload.get("action") == "remove":
            return []
        return [("linear", "issues", _object(payload, "data"), {})]
    return []


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
    events: list[NormalizedEvent] = []
    for rec_source, entity, record, extra in delivery_records(source, event, payload):
        events.extend(normalize(rec_source, entity, record, ctx, extra))
    return events


def webhook_delivery(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """Normalizer of `raw/webhooks/deliveries`: the envelope the sidecar landed."""
    if not record.get("source") or not record.get("event"):
        raise InvalidRecord("delivery without source or event")
    return normalize_delivery(str(record["source"]), str(record["event"]), record.get("payload"), ctx)
