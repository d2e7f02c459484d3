"""The normalized event (the seeds' `NormalizedEvent`) and its parts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from cc_events.keys import CorrelationKey

ActorType = Literal["charlie", "human", "bot"]


class InvalidRecord(ValueError):
    """A source record that breaks its schema; the message is the dead-letter reason."""


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    name: str
    type: ActorType
    instance: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    type: str  # issue | pr | commit | review | comment | task | instance
    id: str
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    stage: str


@dataclass(frozen=True, slots=True)
class NormalizedEvent:
    id: str
    timestamp: datetime  # naive UTC
    source: str
    type: str
    actor: Actor
    target: Target
    payload: dict[str, Any]
    keys: tuple[CorrelationKey, ...] = ()
    workflow: Workflow | None = None
    correlation_id: str | None = None
    parent_event_id: str | None = None
    tags: tuple[str, ...] = field(default=())

    def to_row(self, as_text: bool = True) -> dict[str, Any]:
        """The flat row of `lake/normalized/events` (docs/contract.md, section 4). `as_text=False`
        keeps `tags` and `payload` as a list and a dict, as the sidecar's live store holds them
        (encoding them there only to be replaced cost ~5 µs a webhook)."""
        return {
            "event_id": self.id,
            "event_at": self.timestamp,
            "source": self.source,
            "event_type": self.type,
            "actor_id": self.actor.id,
            "actor_name": self.actor.name,
            "actor_type": self.actor.type,
            "actor_instance": self.actor.instance,
            "target_type": self.target.type,
            "target_id": self.target.id,
            "target_title": self.target.title,
            "target_url": self.target.url,
            "correlation_id": self.correlation_id,
            "parent_event_id": self.parent_event_id,
            "tags": json.dumps(list(self.tags)) if as_text else list(self.tags),
            "payload": json.dumps(self.payload, separators=(",", ":"), sort_keys=True, default=str) if as_text
            else dict(self.payload),
        }

    def key_rows(self) -> list[dict[str, Any]]:
        return [
            {"event_id": self.id, "correlation_key": k.key, "key_type": k.kind, "key_priority": k.priority}
            for k in self.keys
        ]

    def to_message(self) -> dict[str, Any]:
        """The seeds' JSON shape, for APIs and WebSocket clients."""
        return {
            "id": self.id,
            "timestamp": self.timestamp.isoformat() + "Z",
            "source": self.source,
            "type": self.type,
            "actor": {"id": self.actor.id, "name": self.actor.name, "type": self.actor.type,
                      "instance": self.actor.instance},
            "target": {"type": self.target.type, "id": self.target.id, "title": self.target.title,
                       "url": self.target.url},
            "workflow": None if self.workflow is None else
            {"id": self.workflow.id, "name": self.workflow.name, "stage": self.workflow.stage},
            "payload": self.payload,
            "metadata": {"correlationId": self.correlation_id, "parentEventId": self.parent_event_id,
                         "tags": list(self.tags), "correlationKeys": [k.key for k in self.keys]},
        }
