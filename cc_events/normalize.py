"""Source record → normalized events, one function per source entity (docs/contract.md §2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cc_events.keys import CorrelationKey, KeyExtractor, unique
from cc_events.model import Actor, InvalidRecord, NormalizedEvent, Target

LINEAR_PRIORITY = {0: "none", 1: "urgent", 2: "high", 3: "medium", 4: "low"}


@dataclass(frozen=True)
class NormalizeContext:
    """What the normalizer must know beyond one record: the org's teams and its Charlie bots."""

    linear_team_keys: frozenset[str] = frozenset()
    # Charlie identities on other systems, mapped to the instance id.
    charlie_github_logins: Mapping[str, str] = field(default_factory=dict)
    charlie_linear_users: Mapping[str, str] = field(default_factory=dict)
    charlie_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def extractor(self) -> KeyExtractor:
        return KeyExtractor(self.linear_team_keys)

    @classmethod
    def build(cls, teams: Iterable[Mapping[str, Any]], instances: Iterable[Mapping[str, Any]]) -> NormalizeContext:
        instances = list(instances)
        return cls(
            linear_team_keys=frozenset(str(t["key"]).upper() for t in teams if t.get("key")),
            charlie_github_logins={i["github_login"].lower(): i["id"] for i in instances if i.get("github_login")},
            charlie_linear_users={i["linear_user_id"]: i["id"] for i in instances if i.get("linear_user_id")},
            charlie_names={i["id"]: i.get("name") or i["id"] for i in instances},
        )


