"""What every normalizer uses: reading times and required fields, and the Charlie actor.

`parse_time` is also the lake's one reading of a source's time (the raw tables' `time` columns,
the clients' cursors, the sidecar's metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.model import Actor, InvalidRecord, NormalizedEvent

# A source record, the context, and what the fetch knew besides (the repo, the PR number) → its events.
Normalizer = Callable[[Mapping[str, Any], NormalizeContext, Mapping[str, Any]], list[NormalizedEvent]]

# (source, entity, record, extra): a record of a polled table, as a webhook delivery carries it.
SourceRecord = tuple[str, str, Mapping[str, Any], dict[str, Any]]


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


def payload_object(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A webhook payload's nested object, or the dead-letter reason why it has none."""
    value = payload.get(name)
    if type(value) is not dict and not isinstance(value, Mapping):
        raise InvalidRecord(f"payload has no `{name}` object")
    return value


def charlie_actor(instance_id: str, ctx: NormalizeContext) -> Actor:
    """A Charlie instance as an actor, whichever system it acted on."""
    return Actor(id=f"charlie:{instance_id}", name=ctx.charlie_names.get(instance_id, instance_id),
                 type="charlie", instance=instance_id)
