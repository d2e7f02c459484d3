"""The REST API's request and response models (pydantic), by tag; the document `/openapi.json` is made of them.

Field names are Python's; the wire names are the seeds' (camelCase aliases), so every model is
dumped `by_alias`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SOURCES = ("github", "linear", "charlie", "openclaw", "cron", "weather", "logs")
Source = Literal["github", "linear", "charlie", "openclaw", "cron", "weather", "logs"]
WorkflowStatus = Literal["pending", "active", "completed", "canceled", "failed"]
WidgetType = Literal["overview", "system_status", "workflow_status", "event_volume", "system_metrics",
                     "charlie_workload", "recent_events", "workflows"]
Tier = Literal["hot", "warm", "history"]


class ApiModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)



# --- /dashboard/overview -----------------------------------------------------------------------------

class WorkflowTotals(ApiModel):
    total: int
    pending: int
    active: int
    completed: int
    canceled: int
    failed: int
    completed_today: int = Field(alias="completedToday")
    avg_cycle_time_hours: float | None = Field(alias="avgCycleTimeHours")
    median_cycle_time_hours: float | None = Field(alias="medianCycleTimeHours")


class EventTotals(ApiModel):
    total: int
    last_24h: int = Field(alias="last24h")


class InstanceTotals(ApiModel):
    total: int
    healthy: int


class Sessions(ApiModel):
    active: int
    total_cost: float
    highest_cost: float


class CronJobs(ApiModel):
    total: int
    healthy: int
    failed: int


class TradingBot(ApiModel):
    status: str
    daily_pnl: float


class SystemStatus(ApiModel):
    """The payload of the seeds' `system.status.update` message, keys as the seeds spell them."""

    sessions: Sessions
    cron_jobs: CronJobs
    trading_bot: TradingBot


class LiveTotals(ApiModel):
    events: int = Field(description="Events seen since the last build (already counted above).")
    new_workflows: int = Field(alias="newWorkflows")
    latest_event_at: str | None = Field(alias="latestEventAt")


class Overview(ApiModel):
    as_of: str | None = Field(alias="asOf", description="The moment the marts describe (the last build).")
    generated_at: str = Field(alias="generatedAt")
    workflows: WorkflowTotals
    events: EventTotals
    instances: InstanceTotals
    system_status: SystemStatus | None = Field(alias="systemStatus")
    live: LiveTotals


# --- /dashboard/metrics ------------------------------------------------------------------------------

class TierSpan(ApiModel):
    tier: Tier = Field(description="hot: the hot tier (Redis or the embedded hot folder) merged with the events "
                                   "this sidecar has seen; warm: the marts; history: the cold and archive tiers.")
    start: str = Field(alias="from")
    end: str = Field(alias="to")


class MetricsQuery(ApiModel):
    time_range: str = Field(alias="timeRange")
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    grain: Literal["minute", "hour", "day"]
    filters: dict[str, list[str]]
    filters_not_applied: dict[str, list[str]] = Field(
        alias="filtersNotApplied",
        description="By block (`events`, `workflows`, `system`), the given filters it has no such field for, "
                    "and so was not narrowed by: `host` for events and workflows, the others for `system`. "
                    "Blocks every filter narrowed are not listed.")
    tiers: list[TierSpan] = Field(description="Which tier counted the events of which part of the window.")


class CountBy(ApiModel):
    key: str
    count: int


class EventBucket(ApiModel):
    start: str
    count: int


class EventMetrics(ApiModel):
    total: int
    live: int = Field(description="Of the total, events this sidecar has seen that the tier answering their "
                                  "hour does not have yet (since the last build, or the hot tier's last refresh).")
    by_tier: list[CountBy] = Field(alias="byTier", description="Of the total less `live`, events per tier read.")
    by_source: list[CountBy] = Field(alias="bySource")
    by_type: list[CountBy] = Field(alias="byType")
    by_actor_type: list[CountBy] = Field(alias="byActorType")
    series: list[EventBucket]


class WorkflowMetrics(ApiModel):
    """Workflows started and completed in the window; with `source`, `eventType` or `actorType`
    filters, only those with an event (at any time) that the filters match."""

    started: int
    completed: int


class SystemBucket(ApiModel):
    start: str
    hosts: int
    avg_cpu_percent: float | None = Field(alias="avgCpuPercent")
    max_cpu_percent: float | None = Field(alias="maxCpuPercent")
    avg_memory_percent: float | None = Field(alias="avgMemoryPercent")
    max_disk_percent: float | None = Field(alias="maxDiskPercent")


class SessionBucket(ApiModel):
    start: str
    sessions: int
    failed: int
    cost_usd: float = Field(alias="costUsd")


