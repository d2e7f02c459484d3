"""Alerts as records, with the app's tables: a SQLite file embedded, a Postgres schema when configured.

Every process that finds something writes here — the sidecar's monitor, Dagster's sensors and run
workers — so the store is the one place alerts are deduplicated (one live alert per rule +
subject, a partial unique index), counted, acknowledged and resolved. Every change bumps a global
`seq`, which is what the sidecar follows to push `alert.*` messages to `alerts:all` whoever made
the change. A transition worth telling a person (opened, escalated, resolved) also writes a
*notice* in the same transaction; the notifier (cc_alerts/notify.py) drains notices per channel, so
a notification is never lost to a crash between the change and the send, and never sent from the
path that found the problem. Refreshes and backfills a rule asks for are `alert_actions` rows that
a Dagster sensor turns into runs.

Times are stored as ISO text (UTC, microseconds) in both dialects: one code path, sortable.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cc_alerts.model import NOTIFIED, Action, Alert, Change, Finding, severity_rank

_TABLES = """
create table if not exists alerts (
    id text primary key,
    rule text not null,
    subject text not null,
    severity text not null,
    message text not null,
    state text not null,
    count bigint not null,
    first_seen text not null,
    last_seen text not null,
    links text not null,
    acknowledged_by text,
    acknowledged_at text,
    resolved_at text,
    last_change text not null,
    seq bigint not null
);
create unique index if not exists alerts_live on alerts (rule, subject) where state <> 'resolved';
create index if not exists alerts_seq on alerts (seq);
create index if not exists alerts_last_seen on alerts (last_seen, id);
create table if not exists alert_seq (name text primary key, value bigint not null);
create table if not exists alert_notices (
    id {serial} primary key,
    alert_id text not null,
    transition text not null,
    severity text not null,
    at text not null,
    alert text not null
);
create table if not exists alert_channels (
    channel text primary key,
    cursor bigint not null default 0,
    last_sent_at text,
    attempts integer not null default 0,
    next_try_at text,
    last_error text,
    sent bigint not null default 0,
    lease_owner text,
    lease_until text
);
create table if not exists alert_actions (
    id {serial} primary key,
    kind text not null,
    source text not null,
    start_day text,
    end_day text,
    alert_id text,
    requested_at text not null,
    taken_at text
);
create index if not exists alert_actions_open on alert_actions (taken_at, id);
"""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.isoformat(timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _alert(row: Any) -> Alert:
    return Alert(id=row["id"], rule=row["rule"], subject=row["subject"], severity=row["severity"],
                 message=row["message"], state=row["state"], count=int(row["count"]),
                 first_seen=_time(row["first_seen"]), last_seen=_time(row["last_seen"]),  # type: ignore[arg-type]
                 links=json.loads(row["links"]), acknowledged_by=row["acknowledged_by"],
                 acknowledged_at=_time(row["acknowledged_at"]), resolved_at=_time(row["resolved_at"]),
                 last_change=row["last_change"], seq=int(row["seq"]))


@dataclass(frozen=True)
class Notice:
    id: int
    alert_id: str
    transition: str
    severity: str
    at: datetime
    alert: dict[str, Any]


@dataclass(frozen=True)
class ChannelState:
    channel: str
    cursor: int
    last_sent_at: datetime | None
    attempts: int
    next_try_at: datetime | None
    last_error: str | None
    sent: int


@dataclass(frozen=True)
class ActionRequest:
    id: int
    kind: str
    source: str
    start: str | None
    end: str | None
    alert_id: str | None
    requested_at: datetime


class AlertStore:
    """The alert tables in a SQLite file (WAL: the sidecar and Dagster's processes share it).
    `PostgresAlertStore` is the same over a Postgres schema."""

    serial = "integer"  # sqlite: an integer primary key is the rowid, assigned on insert

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("pragma journal_mode = wal")
        # No fsync per commit: the sidecar's monitor writes every few seconds on the disk that
        # holds the landing log, whose fsyncs are every webhook's acknowledgement. WAL with
        # `normal` survives a crash of any process; a power cut may lose the last moments, which
        # the rules find again on their next round.
        self._db.execute("pragma synchronous = normal")
        self._db.execute("pragma busy_timeout = 30000")
        with self._tx() as db:
            for statement in filter(str.strip, _TABLES.format(serial=self.serial).split(";")):
                db.execute(statement)

    # --- connection ---------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    def _read(self, sql: str, params: tuple = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _lock_subject(self, db: Any, rule: str, subject: str) -> None:
        """Serialize writers of one rule + subject (SQLite's `begin immediate` already does)."""

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- the change counter -------------------------------------------------------------------
    @staticmethod
    def _next_seq(db: Any) -> int:
        row = db.execute("update alert_seq set value = value + 1 where name = 'alerts' returning value").fetchone()
        if row is None:
            db.execute("insert into alert_seq (name, value) values ('alerts', 1)")
            return 1
        return int(row["value"])

    def last_seq(self) -> int:
        rows = self._read("select value from alert_seq where name = 'alerts'")
        return int(rows[0]["value"]) if rows else 0

    # --- raising and resolving ----------------------------------------------------------------
    def _live(self, db: Any, rule: str, subject: str) -> Alert | None:
        row = db.execute("select * from alerts where rule = ? and subject = ? and state <> 'resolved'",
                         (rule, subject)).fetchone()
        return None if row is None else _alert(row)

    def _notice(self, db: Any, change: Change, now: datetime) -> None:
        if change.transition in NOTIFIED:
            db.execute("insert into alert_notices (alert_id, transition, severity, at, alert) values (?, ?, ?, ?, ?)",
                       (change.alert.id, change.transition, change.alert.severity, _iso(now),
                        json.dumps(change.alert.to_json())))

    def _raise(self, db: Any, finding: Finding, now: datetime) -> Change:
        self._lock_subject(db, finding.rule, finding.subject)
        seq = self._next_seq(db)
        current = self._live(db, finding.rule, finding.subject)
        if current is None:
            alert = Alert(id=str(uuid.uuid4()), rule=finding.rule, subject=finding.subject,
                          severity=finding.severity, message=finding.message, state="open",
                          count=finding.count, first_seen=now, last_seen=now, links=dict(finding.links), seq=seq)
            db.execute("insert into alerts (id, rule, subject, severity, message, state, count, first_seen,"
                       " last_seen, links, last_change, seq) values (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, 'opened', ?)",
                       (alert.id, alert.rule, alert.subject, alert.severity, alert.message, alert.count,
                        _iso(now), _iso(now), json.dumps(alert.links), seq))
            change = Change("opened", alert)
        else:
            transition = "escalated" if severity_rank(finding.severity) > severity_rank(current.severity) else "updated"
            links = {**current.links, **finding.links}
            db.execute("update alerts set severity = ?, message = ?, count = count + ?, last_seen = ?, links = ?,"
                       " last_change = ?, seq = ? where id = ?",
                       (finding.severity, finding.message, finding.count, _iso(now), json.dumps(links), transition,
                        seq, current.id))
            alert = Alert(**{**current.__dict__, "severity": finding.severity, "message": finding.message,
                             "count": current.count + finding.count, "last_seen": now, "links": links,
                             "last_change": transition, "seq": seq})
            change = Change(transition, alert)
        self._notice(db, change, now)
        if finding.action is not None and change.transition in ("opened", "escalated"):
            self._request(db, finding.action, alert.id, now)
        return change

    def _resolve(self, db: Any, alert: Alert, now: datetime, message: str | None) -> Change:
        seq = self._next_seq(db)
        text = message or alert.message
        db.execute("update alerts set state = 'resolved', resolved_at = ?, message = ?, last_change = 'resolved',"
                   " seq = ? where id = ?", (_iso(now), text, seq, alert.id))
        resolved = Alert(**{**alert.__dict__, "state": "resolved", "resolved_at": now, "message": text,
                            "last_change": "resolved", "seq": seq})
        change = Change("resolved", resolved)
        self._notice(db, change, now)
        return change

    def raise_alert(self, finding: Finding, now: datetime | None = None) -> Change:
        """Open the finding's alert, or count it again on the one already live."""
        with self._tx() as db:
            return self._raise(db, finding, now or utcnow())

    def resolve(self, rule: str, subject: str, now: datetime | None = None, message: str | None = None) -> Change | None:
        """Resolve the live alert of `rule` about `subject` (None when there is none)."""
        with self._tx() as db:
            self._lock_subject(db, rule, subject)
            current = self._live(db, rule, subject)
            return None if current is None else self._resolve(db, current, now or utcnow(), message)

    def reconcile(self, rule: str, findings: Iterable[Finding], now: datetime | None = None,
                  covers: Iterable[str] | None = None) -> list[Change]:
        """A rule's evaluation, applied: each finding raised, and each live alert of the rule the
        evaluation did not find resolved (only those whose subject is in `covers`, when the
        evaluation looked at some subjects only). One transaction."""
        now = now or utcnow()
        findings = list(findings)
        found = {f.subject for f in findings}
        if any(f.rule != rule for f in findings):
            raise ValueError(f"reconcile({rule!r}) was given another rule's findings")
        covered = None if covers is None else set(covers)
        with self._tx() as db:
            changes = [self._raise(db, f, now) for f in findings]
            live = [_alert(r) for r in db.execute(
                "select * from alerts where rule = ? and state <> 'resolved'", (rule,)).fetchall()]
            for alert in live:
                if alert.subject not in found and (covered is None or alert.subject in covered):
                    changes.append(self._resolve(db, alert, now, None))
        return changes

    def acknowledge(self, alert_id: str, by: str, now: datetime | None = None) -> Change | None:
        """open → acknowledged (None: no such alert; an alert not open is returned unchanged)."""
        now = now or utcnow()
        with self._tx() as db:
            row = db.execute("select * from alerts where id = ?", (alert_id,)).fetchone()
            if row is None:
                return None
            alert = _alert(row)
            if alert.state != "open":
                return Change("unchanged", alert)
            seq = self._next_seq(db)
            db.execute("update alerts set state = 'acknowledged', acknowledged_by = ?, acknowledged_at = ?,"
                       " last_change = 'acknowledged', seq = ? where id = ?", (by, _iso(now), seq, alert_id))
            return Change("acknowledged", Alert(**{**alert.__dict__, "state": "acknowledged", "acknowledged_by": by,
                                                   "acknowledged_at": now, "last_change": "acknowledged",
                                                   "seq": seq}))

    # --- reading ------------------------------------------------------------------------------
    def get(self, alert_id: str) -> Alert | None:
        rows = self._read("select * from alerts where id = ?", (alert_id,))
        return _alert(rows[0]) if rows else None

    def list(self, *, state: Iterable[str] | None = None, severity: Iterable[str] | None = None,
             rule: str | None = None, subject: str | None = None, since: datetime | None = None,
             before: tuple[datetime, str] | None = None, limit: int = 50) -> list[Alert]:
        """Newest `last_seen` first; `before` is the (last_seen, id) of the previous page's last row."""
        where, params = [], []
        if state:
            states = list(state)
            where.append(f"state in ({', '.join('?' * len(states))})")
            params += states
        if severity:
            severities = list(severity)
            where.append(f"severity in ({', '.join('?' * len(severities))})")
            params += severities
        if rule:
            where.append("rule = ?")
            params.append(rule)
        if subject:
            where.append("(subject = ? or subject like ?)")
            params += [subject, f"%:{subject}"]
        if since:
            where.append("last_seen >= ?")
            params.append(_iso(since))
        if before:
            where.append("(last_seen < ? or (last_seen = ? and id < ?))")
            params += [_iso(before[0]), _iso(before[0]), before[1]]
        sql = "select * from alerts" + (" where " + " and ".join(where) if where else "")
        sql += " order by last_seen desc, id desc limit ?"
        return [_alert(r) for r in self._read(sql, (*params, limit))]

    def counts(self) -> dict[str, dict[str, int]]:
        """Live alerts by state and severity: {"open": {"critical": 2, ...}, "acknowledged": {...}}."""
        out: dict[str, dict[str, int]] = {"open": {}, "acknowledged": {}}
        for row in self._read("select state, severity, count(*) as n from alerts where state <> 'resolved'"
                              " group by state, severity"):
            out[row["state"]][row["severity"]] = int(row["n"])
        return out

    def changed_since(self, seq: int, limit: int = 1000) -> list[Alert]:
        """Alerts changed after `seq`, oldest change first (the sidecar's feed to `alerts:all`)."""
        return [_alert(r) for r in self._read("select * from alerts where seq > ? order by seq limit ?", (seq, limit))]

    # --- notices, per channel -----------------------------------------------------------------
    def notices_after(self, cursor: int, limit: int = 500) -> list[Notice]:
        return [Notice(int(r["id"]), r["alert_id"], r["transition"], r["severity"], _time(r["at"]),  # type: ignore[arg-type]
                       json.loads(r["alert"]))
                for r in self._read("select * from alert_notices where id > ? order by id limit ?", (cursor, limit))]

    def last_notice(self) -> int:
        rows = self._read("select coalesce(max(id), 0) as n from alert_notices")
        return int(rows[0]["n"])

    def channel(self, channel: str, start_at: int | None = None) -> ChannelState:
        """A channel's delivery state; a channel seen for the first time starts at `start_at`
        (the notices before it are not sent to it: a channel added later gets what is new)."""
        with self._tx() as db:
            db.execute("insert into alert_channels (channel, cursor) values (?, ?) on conflict do nothing",
                       (channel, start_at if start_at is not None else 0))
            row = db.execute("select * from alert_channels where channel = ?", (channel,)).fetchone()
        return ChannelState(row["channel"], int(row["cursor"]), _time(row["last_sent_at"]), int(row["attempts"]),
                            _time(row["next_try_at"]), row["last_error"], int(row["sent"]))

    def channels(self) -> list[ChannelState]:
        return [ChannelState(r["channel"], int(r["cursor"]), _time(r["last_sent_at"]), int(r["attempts"]),
                             _time(r["next_try_at"]), r["last_error"], int(r["sent"]))
                for r in self._read("select * from alert_channels order by channel")]

    def lease(self, channel: str, owner: str, now: datetime, seconds: float) -> bool:
        """Take the channel for `seconds` (one sender per channel across processes)."""
        until = datetime.fromtimestamp(now.replace(tzinfo=UTC).timestamp() + seconds, UTC).replace(tzinfo=None)
        with self._tx() as db:
            taken = db.execute("update alert_channels set lease_owner = ?, lease_until = ? where channel = ?"
                               " and (lease_until is null or lease_until < ? or lease_owner = ?)",
                               (owner, _iso(until), channel, _iso(now), owner)).rowcount
        return taken == 1

    def sent(self, channel: str, cursor: int, now: datetime) -> None:
        with self._tx() as db:
            db.execute("update alert_channels set cursor = ?, last_sent_at = ?, attempts = 0, next_try_at = null,"
                       " last_error = null, sent = sent + 1 where channel = ?", (cursor, _iso(now), channel))

    def skip(self, channel: str, cursor: int) -> None:
        """Notices below a channel's severity: passed over, not counted as a send."""
        with self._tx() as db:
            db.execute("update alert_channels set cursor = ? where channel = ?", (cursor, channel))

    def failed(self, channel: str, error: str, next_try_at: datetime) -> None:
        with self._tx() as db:
            db.execute("update alert_channels set attempts = attempts + 1, next_try_at = ?, last_error = ?"
                       " where channel = ?", (_iso(next_try_at), error[:500], channel))

    # --- actions ------------------------------------------------------------------------------
    @staticmethod
    def _request(db: Any, action: Action, alert_id: str | None, now: datetime) -> None:
        pending = db.execute("select 1 from alert_actions where taken_at is null and kind = ? and source = ?"
                             " and coalesce(start_day, '') = ? and coalesce(end_day, '') = ?",
                             (action.kind, action.source, action.start or "", action.end or "")).fetchone()
        if pending is None:
            db.execute("insert into alert_actions (kind, source, start_day, end_day, alert_id, requested_at)"
                       " values (?, ?, ?, ?, ?, ?)",
                       (action.kind, action.source, action.start, action.end, alert_id, _iso(now)))

    def request(self, action: Action, alert_id: str | None = None, now: datetime | None = None) -> None:
        """Ask for a refresh or backfill (one pending request per action is kept)."""
        with self._tx() as db:
            self._request(db, action, alert_id, now or utcnow())

    def take_actions(self, now: datetime | None = None) -> list[ActionRequest]:
        """The pending refresh and backfill requests, marked taken (each is taken once)."""
        with self._tx() as db:
            rows = db.execute("select * from alert_actions where taken_at is null order by id").fetchall()
            if rows:
                db.execute(f"update alert_actions set taken_at = ? where id in ({', '.join('?' * len(rows))})",
                           (_iso(now or utcnow()), *[r["id"] for r in rows]))
        return [ActionRequest(int(r["id"]), r["kind"], r["source"], r["start_day"], r["end_day"], r["alert_id"],
                              _time(r["requested_at"])) for r in rows]  # type: ignore[arg-type]

    def actions(self, limit: int = 100) -> list[ActionRequest]:
        return [ActionRequest(int(r["id"]), r["kind"], r["source"], r["start_day"], r["end_day"], r["alert_id"],
                              _time(r["requested_at"]))  # type: ignore[arg-type]
                for r in self._read("select * from alert_actions order by id desc limit ?", (limit,))]


class _PgCursor:
    """What AlertStore uses of a sqlite3 connection, on a psycopg one (`?` → `%s`)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), params)


class PostgresAlertStore(AlertStore):
    """The alert tables in a Postgres schema (`CC_APP_SCHEMA`): every replica, the Dagster daemon
    and its run workers share them. A connection per call (alerts are rare; no pool to leak)."""

    serial = "bigint generated always as identity"

    def __init__(self, url: str, schema: str) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
            raise ValueError(f"not a plain schema name: {schema!r}")
        self.url, self.schema = url, schema
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5,
                               options=f"-c search_path={self.schema}")
        if not self._ready:
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(hashtext('cc_alert_tables'))")
                conn.execute(f"create schema if not exists {self.schema}")
                for statement in filter(str.strip, _TABLES.format(serial=self.serial).split(";")):
                    conn.execute(statement)
            self._ready = True
        return conn

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, self._connect() as conn, conn.transaction():
            yield _PgCursor(conn)

    def _read(self, sql: str, params: tuple = ()) -> list[Any]:
        with self._lock, self._connect() as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def _lock_subject(self, db: Any, rule: str, subject: str) -> None:
        db.execute("select pg_advisory_xact_lock(hashtext(?))", (f"cc_alert:{rule}:{subject}",))

    @staticmethod
    def _next_seq(db: Any) -> int:
        row = db.execute("insert into alert_seq (name, value) values ('alerts', 1) on conflict (name)"
                         " do update set value = alert_seq.value + 1 returning value").fetchone()
        return int(row["value"])

    def close(self) -> None:
        pass


def alert_store_path(data_dir: Path) -> Path:
    """The embedded store: beside the sidecar's app tables."""
    return data_dir / "sidecar" / "alerts.sqlite3"


def alert_store(settings: Any) -> AlertStore:
    """The store the settings say: Postgres' `CC_APP_SCHEMA` with the warehouse on Postgres, else SQLite."""
    if settings.warehouse == "postgres":
        return PostgresAlertStore(settings.pg_url, settings.app_schema)
    return AlertStore(alert_store_path(settings.data_dir))
