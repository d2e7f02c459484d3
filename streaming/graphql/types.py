"""GraphQL object types made from the REST API's response models (`streaming/schemas.py`,
`streaming/alert_schemas.py`): one model, two APIs.

A field's GraphQL name is its REST wire name (the model's alias, else its name: `lastEventAt`,
`cron_jobs`), its description the model's, so a query that selects a route's fields answers the
JSON the route answers. Resolvers return the models themselves (the REST reads' results, cached
alike): a field is read off the model by its Python name, nothing is copied.
"""

from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Any

import strawberry
from pydantic import BaseModel
from strawberry.scalars import JSON

_MADE: dict[type[BaseModel], type] = {}
# GraphQL names for models whose Python name says "as the API shows it".
NAMES = {"WorkflowOut": "Workflow", "EventOut": "Event", "InstanceOut": "CharlieInstance", "AlertOut": "Alert",
         "InstanceList": "CharlieInstanceList", "Health": "CharlieHealth", "Workload": "CharlieWorkload",
         "CommandLogEntry": "CharlieCommand", "CommandLog": "CharlieCommandLog", "AlertRuleOut": "AlertRule",
         "AlertChannelOut": "AlertChannel"}


def _graphql_annotation(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = _graphql_annotation(args[0]) if len(args) == 1 else JSON
        return inner | None if type(None) in typing.get_args(annotation) else inner
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0])  # the values' type: a Literal of strings is a String
    if origin is list:
        return list[_graphql_annotation(typing.get_args(annotation)[0])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return graphql_type(annotation)
    if annotation in (str, int, float, bool):
        return annotation
    return JSON  # Any, dict[...]: the JSON as REST sends it


def graphql_type(model: type[BaseModel], extra: dict[str, Any] | None = None) -> type:
    """The GraphQL type of `model` (made once), with `extra` fields (resolvers) beside its own."""
    made = _MADE.get(model)
    if made is not None:
        if extra:
            raise ValueError(f"{model.__name__}'s GraphQL type was made before its extra fields were given")
        return made
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"__module__": __name__}
    for name, info in model.model_fields.items():
        annotations[name] = _graphql_annotation(info.annotation)
        namespace[name] = strawberry.field(name=info.alias or name, description=info.description)
    namespace.update(extra or {})
    namespace["__annotations__"] = annotations
    doc = model.__dict__.get("__doc__")
    cls = type(NAMES.get(model.__name__, model.__name__), (), namespace)
    made = _MADE[model] = strawberry.type(cls, description=" ".join(doc.split()) if doc else None)
    return made


# Arguments that REST takes as one of a set of names.
WorkflowStatus = strawberry.enum(Enum("WorkflowStatus", {s: s for s in ("pending", "active", "completed",
                                                                         "canceled", "failed")}))
Source = strawberry.enum(Enum("Source", {s: s for s in ("github", "linear", "charlie", "openclaw", "cron",
                                                        "weather", "logs")}))
TimeRange = strawberry.enum(Enum("TimeRange", {"H1": "1h", "H24": "24h", "D7": "7d", "D30": "30d",
                                               "CUSTOM": "custom"}),
                            description="`/dashboard/metrics`' `timeRange`: 1h, 24h, 7d, 30d, or custom (`from`, `to`)")
AlertState = strawberry.enum(Enum("AlertState", {s: s for s in ("open", "acknowledged", "resolved")}))
AlertSeverity = strawberry.enum(Enum("AlertSeverity", {s: s for s in ("info", "warning", "critical")}))
ReportKind = strawberry.enum(Enum("ReportKind", {s: s for s in ("daily", "weekly", "monthly")}))