class SessionMetrics(ApiModel):
    """Agent sessions started in the window (fct_agent_sessions_1h, as of the last build), per
    bucket of the window's grain: how many, how many failed, and what they cost."""

    sessions: int
    cost_usd: float = Field(alias="costUsd")
    by_agent: list[CountBy] = Field(alias="byAgent", description="Sessions per agent, most first.")
    series: list[SessionBucket]


class CronBucket(ApiModel):
    start: str
    succeeded: int
    failed: int
    running: int


class CronMetrics(ApiModel):
    """Cron runs in the window (fct_cron_runs, by `run_at`, as of the last build), per bucket."""

    runs: int
    failed: int
    series: list[CronBucket]


class Metrics(ApiModel):
    query: MetricsQuery
    generated_at: str = Field(alias="generatedAt")
    events: EventMetrics
    workflows: WorkflowMetrics
    system: list[SystemBucket]
    sessions: SessionMetrics
    cron: CronMetrics


# --- /api/workflows ----------------------------------------------------------------------------------

class Assignee(ApiModel):
    id: str | None
    name: str | None
    type: str | None


class GitHubRef(ApiModel):
    repo: str | None
    pr_number: int | None = Field(alias="prNumber")


class CiStatus(ApiModel):
    last_conclusion: str | None = Field(alias="lastConclusion", description="The latest finished run's conclusion.")
    last_completed_at: str | None = Field(alias="lastCompletedAt")
    run_count: int = Field(alias="runCount")
    failed_run_count: int = Field(alias="failedRunCount")


class WorkflowOut(ApiModel):
    """A row of `fct_workflows`; for a workflow with events since the last build, that model's SQL
    run by the sidecar over the build's rows and the new events (`streaming/state/`)."""

    id: str
    name: str
    status: str
    status_source: str | None = Field(None, alias="statusSource",
                                      description="Which system decided the status: linear, github_pr, "
                                                  "github_issue, charlie or events.")
    assignee: Assignee | None
    charlie_instance_id: str | None = Field(alias="charlieInstanceId")
    priority: str | None
    linear_issue_key: str | None = Field(alias="linearIssueKey")
    linear_team_key: str | None = Field(None, alias="linearTeamKey")
    github: GitHubRef | None
    pr_count: int = Field(0, alias="prCount")
    sources: list[str]
    actors: list[str] = []
    actor_count: int = Field(0, alias="actorCount")
    event_count: int = Field(alias="eventCount", description="Events in the marts plus live ones.")
    live_event_count: int = Field(alias="liveEventCount", description="Of which arrived since the last build.")
    first_event_at: str | None = Field(alias="firstEventAt")
    last_event_at: str | None = Field(alias="lastEventAt")
    completed_at: str | None = Field(alias="completedAt")
    cycle_time_hours: float | None = Field(alias="cycleTimeHours")
    session_count: int = Field(0, alias="sessionCount")
    session_cost_usd: float = Field(0, alias="sessionCostUsd")
    ci: CiStatus | None = None
    is_live: bool = Field(alias="isLive", description="Has events since the last build (its state is computed live).")


class WorkflowPage(ApiModel):
    workflows: list[WorkflowOut]
    total: int = Field(description="Every workflow the filters match, not only those after the cursor.")
    limit: int
    offset: int | None = Field(description="The `offset` asked for; null when the page was read by `cursor`.")
    has_more: bool = Field(alias="hasMore")
    next_cursor: str | None = Field(alias="nextCursor",
                                    description="Pass as `cursor` for the next page; null on the last one.")


# --- /api/events -------------------------------------------------------------------------------------

class Actor(ApiModel):
    id: str | None
    name: str | None
    type: str | None
    instance: str | None


class Target(ApiModel):
    type: str | None
    id: str | None
    title: str | None
    url: str | None


class WorkflowRef(ApiModel):
    id: str


class EventMetadata(ApiModel):
    correlation_id: str | None = Field(alias="correlationId")
    parent_event_id: str | None = Field(alias="parentEventId")
    tags: list[str]
    correlation_keys: list[str] = Field(alias="correlationKeys")


class EventOut(ApiModel):
    """The seeds' NormalizedEvent."""

    id: str
    timestamp: str
    source: str
    type: str
    actor: Actor
    target: Target
    workflow: WorkflowRef | None
    payload: Any
    metadata: EventMetadata
    is_live: bool = Field(alias="isLive", description="Seen since the last build, not yet in the marts.")


class EventPage(ApiModel):
    events: list[EventOut]
    next_since: str | None = Field(alias="nextSince", description="Pass as `since` to read on from the last event.")


# --- /api/charlie ------------------------------------------------------------------------------------

class Health(ApiModel):
    status: str | None
    is_healthy: bool = Field(alias="isHealthy")
    queue_depth: int | None = Field(alias="queueDepth")
    uptime_seconds: int | None = Field(alias="uptimeSeconds")
    checked_at: str | None = Field(alias="checkedAt")


