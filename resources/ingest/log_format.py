"""Parse one log line (JSON lines, RFC 5424 / RFC 3164 / rsyslog syslog, plain text) into a record.

`parse_line` never raises: a line it cannot read is still a record, with `format: "invalid"` and a
`problem`. The tailer (resources/ingest/log_tailer.py) calls it for every line it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any


def iso_utc(moment: datetime) -> str:
    """`2024-01-15T09:00:00.123000Z`: aware times converted to UTC, naive ones taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
# Syslog severities 0..7 (RFC 5424 §6.2.1).
SYSLOG_SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
_LEVEL_NAMES = {
    "trace": "trace", "debug": "debug", "dbg": "debug", "info": "info", "information": "info",
    "informational": "info", "notice": "notice", "warn": "warning", "warning": "warning",
    "err": "error", "error": "error", "severe": "error", "crit": "critical", "critical": "critical",
    "fatal": "critical", "alert": "alert", "emerg": "emergency", "emergency": "emergency", "panic": "emergency",
}
# pino / bunyan numeric levels.
_NUMERIC_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warning", 50: "error", 60: "critical"}
_LEVEL_WORD = re.compile(
    r"(?:^|[\s\[(<|])(?:(TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|CRIT(?:ICAL)?|FATAL|ALERT|EMERG|PANIC)"
    r"|(?i:(?:level|lvl|severity)=|\[|<)((?i:trace|debug|info|notice|warn(?:ing)?|error|err|crit(?:ical)?|fatal"
    r"|alert|emerg)))"
    r"(?=[\s\]):|>,;]|$)"
)
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_RFC5424 = re.compile(r"<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ?(.*)", re.DOTALL)
_RFC3164 = re.compile(
    r"(?:<(\d{1,3})>)?([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))? (.*)", re.DOTALL)
_RSYSLOG_ISO = re.compile(
    r"(?:<(\d{1,3})>)?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})) (.*)", re.DOTALL)
_TAG = re.compile(r"([^\s\[\]:]{1,64})(?:\[([^\]\s]{0,32})\])?: ?(.*)", re.DOTALL)
_LEADING_TIME = re.compile(
    r"\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?: ?(?:Z|[+-]\d{2}:?\d{2}))?)\]?")

_JSON_KEYS = {
    "ts": ("ts", "time", "timestamp", "@timestamp", "datetime", "date", "t", "asctime"),
    "level": ("level", "severity", "lvl", "loglevel", "log_level", "levelname", "level_name",
              "log.level", "@level"),
    "service": ("service", "service.name", "app", "application", "logger", "logger_name", "component",
                "name", "syslog.appname"),
    "host": ("host", "hostname", "host.name", "host.hostname"),
    "message": ("msg", "message", "@message", "log", "text", "event"),
}


def parse_line(data: bytes, *, received_at: datetime | None = None, tz: tzinfo = UTC) -> dict[str, Any]:
    """One line (without its newline) → `raw, format, ts, level, service, host, message, fields,
    problem`. Never raises: what cannot be read is `format: "invalid"` with the reason."""
    received_at = received_at or datetime.now(UTC)
    if data.endswith(b"\r"):
        data = data[:-1]
    problems = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        problems.append(f"invalid UTF-8 at byte {exc.start}")
    if "\x00" in text:
        # Kept visible but storable: Postgres text cannot hold NUL.
        problems.append(f"{text.count(chr(0))} NUL byte(s)")
        text = text.replace("\x00", "\ufffd")
    if problems:
        return _parsed(text, "invalid", message=text, problem="; ".join(problems))
    stripped = text.strip()
    if stripped.startswith("{"):
        return _parse_json(text, stripped, tz)
    for parser in (_parse_rfc5424, _parse_rsyslog_iso, _parse_rfc3164):
        parsed = parser(text, received_at, tz)
        if parsed is not None:
            return parsed
    return _parse_plain(text, tz)


def _parsed(raw: str, fmt: str, *, ts: str | None = None, level: str | None = None, service: str | None = None,
            host: str | None = None, message: str | None = None, fields: dict | None = None,
            problem: str | None = None) -> dict[str, Any]:
    return {"raw": raw, "format": fmt, "ts": ts, "level": level, "service": service, "host": host,
            "message": message, "fields": fields or {}, "problem": problem}