def parse_time(value: Any, field_name: str) -> datetime:
    """ISO 8601 (with `Z` or an offset) → naive UTC, the lake's time convention."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidRecord(f"{field_name}: not an ISO 8601 time: {value!r}") from exc
    else:
        raise InvalidRecord(f"{field_name}: missing")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def optional_time(value: Any, field_name: str) -> datetime | None:
    return None if value in (None, "") else parse_time(value, field_name)


def require(record: Mapping[str, Any], *names: str) -> None:
    missing = [n for n in names if record.get(n) in (None, "")]
    if missing:
        raise InvalidRecord(f"missing required field(s): {', '.join(missing)}")


# --- actors --------------------------------------------------------------------------------------


def github_actor(user: Mapping[str, Any] | None, ctx: NormalizeContext) -> Actor:
    if not user or not user.get("login"):
        return Actor(id="github:ghost", name="ghost", type="human")
    login = str(user["login"])
    instance = ctx.charlie_github_logins.get(login.lower())
    if instance:
        return Actor(id=f"charlie:{instance}", name=ctx.charlie_names.get(instance, instance), type="charlie",
                     instance=instance)
    is_bot = user.get("type") == "Bot" or login.endswith("[bot]")
    return Actor(id=f"github:{login}", name=login, type="bot" if is_bot else "human")


def linear_actor(user: Mapping[str, Any] | None, ctx: NormalizeContext) -> Actor:
    if not user or not user.get("id"):
        return Actor(id="linear:system", name="Linear", type="bot")
    instance = ctx.charlie_linear_users.get(user["id"])
    if instance:
        return Actor(id=f"charlie:{instance}", name=ctx.charlie_names.get(instance, instance), type="charlie",
                     instance=instance)
    return Actor(id=f"linear:{user['id']}", name=str(user.get("name") or user["id"]), type="human")


def charlie_actor(instance_id: str, ctx: NormalizeContext) -> Actor:
    return Actor(id=f"charlie:{instance_id}", name=ctx.charlie_names.get(instance_id, instance_id),
                 type="charlie", instance=instance_id)


# --- GitHub --------------------------------------------------------------------------------------


def _repo_of(record: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    repo = extra.get("repo") or ((record.get("base") or {}).get("repo") or {}).get("full_name")
    if not repo:
        raise InvalidRecord("repository unknown (no base.repo.full_name and none given)")
    return str(repo).lower()


def github_pull_request(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "number", "created_at", "html_url")
    repo = _repo_of(record, extra)
    number = int(record["number"])
    own = CorrelationKey.github(repo, number)
    branch = (record.get("head") or {}).get("ref")
    keys = unique([own, *ctx.extractor.all_keys(branch, record.get("title"), record.get("body"), repo=repo)])
    target = Target("pr", f"{repo}#{number}", str(record.get("title") or ""), str(record["html_url"]))
    payload = {"repo": repo, "number": number, "state": record.get("state"), "branch": branch,
               "draft": bool(record.get("draft")), "merged": record.get("merged_at") is not None}
    opened_id = f"github:pr:{repo}#{number}:opened"
    tags = (repo,)
    events = [NormalizedEvent(opened_id, parse_time(record["created_at"], "created_at"), "github",
                              "github.pr.opened", github_actor(record.get("user"), ctx), target, payload,
                              keys, tags=tags)]
    merged_at = optional_time(record.get("merged_at"), "merged_at")
    closed_at = optional_time(record.get("closed_at"), "closed_at")
    if merged_at is not None:
        merger = record.get("merged_by") or record.get("user")
        events.append(NormalizedEvent(f"github:pr:{repo}#{number}:merged", merged_at, "github",
                                      "github.pr.merged", github_actor(merger, ctx), target, payload, keys,
                                      parent_event_id=opened_id, tags=tags))
    elif closed_at is not None:
        events.append(NormalizedEvent(f"github:pr:{repo}#{number}:closed", closed_at, "github",
                                      "github.pr.closed", github_actor(record.get("user"), ctx), target,
                                      payload, keys, parent_event_id=opened_id, tags=tags))
    return events


def github_issue(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "number", "created_at", "html_url")
    repo = _repo_of(record, extra)
    number = int(record["number"])
    # An issue names only itself: text in an issue mentioning other work is not a link.
    keys = (CorrelationKey.github(repo, number),)
    target = Target("issue", f"{repo}#{number}", str(record.get("title") or ""), str(record["html_url"]))
    payload = {"repo": repo, "number": number, "state": record.get("state"),
               "labels": [label.get("name") for label in record.get("labels") or [] if isinstance(label, dict)]}
    opened_id = f"github:issue:{repo}#{number}:opened"
    events = [NormalizedEvent(opened_id, parse_time(record["created_at"], "created_at"), "github",
                              "github.issue.opened", github_actor(record.get("user"), ctx), target, payload,
                              keys, tags=(repo,))]
    closed_at = optional_time(record.get("closed_at"), "closed_at")
    if closed_at is not None:
        closer = record.get("closed_by") or record.get("user")
        events.append(NormalizedEvent(f"github:issue:{repo}#{number}:closed", closed_at, "github",
                                      "github.issue.closed", github_actor(closer, ctx), target, payload, keys,
                                      parent_event_id=opened_id, tags=(repo,)))
    return events


def github_review(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "submitted_at")
    repo = _repo_of(record, extra)
    number = extra.get("pull_number")
    if number is None:
        raise InvalidRecord("review without its pull request number")
    number = int(number)
    url = str(record.get("html_url") or f"https://github.com/{repo}/pull/{number}")
    event = NormalizedEvent(
        f"github:review:{record['id']}", parse_time(record["submitted_at"], "submitted_at"), "github",
        "github.review.submitted", github_actor(record.get("user"), ctx),
        Target("review", str(record["id"]), f"Review on {repo}#{number}", url),
        {"repo": repo, "pull_number": number, "state": record.get("state")},
        (CorrelationKey.github(repo, number),), parent_event_id=f"github:pr:{repo}#{number}:opened",
        tags=(repo, str(record.get("state") or "").lower()))
    return [event]


def github_commit(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "sha")
    commit = record.get("commit") or {}
    author = commit.get("author") or {}
    repo = _repo_of(record, extra)
    message = str(commit.get("message") or "")
    keys = list(ctx.extractor.all_keys(message, repo=repo))
    pull_number = extra.get("pull_number")
    if pull_number is not None:
        keys.append(CorrelationKey.github(repo, int(pull_number)))
    sha = str(record["sha"])
    title = message.splitlines()[0] if message else sha[:7]
    actor = github_actor(record.get("author") or {"login": author.get("name")}, ctx)
    event = NormalizedEvent(
        f"github:commit:{sha}", parse_time(author.get("date"), "commit.author.date"), "github",
        "github.commit.pushed", actor,
        Target("commit", sha, title, str(record.get("html_url") or f"https://github.com/{repo}/commit/{sha}")),
        {"repo": repo, "sha": sha, "pull_number": pull_number}, unique(keys), tags=(repo,))
    return [event]


def _pull_numbers(record: Mapping[str, Any], extra: Mapping[str, Any]) -> list[int]:
    """The PRs a CI record names: its `pull_requests` list, and the PR it was fetched for."""
    numbers = {int(p["number"]) for p in record.get("pull_requests") or []
               if isinstance(p, Mapping) and p.get("number") is not None}
    if extra.get("pull_number") is not None:
        numbers.add(int(extra["pull_number"]))
    return sorted(numbers)


def github_workflow_run(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """A finished GitHub Actions run (the latest attempt); a queued or running one is not an event yet."""
    require(record, "id", "status", "created_at")
    if record["status"] != "completed":
        return []
    repo = _repo_of(record, extra)
    attempt = int(record.get("run_attempt") or 1)
    numbers = _pull_numbers(record, extra)
    name = str(record.get("name") or "workflow")
    conclusion = record.get("conclusion")
    run_id = int(record["id"])
    event = NormalizedEvent(
        f"github:workflow_run:{run_id}:{attempt}", parse_time(record.get("updated_at"), "updated_at"), "github",
        "github.workflow_run.completed", github_actor(record.get("actor"), ctx),
        Target("workflow_run", str(run_id), f"{name} #{record.get('run_number')}: {record.get('display_title') or ''}"
               .rstrip(": "), str(record.get("html_url") or f"https://github.com/{repo}/actions/runs/{run_id}")),
        {"repo": repo, "workflow": name, "run_number": record.get("run_number"), "run_attempt": attempt,
         "event": record.get("event"), "conclusion": conclusion, "head_branch": record.get("head_branch"),
         "head_sha": record.get("head_sha"), "pull_numbers": numbers},
        unique(CorrelationKey.github(repo, n) for n in numbers),
        tags=tuple(str(t) for t in (repo, conclusion) if t))
    return [event]


def github_check_run(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """A finished check run (a CI job) on a PR's head commit; one still running is not an event yet."""
    require(record, "id", "status")
    if record["status"] != "completed":
        return []
    repo = _repo_of(record, extra)
    numbers = _pull_numbers(record, extra)
    check_id = int(record["id"])
    slug = str((record.get("app") or {}).get("slug") or "checks")
    conclusion = record.get("conclusion")
    name = str(record.get("name") or check_id)
    event = NormalizedEvent(
        f"github:check_run:{check_id}", parse_time(record.get("completed_at"), "completed_at"), "github",
        "github.check_run.completed", github_actor({"login": f"{slug}[bot]", "type": "Bot"}, ctx),
        Target("check_run", str(check_id), name, str(record.get("html_url") or "")),
        {"repo": repo, "name": name, "conclusion": conclusion, "head_sha": record.get("head_sha"), "app": slug,
         "pull_numbers": numbers},
        unique(CorrelationKey.github(repo, n) for n in numbers),
        tags=tuple(str(t) for t in (repo, conclusion) if t))
    return [event]


