"""The OpenClaw agent-session API: sessions by `updated_at`, keyset cursor, one session by id."""

from __future__ import annotations

import base64
import json
from bisect import bisect_left, bisect_right
from typing import Any

from sandbox.model import AgentWorld, Session, epoch, iso

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


class OpenClawApi:
    def __init__(self, agents: AgentWorld) -> None:
        self.sessions = agents.sessions  # by (updated_at, id)
        self.order = [(s.updated_at, s.id) for s in self.sessions]
        self.by_id = {s.id: s for s in self.sessions}

    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:2] != ["v1", "sessions"] or len(parts) > 3:
            return 404, {"error": "not_found", "message": "No such resource"}
        if len(parts) == 3:
            session = self.by_id.get(parts[2])
            if session is None:
                return 404, {"error": "not_found", "message": "No such session"}
            return 200, session_record(session)
        try:
            return 200, self._list(query)
        except ValueError as exc:
            return 400, {"error": "bad_request", "message": str(exc)}

    def _list(self, query: dict[str, str]) -> dict:
        """Sessions with updated_at >= updated_since, oldest update first; the cursor names the last one sent."""
        limit = int(query.get("limit") or DEFAULT_LIMIT)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        lo = bisect_left(self.order, (epoch(query["updated_since"]), "")) if query.get("updated_since") else 0
        if cursor := query.get("cursor"):
            lo = max(lo, bisect_right(self.order, _decode(cursor)))
        page = self.sessions[lo : lo + limit]
        more = lo + limit < len(self.sessions)
        return {
            "sessions": [session_record(s) for s in page],
            "next_cursor": _encode(self.order[lo + limit - 1]) if more else None,
        }


def _encode(position: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, str]:
    try:
        updated, sid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as exc:
        raise ValueError("invalid cursor") from exc
    if not isinstance(updated, int) or not isinstance(sid, str):
        raise ValueError("invalid cursor")
    return updated, sid


def session_record(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "agent": s.agent,
        "instance_id": s.instance.id if s.instance else None,
        "status": s.status,
        "model": s.model,
        "started_at": iso(s.started_at),
        "ended_at": iso(s.ended_at),
        "updated_at": iso(s.updated_at),
        "tokens_input": s.tokens_input,
        "tokens_output": s.tokens_output,
        "cost_usd": s.cost_usd,
        "issue_key": s.issue.identifier if s.issue else None,
        "repo": s.pull.repo.full_name if s.pull else None,
        "pr_number": s.pull.number if s.pull else None,
        "title": s.title,
    }
