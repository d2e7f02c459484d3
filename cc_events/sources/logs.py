"""Log records (resources/ingest/log_tailer.py) → normalized events.

One event per log line: source `logs`, type `log.<level>` (`log.unknown` when the line names no
level, `log.invalid` when it could not be read), the service as a bot actor, the log file as the
target. The id names the line by where it sits, `logs:{inode}.{file_gen}:{offset}`, so reading the
same line again (a replay after a crash) yields the same id and dedupes; `file_gen` (a hash of
the file's first line) keeps a reused inode from colliding with the file that had it before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from cc_events.context import NormalizeContext
from cc_events.helpers import parse_time
from cc_events.keys import KeyExtractor, unique
from cc_events.model import Actor, InvalidRecord, NormalizedEvent, Target
from cc_events.raw_tables import RawTable, col
from cc_events.sources import Source

_CORRELATION_FIELDS = ("correlation_id", "correlationId", "trace_id", "traceId", "trace.id")
_TITLE_CHARS = 200


def log_event_id(record: Mapping[str, Any]) -> str:
    """`logs:{inode}.{file_gen}:{offset}` (`logs:{inode}:{offset}` for records without a generation)."""
    gen = record.get("file_gen")
    file_part = f"{record['inode']}.{gen}" if gen else f"{record['inode']}"
    return f"logs:{file_part}:{int(record['offset'])}"


def normalize_log_record(record: Mapping[str, Any], linear_team_keys: Iterable[str] = ()) -> NormalizedEvent:
    """One tailed log line → its event; `InvalidRecord` only when the record itself is malformed
    (a corrupt *line* is still an event, `log.invalid`, carrying its raw text and the problem)."""
    if not isinstance(record, Mapping):
        raise InvalidRecord(f"record is a {type(record).__name__}, not an object")
    missing = [name for name in ("inode", "offset", "received_at") if record.get(name) is None]
    if missing:
        raise InvalidRecord(f"missing required field(s): {', '.join(missing)}")
    fields = record.get("fields") if isinstance(record.get("fields"), Mapping) else {}
    invalid = record.get("format") == "invalid"
    level = record.get("level")
    kind = "invalid" if invalid else (level or "unknown")
    message = str(record.get("message") or record.get("raw") or "")
    service = record.get("service") or record.get("host") or "unknown"
    try:
        timestamp = parse_time(record["ts"], "ts") if record.get("ts") else None
    except InvalidRecord:
        timestamp = None
    timestamp = timestamp or parse_time(record["received_at"], "received_at")

    repo = fields.get("repo") if isinstance(fields.get("repo"), str) else None
    texts = [message, *(v for v in fields.values() if isinstance(v, str))]
    keys = unique(KeyExtractor(linear_team_keys).all_keys(*texts, repo=repo.lower() if repo else None))

    payload: dict[str, Any] = {
        "level": level,
        "service": record.get("service"),
        "host": record.get("host"),
        "message": message,
        "format": record.get("format"),
        "path": record.get("path"),
        "offset": record.get("offset"),
        "line_no": record.get("line_no"),
        "fields": dict(fields),
        "problem": record.get("problem"),
    }
    if invalid or record.get("cut"):
        payload["raw"] = record.get("raw")
    log_path = str(record.get("log") or record.get("path") or "")
    title = message.splitlines()[0][:_TITLE_CHARS] if message else ""
    return NormalizedEvent(
        log_event_id(record), timestamp, "logs", f"log.{kind}",
        Actor(id=f"logs:{service}", name=str(service), type="bot"),
        Target("log", log_path, title, ""),
        payload, keys, correlation_id=_correlation_id(fields),
        tags=tuple(str(t) for t in (service, kind) if t),
    )


def _correlation_id(fields: Mapping[str, Any]) -> str | None:
    for name in _CORRELATION_FIELDS:
        value = fields.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    # RFC 5424 structured data: `[meta correlation_id="..."]`
    for params in (fields.get("structured_data") or {}).values():
        if isinstance(params, Mapping):
            for name in _CORRELATION_FIELDS:
                if params.get(name):
                    return str(params[name])
    return None


def log_line(record: Mapping[str, Any], ctx: NormalizeContext, extra: Mapping[str, Any]) -> list[NormalizedEvent]:
    event = normalize_log_record(record, ctx.linear_team_keys)
    # A log line mentioning issues is too weak a link to join (let alone merge) workflows: one
    # line naming ENG-1 and OPS-2 would fuse two stories. The keys stay in the payload; the event
    # names none until correlation can attach events without letting them link keys.
    return [replace(event, keys=(), payload={**event.payload, "mentions": [k.key for k in event.keys]})]


RAW_TABLES = (
    RawTable("logs", "lines", (
        col("id", "str", required=True), col("path", "str"), col("inode", "int", required=True),
        col("file_gen", "str"), col("offset", "int", required=True), col("line_no", "int"),
        col("received_at", "time", required=True), col("logged_at", "time", "ts"), col("format", "str"),
        col("level", "str"), col("service", "str"), col("host", "str"), col("message", "str"),
        col("problem", "str"),
    ), "Log lines tailed from files (JSON lines, syslog, plain), one row per line; corrupt ones flagged."),
)


SOURCE = Source("logs", RAW_TABLES, normalizers={"lines": log_line})