# --- Linear --------------------------------------------------------------------------------------


def _linear_issue_parts(record: Mapping[str, Any]):
    """What every event of one Linear issue shares: identifier, key, target, priority and tags."""
    identifier = str(record["identifier"]).upper()
    team = (record.get("team") or {}).get("key")
    priority = LINEAR_PRIORITY.get(int(record.get("priority") or 0), "none")
    target = Target("issue", identifier, str(record.get("title") or ""), str(record.get("url") or ""))
    return identifier, (CorrelationKey.linear(identifier),), target, priority, tuple(t for t in (team, priority) if t)


def linear_state_change(issue: Mapping[str, Any], entry: Mapping[str, Any], ctx: NormalizeContext,
                        event_id: str) -> NormalizedEvent:
    """One move of an issue to another workflow state, in the shape of a history entry
    (`createdAt`, `actor`, `fromState`, `toState`): the poll's history and the webhook's update
    both come through here, so the two copies differ only in what their source knows."""
    require(issue, "id", "identifier")
    require(entry, "createdAt")
    identifier, keys, target, _, tags = _linear_issue_parts(issue)
    to_state = entry.get("toState")
    if not isinstance(to_state, Mapping):
        raise InvalidRecord("state change without the state it moved to")
    return NormalizedEvent(
        event_id, parse_time(entry["createdAt"], "history.createdAt"), "linear", "linear.issue.state_changed",
        linear_actor(entry.get("actor"), ctx), target,
        {"identifier": identifier, "from": (entry.get("fromState") or {}).get("name"),
         "to": to_state.get("name"), "to_type": to_state.get("type")},
        keys, parent_event_id=f"linear:issue:{issue['id']}:created", tags=tags)


