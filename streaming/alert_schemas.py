"""The REST API's models of the `alerts` tag (`streaming/routes/alerts.py`), beside `schemas.py`'s
for the other tags: the same conventions (camelCase aliases, dumped `by_alias`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from streaming.schemas import ApiModel

# --- /api/alerts ----------------------------------------------------------------------------------

AlertState = Literal["open", "acknowledged", "resolved"]
AlertSeverity = Literal["info", "warning", "critical"]


class AlertSubject(ApiModel):
    kind: str = Field(description="source, asset, host, instance, job, sensor, test, workflow or rule")
    name: str
    key: str = Field(description="`<kind>:<name>`: with the rule, what the alert is deduplicated by")


class AlertOut(ApiModel):
    id: str
    rule: str
    severity: AlertSeverity
    subject: AlertSubject
    message: str
    state: AlertState
    count: int = Field(description="How many times the rule found this while the alert was live")
    first_seen: str = Field(alias="firstSeen")
    last_seen: str = Field(alias="lastSeen")
    links: dict[str, str] = Field(description="Where to look: the Dagster run or asset, the workflow, the source")
    acknowledged_by: str | None = Field(alias="acknowledgedBy")
    acknowledged_at: str | None = Field(alias="acknowledgedAt")
    resolved_at: str | None = Field(alias="resolvedAt")
    last_change: Literal["opened", "updated", "escalated", "acknowledged", "resolved"] = Field(alias="lastChange")


class AlertCounts(ApiModel):
    open: dict[str, int] = Field(description="Open alerts by severity")
    acknowledged: dict[str, int] = Field(description="Acknowledged (still live) alerts by severity")


class AlertList(ApiModel):
    alerts: list[AlertOut]
    next_cursor: str | None = Field(alias="nextCursor", description="Pass as `cursor` for the next page")
    counts: AlertCounts


class AlertRuleOut(ApiModel):
    name: str
    checks: str
    cadence_seconds: float | None = Field(alias="cadenceSeconds", description="None: raised when it happens")
    severity: AlertSeverity
    thresholds: dict[str, float] = Field(description="In force: the defaults with CC_ALERT_THRESHOLDS applied")
    action: str
    runs_in: Literal["sidecar", "dagster"] = Field(alias="runsIn")
    last_evaluation: dict[str, Any] | None = Field(alias="lastEvaluation", description="This replica's last run of it")


class AlertChannelOut(ApiModel):
    channel: str = Field(description="The URL's scheme and a hash: the URL itself may hold a secret")
    min_severity: AlertSeverity = Field(alias="minSeverity")
    sent: int
    last_sent_at: str | None = Field(alias="lastSentAt")
    failed_attempts: int = Field(alias="failedAttempts")
    last_error: str | None = Field(alias="lastError")


class AlertRules(ApiModel):
    rules: list[AlertRuleOut]
    channels: list[AlertChannelOut]
