"""Data access for the sidecar's REST API: the warm marts, the live events, and its own small store.

- `DuckDBSnapshot` reads the serving snapshot (`resources/serving.py`), never the warehouse file
  that dbt holds open while it builds; `PostgresMarts` reads `CC_PG_SCHEMA` directly.
  Both take SQL with `%(name)s` parameters: every filter is a bound value, never SQL text.
- `AppStore` is the sidecar's own store: dashboards and widgets (the seeds' schema) and the
  Charlie command log, in a SQLite file (embedded) or, with the warehouse on Postgres, in schema
  `CC_APP_SCHEMA` there (`PostgresAppStore`), so that every replica serves the same dashboards.
  It is written by API calls only, so it never waits for dbt.
- `Serving` puts them together for the routes: mart reads cached in-process until the marts
  change (a new snapshot, a new Postgres build) or a short TTL passes, plus the live events the
  marts do not have yet, so a webhook is visible at once. It also holds the hot tier
  (`resources/hot.py`: Redis or the embedded hot folder), read-only, and remembers for a while
  the live events a build has covered, so the hot tier's hours can be merged with everything
  this sidecar has seen.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from resources.settings import Settings
from resources.storage.history import ENGINE
from resources.storage.hot import HotStore, hot_store, hour_id
from resources.storage.serving import snapshot_path
from streaming.live import LiveEvents

Row = dict[str, Any]
log = logging.getLogger(__name__)

_PARAM = re.compile(r"%\((\w+)\)s")


class MartsUnavailable(RuntimeError):
    """No dbt build has been served yet (no snapshot, or the marts do not exist)."""


class AppStoreUnavailable(MartsUnavailable):
    """The app store's Postgres cannot be reached (restarting, down): the routes' 503 with
    Retry-After, as for missing marts, not a 500."""


class Marts(Protocol):
    def version(self) -> str | None:
        """Changes whenever the marts were rebuilt; None while there are none."""

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]: ...

    def in_list(self, column: str, param: str) -> str:
        """A condition `column` is one of the list bound to `param`."""

    def close(self) -> None: ...


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class DuckDBSnapshot:
    """The serving snapshot file, read through the process's one DuckDB (`resources.history.ENGINE`),
    which attaches each new version the build swaps in.

    Not `duckdb.connect(path)`: DuckDB's instance cache hands back the database of the file that
    was at `path` while anything in the process still holds it, so after the first build a
    long-running sidecar kept answering from the snapshot it had opened first."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def version(self) -> str | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        with ENGINE.snapshot(self.path) as snapshot:
            if snapshot is None:
                raise MartsUnavailable(f"no serving snapshot at {self.path} yet: run a dbt build (transform_job)")
            cursor, _tables = snapshot
            cursor.execute(_PARAM.sub(r"$\1", sql), params or {})
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def in_list(self, column: str, param: str) -> str:
        return f"list_contains(%({param})s, {column})"

    def close(self) -> None:
        pass


