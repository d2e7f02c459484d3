"""The app store's tables in a Postgres schema (`CC_APP_SCHEMA`), for a warehouse on Postgres:
every replica of the sidecar reads and writes the same dashboards, widgets and command log.

`AppStore`'s own statements, rewritten for Postgres (`?` placeholders, `on conflict do nothing`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from streaming.data.app_store import SQLITE_SCHEMA, AppStore
from streaming.data.marts import MartsUnavailable


class AppStoreUnavailable(MartsUnavailable):
    """The app store's Postgres cannot be reached (restarting, down): the routes' 503 with
    Retry-After, as for missing marts, not a 500."""


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
""" + SQLITE_SCHEMA[SQLITE_SCHEMA.index("create table if not exists charlie_commands"):]

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
        # The schema is made on first use, not here: the app builds its store at start-up, and a
        # sidecar must start (and land webhooks) while Postgres is down.
        self._ready = False

    def _prepare(self, conn: Any) -> None:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('cc_app_schema'))")  # replicas starting at once
            conn.execute(f"create schema if not exists {self.schema}")
            conn.execute(f"set search_path = {self.schema}")
            for statement in filter(str.strip, _PG_SCHEMA.split(";")):
                conn.execute(statement)
            self._seed(_PgSession(conn))
        self._ready = True

    def _first(self, conn: Any, first: Callable[[Any], Any]) -> Any:
        if not self._ready:
            self._prepare(conn)
        return first(conn)

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
                    result = self._first(conn, first)
                except psycopg.OperationalError:
                    if not reused:
                        raise
                    conn.close()
                    conn, _ = self._connection()
                    result = self._first(conn, first)
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