class Workload(ApiModel):
    active_workflows: int = Field(alias="activeWorkflows")
    completed_today: int = Field(alias="completedToday")
    completed_total: int = Field(alias="completedTotal")
    events_last_24h: int = Field(alias="eventsLast24h")


class InstanceOut(ApiModel):
    id: str
    name: str | None
    type: str | None
    status: str | None
    github_login: str | None = Field(alias="githubLogin")
    version: str | None
    health: Health
    workload: Workload
    event_count: int = Field(alias="eventCount")
    live_event_count: int = Field(alias="liveEventCount")
    last_event_at: str | None = Field(alias="lastEventAt")


class InstanceList(ApiModel):
    instances: list[InstanceOut]


_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    instance_id: str = Field(alias="instanceId", pattern=_ID)


class PauseCommand(_Command):
    command: Literal["pause"]
    reason: str | None = Field(default=None, max_length=500)


class ResumeCommand(_Command):
    command: Literal["resume"]


class RestartCommand(_Command):
    command: Literal["restart"]


class CancelTaskCommand(_Command):
    command: Literal["cancel_task"]
    task_id: str = Field(alias="taskId", pattern=_ID)


class AssignIssueCommand(_Command):
    command: Literal["assign_issue"]
    issue_key: str = Field(alias="issueKey", pattern=r"^[A-Z][A-Z0-9]{0,9}-[0-9]{1,7}$")


CharlieCommand = Annotated[PauseCommand | ResumeCommand | RestartCommand | CancelTaskCommand | AssignIssueCommand,
                           Field(discriminator="command")]


class CommandResult(ApiModel):
    command_id: str = Field(alias="commandId")
    instance_id: str = Field(alias="instanceId")
    command: str
    status: Literal["accepted", "rejected", "failed"]
    http_status: int | None = Field(alias="httpStatus", description="The instance API's answer.")
    result: Any = Field(description="The instance API's JSON body.")
    error: str | None = None


class CommandLogEntry(ApiModel):
    id: str
    instance_id: str = Field(alias="instanceId")
    command: str
    args: dict[str, Any]
    requested_by: str = Field(alias="requestedBy")
    requested_at: str = Field(alias="requestedAt")
    status: str
    http_status: int | None = Field(alias="httpStatus")
    response: Any
    error: str | None
    finished_at: str | None = Field(alias="finishedAt")


class CommandLog(ApiModel):
    commands: list[CommandLogEntry]


# --- dashboards and widgets --------------------------------------------------------------------------

WIDGET_CONFIG = ("What the widget's data reads, by type: `event_volume` and `system_metrics` take "
                 "`timeRange` (1h, 24h, 7d, 30d, custom; `from` and `to`, ISO 8601, with custom only, at most "
                 "366 days apart) and `filters` (as /dashboard/metrics takes them); `recent_events` takes "
                 "`limit` (an integer) and `workflow` (a workflow id); `workflows` takes `limit`, `status`, "
                 "`assignee` and `provider` (strings). A config its type cannot read is a 422; other keys are kept.")


class WidgetIn(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: WidgetType
    title: str = Field(min_length=1, max_length=255)
    config: dict[str, Any] = Field(default_factory=dict, description=WIDGET_CONFIG)
    position: dict[str, Any] = Field(default_factory=dict)


class WidgetUpdate(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    title: str | None = Field(default=None, min_length=1, max_length=255)
    config: dict[str, Any] | None = Field(default=None, description=WIDGET_CONFIG)
    position: dict[str, Any] | None = None


class WidgetOut(ApiModel):
    id: str
    dashboard_id: str = Field(alias="dashboardId")
    type: str
    title: str
    config: dict[str, Any]
    position: dict[str, Any]
    created_at: str = Field(alias="createdAt")


class DashboardIn(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, max_length=255)
    config: dict[str, Any] = Field(default_factory=dict)
    widgets: list[WidgetIn] = Field(default_factory=list, max_length=100)


class DashboardUpdate(ApiModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    config: dict[str, Any] | None = None


class DashboardSummary(ApiModel):
    id: str
    name: str
    config: dict[str, Any]
    owner_id: str = Field(alias="ownerId")
    widget_count: int = Field(alias="widgetCount")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")


class DashboardOut(ApiModel):
    id: str
    name: str
    config: dict[str, Any]
    owner_id: str = Field(alias="ownerId")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")
    widgets: list[WidgetOut]


class DashboardList(ApiModel):
    dashboards: list[DashboardSummary]


class WidgetData(ApiModel):
    widget_id: str = Field(alias="widgetId")
    type: str
    title: str
    generated_at: str = Field(alias="generatedAt")
    data: Any

