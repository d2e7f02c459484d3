"""What each REST route needs of a token, in one table: a read needs a room the token may join (the
same `rooms` claim `/ws` and Socket.IO apply), a change needs a scope (`scopes` claim).

A REST read is granted by the room that pushes the same data, so a token reads over REST exactly
what it could watch live: `/dashboard/overview` by `dashboard:overview`, `/dashboard/metrics` by
`metrics:realtime`, `/api/events` by `events:all` (or, for `?workflow=X`, by `workflows:X`). A list
is granted only to a token that may read all of it: `/api/workflows` needs `workflows:*` or
`workflows:all` (the room of every workflow's updates; or no `rooms` claim), and a token limited
to some workflows gets 403 there rather than a list quietly cut to fit (whose totals and pages
would still say how many others exist). A route missing from the table is refused to every token:
a new route has to say what grants it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streaming import rooms
from streaming.auth import Principal


@dataclass(frozen=True)
class Need:
    """Any one of `rooms` grants it (a trailing `*`: every room of that family), or the `scope`."""

    rooms: tuple[str, ...] = ()
    scope: str | None = None


def read(*rooms: str, or_scope: str | None = None) -> Need:
    return Need(rooms, or_scope)


def change(scope: str) -> Need:
    return Need((), scope)


def _events(params: Mapping[str, list[str]]) -> Need:
    workflows = {w for w in params.get("workflow", []) if w}
    if len(workflows) == 1:
        return read("events:all", f"workflows:{workflows.pop()}")
    return read("events:all")


DASHBOARD = "dashboard:overview"
# Every workflow's state, listed (`/api/workflows`) or pushed (the room `workflows:all`): one grant.
EVERY_WORKFLOW = read("workflows:*", rooms.ALL_WORKFLOWS)
Rule = Need | Callable[[Mapping[str, list[str]]], Need]

# (method, path as the app declares it) -> what grants it.
ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/dashboard/overview"): read(DASHBOARD),
    ("GET", "/dashboard/metrics"): read("metrics:realtime"),
    ("GET", "/api/workflows"): EVERY_WORKFLOW,
    ("GET", "/api/events"): _events,
    # The Charlie fleet is what the overview counts; the command log is also its senders'.
    ("GET", "/api/charlie/instances"): read(DASHBOARD),
    ("GET", "/api/charlie/commands"): read(DASHBOARD, or_scope="commands"),
    ("POST", "/api/charlie/command"): change("commands"),
    # Alerts are what `alerts:all` pushes; acknowledging one is a change of its own.
    ("GET", "/api/alerts"): read("alerts:all"),
    ("GET", "/api/alerts/rules"): read("alerts:all"),
    ("GET", "/api/alerts/{alert_id}"): read("alerts:all"),
    ("POST", "/api/alerts/{alert_id}/ack"): change("alerts"),
    # Dashboards are the dashboard page's layout; a widget's data also needs what the widget shows
    # (`widget_need`, checked by the route once it has read the widget).
    ("GET", "/dashboard/dashboards"): read(DASHBOARD),
    ("GET", "/dashboard/dashboards/{dashboard_id}"): read(DASHBOARD),
    ("GET", "/dashboard/widgets/{widget_id}/data"): read(DASHBOARD),
    ("POST", "/dashboard/dashboards"): change("dashboards"),
    ("PUT", "/dashboard/dashboards/{dashboard_id}"): change("dashboards"),
    ("DELETE", "/dashboard/dashboards/{dashboard_id}"): change("dashboards"),
    ("POST", "/dashboard/dashboards/{dashboard_id}/widgets"): change("dashboards"),
    ("PUT", "/dashboard/widgets/{widget_id}"): change("dashboards"),
    ("DELETE", "/dashboard/widgets/{widget_id}"): change("dashboards"),
}


def widget_need(widget_type: str, config: dict[str, Any]) -> Need:
    if widget_type in ("event_volume", "system_metrics"):
        return read("metrics:realtime")
    if widget_type == "recent_events":
        workflow = config.get("workflow")
        return read("events:all", f"workflows:{workflow}") if workflow else read("events:all")
    if widget_type == "workflows":
        return EVERY_WORKFLOW
    return read(DASHBOARD)  # overview, system_status, workflow_status, charlie_workload


def need_of(method: str, path: str, params: Mapping[str, list[str]]) -> Need | None:
    rule = ROUTES.get(("GET" if method == "HEAD" else method, path))
    return rule(params) if callable(rule) else rule


def _may_read(principal: Principal, room: str) -> bool:
    return principal.may_join_all(room[:-1]) if room.endswith("*") else principal.may_join(room)


def refusal(principal: Principal, need: Need | None) -> str | None:
    """Why `principal` may not do what `need` says (None: it may), naming what it lacks."""
    if need is None:
        return "no scope or room grants this route: refused to every token"
    if need.scope is not None and principal.may(need.scope):
        return None
    if any(_may_read(principal, room) for room in need.rooms):
        return None
    wanted = []
    if need.rooms:
        wanted.append("its `rooms` claim to grant " + " or ".join(f"`{r}`" for r in need.rooms))
    if need.scope is not None:
        wanted.append(f"the `{need.scope}` scope in its `scopes` claim")
    return "this token may not do this: it needs " + ", or ".join(wanted)