def linear_issue(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "identifier", "createdAt")
    identifier, keys, target, priority, tags = _linear_issue_parts(record)
    state = record.get("state") or {}
    created_id = f"linear:issue:{record['id']}:created"
    payload = {"identifier": identifier, "state": state.get("name"), "state_type": state.get("type"),
               "priority": priority, "assignee_id": (record.get("assignee") or {}).get("id")}
    events = [NormalizedEvent(created_id, parse_time(record["createdAt"], "createdAt"), "linear",
                              "linear.issue.created", linear_actor(record.get("creator"), ctx), target, payload,
                              keys, tags=tags)]
    for entry in ((record.get("history") or {}).get("nodes") or []):
        if not entry.get("toState"):
            continue  # history rows that do not move the state are not workflow events
        require(entry, "id", "createdAt")
        events.append(linear_state_change(record, entry, ctx, f"linear:history:{entry['id']}"))
    return events


def linear_comment(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    """A comment names its issue only: an issue its text mentions is not a link (as with GitHub issues)."""
    require(record, "id", "createdAt")
    issue = record.get("issue") or {}
    if not isinstance(issue, Mapping) or not issue.get("identifier"):
        raise InvalidRecord("comment without its issue")
    identifier = str(issue["identifier"]).upper()
    body = str(record.get("body") or "")
    created = parse_time(record["createdAt"], "createdAt")
    updated = optional_time(record.get("updatedAt"), "updatedAt")
    event = NormalizedEvent(
        f"linear:comment:{record['id']}", created, "linear", "linear.comment.created",
        linear_actor(record.get("user"), ctx),
        Target("comment", str(record["id"]), f"Comment on {identifier}", str(record.get("url") or "")),
        {"identifier": identifier, "body": body[:500], "edited": updated is not None and updated > created},
        (CorrelationKey.linear(identifier),),
        parent_event_id=f"linear:issue:{issue['id']}:created" if issue.get("id") else None,
        tags=(identifier.split("-", 1)[0],))
    return [event]


# --- Charlie -------------------------------------------------------------------------------------


def charlie_activity(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "instance_id", "type", "timestamp")
    instance = str(record["instance_id"])
    keys: list[CorrelationKey] = []
    if record.get("issue_key"):
        keys.extend(ctx.extractor.linear_keys(str(record["issue_key"])))
    repo = record.get("repo")
    if repo and record.get("pr_number") is not None:
        keys.append(CorrelationKey.github(str(repo), int(record["pr_number"])))
    if record.get("correlation_id"):
        keys.append(CorrelationKey.corr(str(record["correlation_id"])))
    message = record.get("message")
    keys.extend(ctx.extractor.all_keys(message, repo=str(repo).lower() if repo else None))
    kind = str(record["type"])
    event = NormalizedEvent(
        f"charlie:activity:{record['id']}", parse_time(record["timestamp"], "timestamp"), "charlie",
        f"charlie.{kind}", charlie_actor(instance, ctx),
        Target("task", str(record.get("correlation_id") or record.get("issue_key") or record["id"]),
               str(message or kind), ""),
        {k: record.get(k) for k in ("type", "issue_key", "repo", "pr_number", "message")},
        unique(keys), correlation_id=record.get("correlation_id"), tags=(instance, kind))
    return [event]


# --- OpenClaw, cron, weather (docs/contract_sources.md) ------------------------------------------

SESSION_STATUSES = ("running", "completed", "failed", "cancelled")
CRON_EVENTS = ("started", "succeeded", "failed")


def agent_actor(agent: str, instance_id: str | None, ctx: NormalizeContext) -> Actor:
    """A Charlie instance when the agent (or the instance it names) is one the registry knows, else a bot."""
    for candidate in (instance_id, agent):
        if candidate and candidate in ctx.charlie_names:
            return charlie_actor(candidate, ctx)
    instance = ctx.charlie_github_logins.get(agent.lower())
    if instance:
        return charlie_actor(instance, ctx)
    return Actor(id=f"openclaw:{agent}", name=agent, type="bot")


def _number(record: Mapping[str, Any], name: str, kind: type[int] | type[float]) -> int | float | None:
    value = record.get(name)
    return None if value in (None, "") else kind(value)


def openclaw_session(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "agent", "status", "started_at")
    status = str(record["status"])
    if status not in SESSION_STATUSES:
        raise InvalidRecord(f"status: not one of {', '.join(SESSION_STATUSES)}: {status!r}")
    ended_at = optional_time(record.get("ended_at"), "ended_at")
    if (ended_at is None) != (status == "running"):
        raise InvalidRecord(f"a {status} session {'without' if ended_at is None else 'with'} ended_at")
    sid, agent = str(record["id"]), str(record["agent"])
    repo = str(record["repo"]).lower() if record.get("repo") else None
    keys: list[CorrelationKey] = []
    if record.get("issue_key"):
        keys.extend(ctx.extractor.linear_keys(str(record["issue_key"])))
    if repo and record.get("pr_number") is not None:
        keys.append(CorrelationKey.github(repo, int(record["pr_number"])))
    title = str(record.get("title") or "")
    keys.extend(ctx.extractor.all_keys(title, repo=repo))
    actor = agent_actor(agent, record.get("instance_id"), ctx)
    target = Target("session", sid, title or sid, "")
    payload = {"tokens_input": _number(record, "tokens_input", int),
               "tokens_output": _number(record, "tokens_output", int),
               "cost_usd": _number(record, "cost_usd", float), "model": record.get("model"),
               "status": status, "agent": agent}
    tags = tuple(str(t) for t in (agent, record.get("model")) if t)
    started_id = f"openclaw:session:{sid}:started"
    events = [NormalizedEvent(started_id, parse_time(record["started_at"], "started_at"), "openclaw",
                              "openclaw.session.started", actor, target, payload, unique(keys), tags=tags)]
    if ended_at is not None:
        events.append(NormalizedEvent(f"openclaw:session:{sid}:ended", ended_at, "openclaw",
                                      f"openclaw.session.{status}", actor, target, payload, unique(keys),
                                      parent_event_id=started_id, tags=tags))
    return events


def cron_event(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "job", "event", "run_id", "at")
    kind, run_id, job = str(record["event"]), str(record["run_id"]), str(record["job"])
    if kind not in CRON_EVENTS:
        raise InvalidRecord(f"event: not one of {', '.join(CRON_EVENTS)}: {kind!r}")
    host = str(record.get("host") or "")
    payload = {k: record.get(k) for k in ("seq", "job", "host", "run_id", "duration_ms", "exit_code", "message")}
    started_id = f"cron:run:{run_id}:started"
    event = NormalizedEvent(
        f"cron:run:{run_id}:{kind}", parse_time(record["at"], "at"), "cron", f"cron.job.{kind}",
        Actor(id=f"cron:{job}", name=job, type="bot"), Target("job", run_id, job, ""), payload,
        parent_event_id=None if kind == "started" else started_id, tags=tuple(t for t in (job, host) if t))
    return [event]


WEATHER_FIELDS = ("market", "city", "contract", "forecast_high_f", "market_implied_high_f", "edge_pct",
                  "confidence", "suggested_stake_usd", "status")


def weather_opportunity(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    require(record, "id", "detected_at")
    oid = str(record["id"])
    payload = {k: record.get(k) for k in WEATHER_FIELDS}
    title = " ".join(str(record[k]) for k in ("city", "contract") if record.get(k)) or oid
    event = NormalizedEvent(
        f"weather:opportunity:{oid}", parse_time(record["detected_at"], "detected_at"), "weather",
        "weather.opportunity.detected", Actor(id="weather:scanner", name="weather arbitrage scanner", type="bot"),
        Target("opportunity", oid, title, ""), payload,
        tags=tuple(str(record[k]) for k in ("market", "city") if record.get(k)))
    return [event]


def log_line(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    from cc_events.logs import normalize_log_record  # logs.py builds on this module

    event = normalize_log_record(record, ctx.linear_team_keys)
    # A log line mentioning issues is too weak a link to join (let alone merge) workflows: one
    # line naming ENG-1 and OPS-2 would fuse two stories. The keys stay in the payload; the event
    # names none until correlation can attach events without letting them link keys.
    return [replace(event, keys=(), payload={**event.payload, "mentions": [k.key for k in event.keys]})]


def webhook_delivery(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]):
    from cc_events.webhooks import webhook_delivery as delivery  # webhooks.py builds on this module

    return delivery(record, ctx, extra)


Normalizer = Callable[[Mapping[str, Any], NormalizeContext, Mapping[str, Any]], list[NormalizedEvent]]

NORMALIZERS: dict[tuple[str, str], Normalizer] = {
    ("logs", "lines"): log_line,
    ("github", "pull_requests"): github_pull_request,
    ("github", "issues"): github_issue,
    ("github", "reviews"): github_review,
    ("github", "commits"): github_commit,
    ("github", "workflow_runs"): github_workflow_run,
    ("github", "check_runs"): github_check_run,
    ("linear", "issues"): linear_issue,
    ("linear", "comments"): linear_comment,
    ("charlie", "activity"): charlie_activity,
    ("openclaw", "sessions"): openclaw_session,
    ("cron", "events"): cron_event,
    ("weather", "opportunities"): weather_opportunity,
    ("webhooks", "deliveries"): webhook_delivery,
}


def normalize(
    source: str,
    entity: str,
    record: Mapping[str, Any],
    ctx: NormalizeContext,
    extra: Mapping[str, Any] | None = None,
) -> list[NormalizedEvent]:
    """Normalize one source record; `InvalidRecord` says why a record cannot be used."""
    try:
        normalizer = NORMALIZERS[(source, entity)]
    except KeyError:
        raise InvalidRecord(f"no normalizer for {source}/{entity}") from None
    if not isinstance(record, Mapping):
        raise InvalidRecord(f"record is a {type(record).__name__}, not an object")
    try:
        return normalizer(record, ctx, extra or {})
    except InvalidRecord:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidRecord(f"{type(exc).__name__}: {exc}") from exc


def has_events(source: str, entity: str) -> bool:
    return (source, entity) in NORMALIZERS