class PostgresMarts:
    """The dbt schema on Postgres, through a few pooled autocommit connections."""

    def __init__(self, url: str, schema: str, pool_size: int = 4, check_every_s: float = 1.0) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
            raise ValueError(f"not a plain schema name: {schema!r}")
        self.url, self.schema = url, schema
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._check_every_s = check_every_s
        self._checked_at = 0.0
        self._version: str | None = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5,
                               options=f"-c search_path={self.schema}")

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        import psycopg

        with self._slots:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                conn = self._connect()
            try:
                yield conn
            except psycopg.OperationalError:
                conn.close()
                raise
            else:
                self._pool.put(conn)

    def _drop_pool(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def version(self) -> str | None:
        now = time.monotonic()
        if now - self._checked_at < self._check_every_s:
            return self._version
        with self._lock:
            if now - self._checked_at >= self._check_every_s:
                # Every build rewrites the one-row overview with its own as-of time.
                try:
                    rows = self._query("select as_of_at from dashboard_overview")
                    self._version = str(rows[0]["as_of_at"]) if rows else None
                except MartsUnavailable:
                    self._version = None
                self._checked_at = now
        return self._version

    def _query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        """A read; one that failed on a pooled connection (Postgres restarted since it was pooled,
        which broke the others too) is read again on a fresh one. Unreachable is `MartsUnavailable`."""
        import psycopg

        try:
            try:
                with self._conn() as conn:
                    return list(conn.execute(sql, params or {}).fetchall())
            except psycopg.errors.QueryCanceled:
                raise  # the query's own fault (a timeout): not worth a second try
            except psycopg.OperationalError:
                self._drop_pool()
                with self._slots:
                    conn = self._connect()
                    try:
                        rows = list(conn.execute(sql, params or {}).fetchall())
                    except BaseException:
                        conn.close()
                        raise
                    self._pool.put(conn)
                    return rows
        except psycopg.errors.UndefinedTable as exc:
            raise MartsUnavailable(f"the marts are not built in schema {self.schema} yet: {exc}") from exc
        except psycopg.errors.QueryCanceled:
            raise
        except psycopg.OperationalError as exc:
            raise MartsUnavailable(f"the warehouse is unavailable: {exc}".splitlines()[0]) from exc

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
        return self._query(sql, params)

    def in_list(self, column: str, param: str) -> str:
        return f"{column} = any(%({param})s)"

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return


def marts_from_settings(settings: Settings) -> Marts:
    if settings.warehouse == "postgres":
        return PostgresMarts(settings.pg_url, settings.pg_schema)
    return DuckDBSnapshot(snapshot_path(settings))


# --- the sidecar's own store ------------------------------------------------------------------------

_SCHEMA = """
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
        self._db.executescript(_SCHEMA)
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
        now = _iso(utcnow())
        with self._tx() as db:
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


# The seeds' dashboards and widgets (uuid ids, jsonb configs); `owner_id` is the token's `sub`,
# which need not be a uuid. The command log is the SQLite one.
_PG_SCHEMA = """
create table if not exists dashboards (
    id uuid primary key,
    name varchar(255) not null,
    config jsonb not null,
    owner_id text not null,
    created_at timestamp not null default now(),
    updated_at timestamp not null default now()
);
create table if not exists widgets (
    id uuid primary key,
    dashboard_id uuid not null references dashboards(id) on delete cascade,
    type varchar(100) not null,
    title varchar(255) not null,
    config jsonb not null,
    position jsonb not null,
    created_at timestamp not null default now()
);
create index if not exists widgets_dashboard on widgets(dashboard_id);
""" + _SCHEMA[_SCHEMA.index("create table if not exists charlie_commands"):]

_INSERT_OR_IGNORE = re.compile(r"^insert or ignore into (.*)$", re.S)


def _pg_sql(sql: str) -> str:
    """AppStore's SQLite statements for Postgres: `?` placeholders, `on conflict do nothing`."""
    sql = sql.replace("?", "%s")
    match = _INSERT_OR_IGNORE.match(sql)
    return f"insert into {match.group(1)} on conflict do nothing" if match else sql


class _PgSession:
    """The one method of a sqlite3 connection AppStore uses, on a psycopg connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: tuple = ()) -> Any:
        return self._conn.execute(_pg_sql(sql), params)


class PostgresAppStore(AppStore):
    """AppStore's tables in a Postgres schema: every replica of the sidecar reads and writes the
    same dashboards, widgets and command log. One connection, reopened if it breaks."""

    def __init__(self, url: str, schema: str) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
            raise ValueError(f"not a plain schema name: {schema!r}")
        self.url, self.schema = url, schema
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._lock:
            conn, _ = self._connection()
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(hashtext('cc_app_schema'))")  # replicas starting at once
                conn.execute(f"create schema if not exists {schema}")
                conn.execute(f"set search_path = {schema}")
                for statement in filter(str.strip, _PG_SCHEMA.split(";")):
                    conn.execute(statement)
        self._seed_default()

    def _connection(self) -> tuple[Any, bool]:
        """The connection, and whether it was opened before this call (it may have broken since)."""
        import psycopg
        from psycopg.rows import dict_row

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5,
                                         options=f"-c search_path={self.schema}")
            return self._conn, False
        return self._conn, True

    @contextmanager
    def _session(self, first: Callable[[Any], Any]) -> Iterator[tuple[Any, Any]]:
        """Under the lock: the connection and what `first(conn)` (its first statement) returned.

        A connection that broke while idle (Postgres restarted since its last use) fails on its
        first statement, before anything of this call reached the server: that statement is
        sent again once on a fresh connection. A failure after that is `AppStoreUnavailable`."""
        import psycopg

        with self._lock:
            try:
                conn, reused = self._connection()
                try:
                    result = first(conn)
                except psycopg.OperationalError:
                    if not reused:
                        raise
                    conn.close()
                    conn, _ = self._connection()
                    result = first(conn)
                yield conn, result
            except psycopg.OperationalError as exc:
                if self._conn is not None:
                    self._conn.close()
                raise AppStoreUnavailable(f"the app store's Postgres is unavailable: {exc}".splitlines()[0]) from exc

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        def begin(conn: Any) -> Any:
            transaction = conn.transaction()
            transaction.__enter__()  # BEGIN: the statement a broken connection fails on
            return transaction

        with self._session(begin) as (conn, transaction):
            try:
                yield _PgSession(conn)
            except BaseException as exc:
                if not transaction.__exit__(type(exc), exc, exc.__traceback__):
                    raise
            else:
                transaction.__exit__(None, None, None)  # COMMIT

    def _read(self, sql: str, params: tuple = ()) -> list[Any]:
        with self._session(lambda conn: conn.execute(_pg_sql(sql), params).fetchall()) as (_, rows):
            return rows

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def app_store_path(settings: Settings) -> Path:
    return settings.data_dir / "sidecar" / "app.sqlite3"


def app_store_from_settings(settings: Settings) -> AppStore:
    if settings.warehouse == "postgres":
        return PostgresAppStore(settings.pg_url, settings.app_schema)
    return AppStore(app_store_path(settings))


# --- marts + live events -------------------------------------------------------------------------------

def plain(value: Any) -> Any:
    """Warehouse values as JSON-ready Python: Decimal -> float; JSON text stays text."""
    if isinstance(value, Decimal):
        return float(value)
    return value


def json_value(value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value


@dataclass
class _Entry:
    key: Any
    value: Any
    computed_at: float


@dataclass(frozen=True)
class HotHour:
    """One hour of the hot tier, as the REST API counts it."""

    counts: Counter  # (source, event_type, actor_type) -> events
    event_ids: frozenset[str]


@dataclass
class LiveView:
    """The live events the marts do not have yet, each with the workflow it belongs to."""

    events: list[Row]  # oldest first; each has `effective_workflow_id`
    new_workflow_ids: set[str]  # workflows no build has seen
    counts_by_workflow: Counter
    store_size: int = 0  # len(LiveEvents) when the view was made: what it is up to date with

    @property
    def size(self) -> int:
        return len(self.events)


class Serving:
    """What the routes read. Thread-safe; cheap when nothing changed."""

    # A changed live store is merged in at most this often: "at once" for a person, and a cheap
    # read under a webhook flood.
    LIVE_REFRESH_S = 0.1
    # An hour of the hot tier is re-read at most this often (hot_job rewrites it every 5 minutes).
    HOT_REFRESH_S = 2.0
    # Live events a build has covered stay known this long (and at most this many), so the hot
    # tier's hours (at most the last CC_HOT_TTL_S) can be merged with what this sidecar has seen.
    RECENT_S = 2 * 3600
    RECENT_MAX = 200_000

    def __init__(self, marts: Marts, store: AppStore, live: LiveEvents | None = None,
                 settings: Settings | None = None, hot: HotStore | None = None) -> None:
        self.marts, self.store = marts, store
        self.live = live if live is not None else LiveEvents()
        self.settings, self.hot = settings, hot
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._synced_version: str | None = None
        self._covered: set[str] = set()  # live event ids the current marts already have
        self._key_workflows: dict[str, str | None] = {}
        self._live_view: _Entry | None = None
        self._kept: dict[str, tuple[float, Callable[[], Any]]] = {}  # name -> (ttl_s, compute), see keep()
        self._keeper: threading.Thread | None = None
        self._refreshing: dict[str, float] = {}  # kept name -> when the keeper's current look began
        self._closed = threading.Event()
        self._recent: OrderedDict[str, Row] = OrderedDict()  # live events dropped after a build, by id

    @classmethod
    def from_settings(cls, settings: Settings, live: LiveEvents | None = None) -> Serving:
        return cls(marts_from_settings(settings), app_store_from_settings(settings), live, settings,
                   hot_store(settings))

    def close(self) -> None:
        self._closed.set()
        self.marts.close()
        self.store.close()
        if self.hot is not None:
            self.hot.close()

    def cached(self, name: str, ttl_s: float, compute: Callable[[], Any], live: bool = False) -> Any:
        """`compute()` cached until the marts change or `ttl_s` passes (and, with `live`, the live events change)."""
        version = self.sync()
        now = time.monotonic()
        live_key = len(self.live) if live else None
        entry = self._cache.get(name)
        if self._fresh(entry, version, live_key, ttl_s, now):
            return entry.value  # type: ignore[union-attr]
        if live:
            # Labelled with what the compute will see: the live view can lag the store by up to
            # LIVE_REFRESH_S, and an entry labelled newer than it is would stay until its TTL.
            live_key = self.live_view().store_size
        value = compute()
        with self._lock:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[name] = _Entry((version, live_key), value, now)
        return value

    def _fresh(self, entry: _Entry | None, version: str | None, live_key: int | None, ttl_s: float, now: float,
               live_refresh_s: float = LIVE_REFRESH_S) -> bool:
        return entry is not None and entry.key[0] == version and now - entry.computed_at < ttl_s and (
            entry.key[1] == live_key or now - entry.computed_at < live_refresh_s)

    # bodies kept ready -------------------------------------------------------------------------------
    # How often the keeper looks for a new build or new live events.
    KEEP_EVERY_S = 0.02
    # How long reads may get the body the keeper is replacing, at most.
    REFRESH_GRACE_S = 5.0

    def keep(self, name: str, ttl_s: float, compute: Callable[[], Any]) -> None:
        """Keep `cached(name, ttl_s, compute, live=True)` fresh from a background thread: recomputed
        when the marts change, when live events arrive (at most every LIVE_REFRESH_S / 2) and before
        `ttl_s` runs out, so that `ready(name)` finds it and a read does no work at all."""
        with self._lock:
            self._kept[name] = (ttl_s, compute)
            if self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_fresh, name="serving-keeper", daemon=True)
                self._keeper.start()

    def ready(self, name: str) -> Any | None:
        """What `cached(name, ...)` would return, if that needs no work (no query, no I/O); else None.

        Judged against the marts version the keeper last saw (it looks every KEEP_EVERY_S). While
        the keeper recomputes the body, the one it replaces: a new build's first queries open a
        cold file (0.4-1.5 s at 10M events, bench_rest), and no read should wait for that."""
        kept, entry, now = self._kept.get(name), self._cache.get(name), time.monotonic()
        if kept is None or entry is None:
            return None
        if self._fresh(entry, self._synced_version, len(self.live), kept[0], now):
            return entry.value
        began = self._refreshing.get(name)
        if began is not None and now - began < self.REFRESH_GRACE_S and now - entry.computed_at < kept[0]:
            return entry.value
        return None

    def _keep_fresh(self) -> None:
        while not self._closed.wait(self.KEEP_EVERY_S):
            # Until this look is over (a new build's sync included), reads get the bodies there are.
            self._refreshing = dict.fromkeys(self._kept, time.monotonic())
            try:
                self._keep_once()
            finally:
                self._refreshing = {}

    def _keep_once(self) -> None:
        try:
            version = self.sync()
        except Exception:  # the marts are unreachable for now: the reads will say so
            return
        for name, (ttl_s, compute) in list(self._kept.items()):
            if version is None or self._fresh(self._cache.get(name), version, len(self.live), 0.9 * ttl_s,
                                              time.monotonic(), self.LIVE_REFRESH_S / 2):
                continue  # no build yet, or still fresh for a while
            try:
                self.cached(name, 0, compute, live=True)
            except Exception:  # computed again on the next read, which reports what is wrong
                if not self._closed.is_set():
                    log.exception("keeping %s ready failed", name)

    # live events -------------------------------------------------------------------------------------
    def sync(self) -> str | None:
        """Notice a rebuilt warehouse: forget the live events it now has. Returns the marts' version."""
        version = self.marts.version()
        if version == self._synced_version:
            return version
        with self._lock:
            if version == self._synced_version:
                return version
            self._key_workflows = {}
            self._live_view = None
            self._covered = set()
            if version is not None:
                self._drop_covered()
            self._synced_version = version
        return version

    def _drop_covered(self) -> None:
        events = self.live.since()
        if not events:
            return
        ids = [e["event_id"] for e in events]
        found = {r["event_id"] for r in self.marts.query(
            "select event_id from fct_workflow_events where " + self.marts.in_list("event_id", "ids"), {"ids": ids})}
        missing = [e["received_at"] for e in events if e["event_id"] not in found]
        # Forget everything received before the first event the build does not have; any later
        # event it has stays in `_covered` so it is not counted twice.
        cutoff = min(missing) - timedelta(microseconds=1) if missing else max(e["received_at"] for e in events)
        self.live.drop_through(cutoff)
        self._remember([e for e in events if e["received_at"] <= cutoff])
        self._covered = found

    def _remember(self, events: list[Row]) -> None:
        """Keep dropped live events for the hot tier's merge (called under `_lock`)."""
        for event in events:
            self._recent.pop(event["event_id"], None)
            self._recent[event["event_id"]] = event
        horizon = utcnow() - timedelta(seconds=self.RECENT_S)
        while self._recent and (len(self._recent) > self.RECENT_MAX
                                or next(iter(self._recent.values()))["received_at"] < horizon):
            self._recent.popitem(last=False)

    def seen_since(self, ts: datetime) -> list[Row]:
        """Every event this sidecar has seen occur at or after `ts` in the last `RECENT_S`, whether a
        build has covered it yet or not; oldest first."""
        self.sync()
        with self._lock:
            seen = {e["event_id"]: e for e in self._recent.values() if e["occurred_at"] >= ts}
        seen.update((e["event_id"], e) for e in self.live.since(ts))
        return sorted(seen.values(), key=lambda e: (e["occurred_at"], e["event_id"]))

    # the hot tier ------------------------------------------------------------------------------------
    def hot_hour(self, hour: datetime) -> HotHour | None:
        """The hot tier's `hour` as counts by (source, event_type, actor_type) and its event ids;
        None when the tier does not hold the hour (not written, expired, or no hot tier at all)."""
        if self.hot is None:
            return None

        def read() -> HotHour | None:
            try:
                events = self.hot.read_hour(hour)
            except Exception as exc:  # the hot tier only speeds reads up: without it the marts answer
                log.warning("the hot tier (%s) did not answer for %s: %s", self.hot.backend, hour_id(hour), exc)
                return None
            if events is None:
                return None
            return HotHour(Counter((e.get("source"), e.get("event_type"), e.get("actor_type")) for e in events),
                           frozenset(e["event_id"] for e in events))

        return self.cached(json.dumps(["hot", hour_id(hour)]), self.HOT_REFRESH_S, read)

    def _workflow_of_keys(self, keys: list[str]) -> str | None:
        unknown = [k for k in keys if k not in self._key_workflows]
        if unknown:
            rows = self.marts.query(
                "select correlation_key, workflow_id from int_correlation_keys_linked where "
                + self.marts.in_list("correlation_key", "keys"), {"keys": unknown})
            found = {r["correlation_key"]: r["workflow_id"] for r in rows}
            for key in unknown:
                self._key_workflows[key] = found.get(key)
        for key in keys:
            if self._key_workflows.get(key):
                return self._key_workflows[key]
        return None

    def live_view(self) -> LiveView:
        """The live events not in the marts, each placed in the workflow its keys already joined."""
        version = self.sync()
        size, now = len(self.live), time.monotonic()
        view = self._live_view
        if view is not None and view.key == (version, size) and now - view.computed_at < 1.0:
            return view.value
        if view is not None and view.key[0] == version and now - view.computed_at < self.LIVE_REFRESH_S:
            return view.value
        events = [dict(e) for e in self.live.since() if e["event_id"] not in self._covered]
        new_workflows: set[str] = set()
        counts: Counter = Counter()
        for event in events:
            keys = list(event.get("correlation_keys") or [])
            known = self._workflow_of_keys(keys) if keys and version is not None else None
            workflow_id = known or event.get("workflow_id")
            event["effective_workflow_id"] = workflow_id
            if workflow_id:
                counts[workflow_id] += 1
                if known is None:
                    new_workflows.add(workflow_id)
        result = LiveView(events, new_workflows, counts, size)
        self._live_view = _Entry((version, size), result, now)
        return result