def _parse_json(text: str, stripped: str, tz: tzinfo) -> dict[str, Any]:
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        return _parsed(text, "invalid", message=text, problem=f"invalid JSON: {reason}")
    if not isinstance(obj, dict):
        return _parsed(text, "invalid", message=text, problem="invalid JSON: not an object")
    ts_value = _take(obj, _JSON_KEYS["ts"])
    ts = parse_timestamp(ts_value, tz)
    if ts_value is not None and ts is None:
        obj["ts"] = ts_value  # unreadable: keep it among the fields
    level_value = _take(obj, _JSON_KEYS["level"])
    message = _take(obj, _JSON_KEYS["message"])
    message = None if message is None else str(message).rstrip("\n")
    level = normalize_level(level_value)
    if level is None and level_value is not None:
        obj["level"] = level_value
    if level is None and message:
        level = level_in_text(message)
    service, host = _take(obj, _JSON_KEYS["service"]), _take(obj, _JSON_KEYS["host"])
    return _parsed(text, "json", ts=ts, level=level, service=None if service is None else str(service),
                   host=None if host is None else str(host), message=message, fields=obj)


def _take(obj: dict[str, Any], names: Iterable[str]) -> Any:
    """The first scalar under one of `names` (`a.b` also reaches into `{"a": {"b": ...}}`), removed."""
    for name in names:
        value = obj.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            del obj[name]
            return value
        head, _, tail = name.partition(".")
        inner = obj.get(head)
        if tail and isinstance(inner, dict):
            value = inner.get(tail)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                del inner[tail]
                if not inner:
                    del obj[head]
                return value
    return None


