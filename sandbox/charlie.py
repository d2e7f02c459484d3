"""The Charlie bot-instance API: the registry, health, and activity pages with an opaque cursor."""

from __future__ import annotations

import base64
import json
from bisect import bisect_left
from collections import defaultdict
from datetime import datetime
from typing import Any

from sandbox.model import Activity, Instance, Org, iso

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
COMMANDS = ("pause", "resume", "restart", "cancel_task", "assign_issue")


class CharlieApi:
    def __init__(self, org: Org) -> None:
        self.org = org
        self.instances = {i.id: i for i in org.instances}
        self.activity: dict[str, list[Activity]] = defaultdict(list)
        for act in org.activities:  # sorted by timestamp already
            self.activity[act.instance.id].append(act)
        self.times = {iid: [a.timestamp for a in acts] for iid, acts in self.activity.items()}
        # Commands received, per instance, in arrival order (what the command center sent).
        self.commands: dict[str, list[dict]] = defaultdict(list)

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts == ["instances"]:
            return 200, {"instances": [_instance(i) for i in self.org.instances]}
        if len(parts) < 2 or parts[0] != "instances" or parts[1] not in self.instances:
            return 404, {"error": "not_found", "message": "No such instance"}
        inst = self.instances[parts[1]]
        if len(parts) == 2:
            return 200, _instance(inst)
        if parts[2:] == ["commands"]:
            return 200, {"commands": self.commands[inst.id]}
        if parts[2:] == ["health"]:
            return 200, self._health(inst)
        if parts[2:] == ["activity"]:
            try:
                return 200, self._activity(inst, query)
            except ValueError as exc:
                return 400, {"error": "bad_request", "message": str(exc)}
        return 404, {"error": "not_found", "message": "No such resource"}

    def command(self, path: str, body: bytes) -> tuple[int, Any]:
        """`POST /instances/{id}/commands`: accept a command for a running instance, once per id."""
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "instances" or parts[2] != "commands":
            return 404, {"error": "not_found", "message": "No such resource"}
        inst = self.instances.get(parts[1])
        if inst is None:
            return 404, {"error": "not_found", "message": "No such instance"}
        try:
            command = json.loads(body or b"{}")
        except ValueError:
            return 400, {"error": "bad_request", "message": "body is not JSON"}
        if not isinstance(command, dict) or command.get("command") not in COMMANDS or not command.get("id"):
            return 400, {"error": "bad_request", "message": f"needs an id and a command in {', '.join(COMMANDS)}"}
        if inst.health == "offline":
            return 409, {"error": "offline", "message": f"{inst.name} is offline"}
        seen = next((c for c in self.commands[inst.id] if c["id"] == command["id"]), None)
        if seen is None:
            seen = {"id": command["id"], "instance_id": inst.id, "command": command["command"],
                    "args": command.get("args") or {}, "status": "accepted"}
            self.commands[inst.id].append(seen)
        return 202, seen

    def _health(self, inst: Instance) -> dict:
        return {
            "instance_id": inst.id,
            "status": inst.health,
            "checked_at": iso(self.org.end),
            "uptime_seconds": 0 if inst.health == "offline" else self.org.end - inst.started_at,
            "queue_depth": inst.queue_depth,
            "version": inst.version,
        }

    def _activity(self, inst: Instance, query: dict[str, str]) -> dict:
        """Events with since <= timestamp < until, oldest first; the cursor is where the next page starts."""
        acts, times = self.activity.get(inst.id, []), self.times.get(inst.id, [])
        limit = int(query.get("limit") or DEFAULT_LIMIT)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        lo = bisect_left(times, _time(query["since"])) if query.get("since") else 0
        hi = bisect_left(times, _time(query["until"])) if query.get("until") else len(acts)
        if cursor := query.get("cursor"):
            lo = max(lo, _decode(cursor, inst.id))
        page = acts[lo : min(hi, lo + limit)]
        more = lo + limit < hi
        return {
            "events": [_activity(a) for a in page],
            "next_cursor": _encode(inst.id, lo + limit) if more else None,
        }


def _time(value: str) -> int:
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {value}") from exc


def _encode(instance_id: str, position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([instance_id, position]).encode()).decode().rstrip("=")


def _decode(cursor: str, instance_id: str) -> int:
    try:
        owner, position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
    if owner != instance_id or not isinstance(position, int):
        raise ValueError("invalid cursor")
    return position


def _instance(inst: Instance) -> dict:
    return {
        "id": inst.id,
        "name": inst.name,
        "type": inst.type,
        "status": inst.status,
        "github_login": inst.github.login,
        "linear_user_id": inst.linear.id,
        "version": inst.version,
        "created_at": iso(inst.created_at),
    }


def _activity(act: Activity) -> dict:
    out: dict[str, Any] = {
        "id": act.id,
        "instance_id": act.instance.id,
        "type": act.type,
        "timestamp": iso(act.timestamp),
    }
    if act.issue:
        out["issue_key"] = act.issue.identifier
    if act.pull:
        out["repo"] = act.pull.repo.full_name
        out["pr_number"] = act.pull.number
    if act.correlation_id:
        out["correlation_id"] = act.correlation_id
    out["message"] = act.message
    return out
