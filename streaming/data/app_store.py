"""The sidecar's own store: dashboards and widgets (the seeds' schema) and the Charlie command log.

In a SQLite file (embedded) or, with the warehouse on Postgres, in schema `CC_APP_SCHEMA` there
(`app_store_postgres.PostgresAppStore`), so that every replica serves the same dashboards. It is written by API calls
only, so it never waits for dbt.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from resources.settings import Settings
from streaming.data.marts import Row, utcnow

SQLITE_SCHEMA = """
create table if not exists dashboards (
    id text primary key,
    name text not null,
    config text not null,
    owner_id text not null,
    created_at text not null,
    updated_at text not null
);
create table if not exists widgets (
    id text primary key,
    dashboard_id text not null references dashboards(id) on delete cascade,
    type text not null,
    title text not null,
    config text not null,
    position text not null,
    created_at text not null
);
create index if not exists widgets_dashboard on widgets(dashboard_id);
create table if not exists charlie_commands (
    id text primary key,
    instance_id text not null,
    command text not null,
    args text not null,
    requested_by text not null,
    requested_at text not null,
    status text not null,
    http_status integer,
    response text,
    error text,
    finished_at text
);
create index if not exists charlie_commands_instance on charlie_commands(instance_id, requested_at);
"""

DEFAULT_DASHBOARD_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "command-center:dashboard:default"))
SYSTEM_OWNER = "system"

# The default dashboard: one widget per kind of widget data, laid out on a 12-column grid.
DEFAULT_WIDGETS: list[dict[str, Any]] = [
    {"type": "overview", "title": "Overview", "config": {}, "position": {"x": 0, "y": 0, "w": 12, "h": 2}},
    {"type": "workflow_status", "title": "Workflows by status", "config": {},
     "position": {"x": 0, "y": 2, "w": 4, "h": 3}},
    {"type": "event_volume", "title": "Events, last 24 hours", "config": {"timeRange": "24h"},
     "position": {"x": 4, "y": 2, "w": 8, "h": 3}},
    {"type": "charlie_workload", "title": "Charlie instances", "config": {},
     "position": {"x": 0, "y": 5, "w": 6, "h": 3}},
    {"type": "system_status", "title": "Sessions, cron, trading", "config": {},
     "position": {"x": 6, "y": 5, "w": 6, "h": 3}},
    {"type": "system_metrics", "title": "Hosts, last hour", "config": {"timeRange": "1h"},
     "position": {"x": 0, "y": 8, "w": 6, "h": 3}},
    {"type": "recent_events", "title": "Latest events", "config": {"limit": 20},
     "position": {"x": 6, "y": 8, "w": 6, "h": 3}},
    {"type": "workflows", "title": "Active workflows", "config": {"status": "active", "limit": 10},
     "position": {"x": 0, "y": 11, "w": 12, "h": 4}},
]


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds")


def _is_uuid(value: str) -> bool:
    """Dashboard and widget ids are uuids (the seeds' schema): any other id names nothing."""
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value  # Postgres' jsonb comes decoded


def _text(value: Any) -> Any:
    """SQLite's text as it is; Postgres' uuid and timestamp as the same text SQLite holds."""
    if isinstance(value, datetime):
        return _iso(value)
    return value if value is None or isinstance(value, str) else str(value)


def _dashboard(row: Any) -> Row:
    return {"id": _text(row["id"]), "name": row["name"], "config": _json(row["config"]),
            "owner_id": row["owner_id"], "created_at": _text(row["created_at"]),
            "updated_at": _text(row["updated_at"])}


def _widget(row: Any) -> Row:
    return {"id": _text(row["id"]), "dashboard_id": _text(row["dashboard_id"]), "type": row["type"],
            "title": row["title"], "config": _json(row["config"]), "position": _json(row["position"]),
            "created_at": _text(row["created_at"])}


class AppStore:
    """Dashboards, widgets and the Charlie command log in one SQLite file (WAL: replicas on one host share it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("pragma journal_mode = wal")
        self._db.execute("pragma foreign_keys = on")
        self._db.executescript(SQLITE_SCHEMA)
        self._seed_default()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _seed_default(self) -> None:
        with self._tx() as db:
            self._seed(db)

    @staticmethod
    def _seed(db: Any) -> None:
        now = _iso(utcnow())
        inserted = db.execute(
            "insert or ignore into dashboards values (?, ?, ?, ?, ?, ?)",
            (DEFAULT_DASHBOARD_ID, "Command Center", json.dumps({"columns": 12, "refreshSeconds": 30}),
             SYSTEM_OWNER, now, now)).rowcount
        if inserted:
            for n, widget in enumerate(DEFAULT_WIDGETS):
                wid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"command-center:widget:default:{n}"))
                db.execute("insert or ignore into widgets values (?, ?, ?, ?, ?, ?, ?)",
                           (wid, DEFAULT_DASHBOARD_ID, widget["type"], widget["title"],
                            json.dumps(widget["config"]), json.dumps(widget["position"]), now))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # dashboards and widgets
    def dashboards(self) -> list[Row]:
        rows = self._read(
            "select d.*, (select count(*) from widgets w where w.dashboard_id = d.id) as widget_count"
            " from dashboards d order by d.created_at, d.id")
        return [{**_dashboard(r), "widget_count": r["widget_count"]} for r in rows]

    def dashboard(self, dashboard_id: str) -> Row | None:
        if not _is_uuid(dashboard_id):
            return None
        rows = self._read("select * from dashboards where id = ?", (dashboard_id,))
        if not rows:
            return None
        widgets = self._read("select * from widgets where dashboard_id = ? order by created_at, id", (dashboard_id,))
        return {**_dashboard(rows[0]), "widgets": [_widget(w) for w in widgets]}

    def create_dashboard(self, name: str, config: dict, owner_id: str, widgets: list[dict]) -> Row:
        dashboard_id, now = str(uuid.uuid4()), _iso(utcnow())
        with self._tx() as db:
            db.execute("insert into dashboards values (?, ?, ?, ?, ?, ?)",
                       (dashboard_id, name, json.dumps(config), owner_id, now, now))
            for widget in widgets:
                self._insert_widget(db, dashboard_id, widget, now)
        return self.dashboard(dashboard_id)  # type: ignore[return-value]

    def update_dashboard(self, dashboard_id: str, name: str | None, config: dict | None) -> Row | None:
        if not _is_uuid(dashboard_id):
            return None
        with self._tx() as db:
            found = db.execute(
                "update dashboards set name = coalesce(?, name), config = coalesce(?, config), updated_at = ?"
                " where id = ?",
                (name, None if config is None else json.dumps(config), _iso(utcnow()), dashboard_id)).rowcount
        return self.dashboard(dashboard_id) if found else None

    def delete_dashboard(self, dashboard_id: str) -> bool:
        if not _is_uuid(dashboard_id):
            return False
        with self._tx() as db:
            db.execute("delete from widgets where dashboard_id = ?", (dashboard_id,))
            return db.execute("delete from dashboards where id = ?", (dashboard_id,)).rowcount > 0

    @staticmethod
    def _insert_widget(db: sqlite3.Connection, dashboard_id: str, widget: dict, now: str) -> str:
        widget_id = str(uuid.uuid4())
        db.execute("insert into widgets values (?, ?, ?, ?, ?, ?, ?)",
                   (widget_id, dashboard_id, widget["type"], widget["title"], json.dumps(widget.get("config") or {}),
                    json.dumps(widget.get("position") or {}), now))
        return widget_id

    def add_widget(self, dashboard_id: str, widget: dict) -> Row | None:
        if not _is_uuid(dashboard_id):
            return None
        now = _iso(utcnow())
        with self._tx() as db:
            if not db.execute("select 1 from dashboards where id = ?", (dashboard_id,)).fetchone():
                return None
            widget_id = self._insert_widget(db, dashboard_id, widget, now)
            db.execute("update dashboards set updated_at = ? where id = ?", (now, dashboard_id))
        return self.widget(widget_id)

    def widget(self, widget_id: str) -> Row | None:
        if not _is_uuid(widget_id):
            return None
        rows = self._read("select * from widgets where id = ?", (widget_id,))
        return _widget(rows[0]) if rows else None

    def update_widget(self, widget_id: str, changes: dict) -> Row | None:
        if not _is_uuid(widget_id):
            return None
        with self._tx() as db:
            found = db.execute(
                "update widgets set title = coalesce(?, title), config = coalesce(?, config),"
                " position = coalesce(?, position) where id = ?",
                (changes.get("title"),
                 None if changes.get("config") is None else json.dumps(changes["config"]),
                 None if changes.get("position") is None else json.dumps(changes["position"]),
                 widget_id)).rowcount
        return self.widget(widget_id) if found else None

    def delete_widget(self, widget_id: str) -> bool:
        if not _is_uuid(widget_id):
            return False
        with self._tx() as db:
            return db.execute("delete from widgets where id = ?", (widget_id,)).rowcount > 0

    # the Charlie command log
    def log_command(self, command_id: str, instance_id: str, command: str, args: dict, requested_by: str) -> None:
        with self._tx() as db:
            db.execute("insert into charlie_commands (id, instance_id, command, args, requested_by, requested_at,"
                       " status) values (?, ?, ?, ?, ?, ?, 'sending')",
                       (command_id, instance_id, command, json.dumps(args), requested_by, _iso(utcnow())))

    def finish_command(self, command_id: str, status: str, http_status: int | None, response: Any,
                       error: str | None) -> None:
        with self._tx() as db:
            db.execute("update charlie_commands set status = ?, http_status = ?, response = ?, error = ?,"
                       " finished_at = ? where id = ?",
                       (status, http_status, None if response is None else json.dumps(response), error,
                        _iso(utcnow()), command_id))

    def commands(self, instance_id: str | None, limit: int) -> list[Row]:
        sql, params = "select * from charlie_commands", ()
        if instance_id:
            sql, params = sql + " where instance_id = ?", (instance_id,)
        rows = self._read(sql + " order by requested_at desc, id desc limit ?", (*params, limit))
        return [{**dict(r), "args": json.loads(r["args"]),
                 "response": None if r["response"] is None else json.loads(r["response"])} for r in rows]


def app_store_path(settings: Settings) -> Path:
    return settings.data_dir / "sidecar" / "app.sqlite3"