def _parse_rfc5424(text: str, received_at: datetime, tz: tzinfo) -> dict[str, Any] | None:
    m = _RFC5424.fullmatch(text)
    if not m or int(m.group(1)) > 191:
        return None
    pri, version, stamp, host, app, procid, msgid, rest = m.groups()
    ts = None if stamp == "-" else parse_timestamp(stamp, tz)
    if stamp != "-" and ts is None:
        return None
    fields: dict[str, Any] = {"facility": int(pri) // 8, "severity": int(pri) % 8, "version": int(version)}
    if procid != "-":
        fields["pid"] = procid
    if msgid != "-":
        fields["msgid"] = msgid
    sd, message = _structured_data(rest)
    if sd:
        fields["structured_data"] = sd
    if message.startswith("\ufeff"):
        message = message[1:]
    return _parsed(text, "syslog", ts=ts, level=SYSLOG_SEVERITIES[int(pri) % 8],
                   service=None if app == "-" else app, host=None if host == "-" else host,
                   message=message, fields=fields)


def _structured_data(rest: str) -> tuple[dict[str, dict[str, str]], str]:
    """RFC 5424 STRUCTURED-DATA (`-` or `[id k="v" ...]...`) and the message after it."""
    if rest.startswith("-"):
        return {}, rest[2:] if rest.startswith("- ") else rest[1:]
    elements: dict[str, dict[str, str]] = {}
    i, n = 0, len(rest)
    while i < n and rest[i] == "[":
        m = re.compile(r"\[([^\s\]=\"]+)").match(rest, i)
        if not m:
            return elements, rest[i:]
        params: dict[str, str] = {}
        i = m.end()
        while i < n and rest[i] == " ":
            pm = re.compile(r" ([^\s\]=\"]+)=\"").match(rest, i)
            if not pm:
                return elements, rest  # malformed: keep everything as the message
            i, value = pm.end(), []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n and rest[i + 1] in '"\\]':
                    i += 1
                value.append(rest[i])
                i += 1
            params[pm.group(1)] = "".join(value)
            i += 1
        if i >= n or rest[i] != "]":
            return elements, rest
        elements[m.group(1)] = params
        i += 1
    return elements, rest[i + 1:] if rest[i:i + 1] == " " else rest[i:]


def _parse_rsyslog_iso(text: str, received_at: datetime, tz: tzinfo) -> dict[str, Any] | None:
    """rsyslog's high-precision file format: `2024-01-15T09:00:00.123456+00:00 host tag[pid]: msg`."""
    m = _RSYSLOG_ISO.fullmatch(text)
    if not m:
        return None
    pri, stamp, rest = m.groups()
    ts = parse_timestamp(stamp, tz)
    if ts is None:
        return None
    return _syslog_body(text, pri, ts, rest)


def _parse_rfc3164(text: str, received_at: datetime, tz: tzinfo) -> dict[str, Any] | None:
    m = _RFC3164.fullmatch(text)
    if not m or m.group(2) not in _MONTHS or (m.group(1) and int(m.group(1)) > 191):
        return None
    pri, month, day, hh, mm, ss, frac, rest = m.groups()
    ts = _year_less_time(_MONTHS[month], int(day), int(hh), int(mm), int(ss), frac, received_at, tz)
    return _syslog_body(text, pri, ts, rest)


def _syslog_body(text: str, pri: str | None, ts: str | None, rest: str) -> dict[str, Any]:
    """`host tag[pid]: message` (the host may be missing when a tag follows the time directly)."""
    host: str | None = None
    first, _, after = rest.partition(" ")
    if after and not first.endswith(":") and "[" not in first:
        host, rest = first, after
    fields: dict[str, Any] = {}
    service = None
    tag = _TAG.fullmatch(rest)
    if tag:
        service, pid, message = tag.group(1), tag.group(2), tag.group(3)
        if pid:
            fields["pid"] = pid
    else:
        message = rest
    level = None
    if pri is not None:
        fields["facility"], fields["severity"] = int(pri) // 8, int(pri) % 8
        level = SYSLOG_SEVERITIES[int(pri) % 8]
    else:
        level = level_in_text(message)
    return _parsed(text, "syslog", ts=ts, level=level, service=service, host=host, message=message,
                   fields=fields)


def _year_less_time(month: int, day: int, hh: int, mm: int, ss: int, frac: str | None,
                    received_at: datetime, tz: tzinfo) -> str | None:
    """RFC 3164 has no year: the one that puts the time closest before (or just after) receipt."""
    received = received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
    micro = int((frac or "0").ljust(6, "0")[:6])
    for year in (received.year, received.year - 1):
        try:
            moment = datetime(year, month, day, hh, mm, ss, micro, tzinfo=tz)
        except ValueError:
            continue  # Feb 29 in a common year, or a bad day
        if moment <= received + timedelta(days=2):
            return iso_utc(moment)
    return None


def _parse_plain(text: str, tz: tzinfo) -> dict[str, Any]:
    ts = None
    m = _LEADING_TIME.match(text)
    if m:
        ts = parse_timestamp(m.group(1), tz)
    return _parsed(text, "plain", ts=ts, level=level_in_text(text), message=text)


def parse_timestamp(value: Any, tz: tzinfo = UTC) -> str | None:
    """ISO 8601 text or epoch seconds/ms/µs/ns → `...Z` in UTC; naive times are in `tz`."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and re.fullmatch(r"\d{9,19}(\.\d+)?", value)):
            number = float(value)
            for scale in (1e9, 1e6, 1e3):
                if number > scale * 1e8:  # past ~1973 in that unit
                    number /= scale
                    break
            return iso_utc(datetime.fromtimestamp(number, UTC))
        if isinstance(value, str):
            text = value.strip().replace(",", ".")
            text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # nanoseconds: Python takes microseconds
            text = re.sub(r" ?(Z|z)$", "+00:00", text)
            text = re.sub(r" ([+-]\d{2}:?\d{2})$", r"\1", text)
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
            return iso_utc(moment)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def normalize_level(value: Any) -> str | None:
    """`WARN`, `Warning`, `40` (pino), `3` (syslog severity) → one of LEVELS; None if unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(float(value))
        if 0 <= number <= 7:
            return SYSLOG_SEVERITIES[number]
        return _NUMERIC_LEVELS.get(number)
    return _LEVEL_NAMES.get(str(value).strip().lower())


def level_in_text(text: str) -> str | None:
    """A level named near the start of free text: `ERROR ...`, `[warn]`, `level=info`."""
    m = _LEVEL_WORD.search(text[:80])
    return None if m is None else normalize_level(m.group(1) or m.group(2))
