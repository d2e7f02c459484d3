"""The rooms' names and the messages every client gets: `{"type", "room", "timestamp", "payload"}`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from streaming.room_names import _WORKFLOW_ROOM, ALL_WORKFLOWS, ROOMS


def is_room(name: Any) -> bool:
    return isinstance(name, str) and (name in ROOMS or bool(_WORKFLOW_ROOM.match(name)))


def not_a_room(name: Any) -> str | None:
    """Why `name` is no room a client can join (None: it is one)."""
    if is_room(name):
        return None
    if isinstance(name, str) and "*" in name:
        return (f"`{name}` is not a room: rooms are names, not patterns, and it would never be sent anything; "
                f"join `{ALL_WORKFLOWS}` for every workflow's updates, or `workflows:<workflow id>` for one's events")
    return "no such room"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def message(type_: str, room: str | None, payload: Any, timestamp: str | None = None) -> str:
    """One message as every client gets it: `{"type", "room", "timestamp", "payload"}`, compact JSON.

    `type` comes first, so a wire format that names its frames by type can read it back cheaply
    (`message_type`). orjson: the encoding is on every event's path; datetimes stay `str()` as
    before."""
    return orjson.dumps({"type": type_, "room": room, "timestamp": timestamp or now_iso(), "payload": payload},
                        default=str, option=_OPTIONS).decode()


def message_type(text: str) -> str:
    """The `type` of a `message()` text, without decoding the rest of it."""
    if text.startswith('{"type":"'):
        end = text.find('"', 9)
        if end > 0 and "\\" not in text[9:end]:
            return text[9:end]
    return str(orjson.loads(text).get("type"))


def as_text(text: str) -> str:
    return text


def json_array(texts: list[str]) -> str:
    """A `/ws` batch frame: the messages as one JSON array."""
    return "[" + ",".join(texts) + "]"

