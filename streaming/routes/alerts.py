"""/api/alerts: alerts as records (cc_alerts/), newest first, filtered and paged; acknowledging
one; the rules in force and the notification channels' state."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from cc_alerts.rules import all_rules
from streaming.alert_schemas import AlertList, AlertOut, AlertRules, AlertSeverity, AlertState
from streaming.deps import User
from streaming.params import ISO_TIME, parse_time
from streaming.responses import no_store

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


# A page's last alert's sort key, `<last_seen in microseconds since 1970>:<alert id>`: every text of
# this pattern is a place in the order (as /api/workflows' cursor), so none the document allows is refused.
CURSOR_PATTERN = r"^[0-9]{1,17}:[\s\S]*$"
_EPOCH = datetime(1970, 1, 1)


def _encode(alert) -> str:
    micros = (alert.last_seen - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}:{alert.id}"


def _decode(cursor: str) -> tuple[datetime, str]:
    if not re.match(CURSOR_PATTERN, cursor):
        raise HTTPException(400, "`cursor` is not a `nextCursor` of /api/alerts: pass one back unchanged")
    micros, _, alert_id = cursor.partition(":")
    return _EPOCH + timedelta(microseconds=int(micros)), alert_id


def _sidecar(request: Request):
    return request.app.state.sidecar


@router.get("", response_model=AlertList, summary="Alerts, the most recently seen first",
            responses={400: {"description": "A bad `cursor` or `since`"}})
def list_alerts(request: Request,
                state: Annotated[list[AlertState] | None, Query(description="open, acknowledged, resolved")] = None,
                severity: Annotated[list[AlertSeverity] | None, Query()] = None,
                rule: Annotated[str | None, Query(max_length=100)] = None,
                subject: Annotated[str | None, Query(max_length=300,
                                                     description="`source:github`, or a name alone")] = None,
                since: Annotated[str | None, Query(description="Seen at or after this ISO time",
                                                   json_schema_extra=ISO_TIME)] = None,
                cursor: Annotated[str | None, Query(max_length=300, pattern=CURSOR_PATTERN)] = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    return no_store(read_alerts(_sidecar(request).alerts, state, severity, rule, subject, since, cursor, limit))


def read_alerts(store, state: list[str] | None, severity: list[str] | None, rule: str | None, subject: str | None,
                since: str | None, cursor: str | None, limit: int) -> AlertList:
    """A page of alerts as `GET /api/alerts` answers it (GraphQL's `alerts` too)."""
    after = _decode(cursor) if cursor is not None else None
    since_at = parse_time("since", since).replace(tzinfo=None) if since is not None else None
    rows = store.list(state=state, severity=severity, rule=rule, subject=subject, since=since_at, before=after,
                      limit=limit + 1)
    page = rows[:limit]
    next_cursor = _encode(page[-1]) if len(rows) > limit else None
    return AlertList(alerts=[AlertOut(**a.to_json()) for a in page], next_cursor=next_cursor, counts=store.counts())


@router.get("/rules", response_model=AlertRules, summary="The rules in force, and the notification channels")
def alert_rules(request: Request) -> Response:
    sidecar = _sidecar(request)
    overrides = sidecar.settings.alert_thresholds or {}
    evaluations = sidecar.monitor.detail() if sidecar.monitor is not None else {}
    rules = [{"name": r.name, "checks": r.checks, "cadenceSeconds": r.cadence_s, "severity": r.severity,
              "thresholds": {k: float(overrides.get(f"{r.name}.{k}", v)) for k, v in r.thresholds.items()},
              "action": r.action, "runsIn": r.runs_in, "lastEvaluation": evaluations.get(r.name)}
             for r in all_rules().values()]
    return no_store(AlertRules(rules=rules, channels=sidecar.notifier.status() if sidecar.notifier else []))


@router.get("/{alert_id}", response_model=AlertOut, summary="One alert",
            responses={404: {"description": "No such alert"}})
def get_alert(request: Request, alert_id: str) -> Response:
    alert = _sidecar(request).alerts.get(alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return no_store(AlertOut(**alert.to_json()))


@router.post("/{alert_id}/ack", response_model=AlertOut, summary="Acknowledge an open alert",
             responses={404: {"description": "No such alert"},
                        409: {"description": "The alert is resolved: there is nothing to acknowledge"}})
def acknowledge(request: Request, alert_id: str, user: User) -> Response:
    change = _sidecar(request).alerts.acknowledge(alert_id, user.sub)
    if change is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    if change.alert.state == "resolved":
        raise HTTPException(409, f"alert {alert_id} is resolved")
    return no_store(AlertOut(**change.alert.to_json()))
