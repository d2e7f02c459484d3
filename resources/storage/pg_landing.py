"""The landing log in Postgres (`CC_LANDING_URL=postgresql://…`): one store every sidecar replica,
metrics agent and the Dagster sensors share, for replicas on several hosts with no shared volume.

Three tables in the `cc_landing` schema, made on first use:

- `lines`: one row per landed line (`seq` in commit batches' order, `stream`, `day`, `writer`,
  the line's first key, `received_at`, the line itself as `LandingLog` writes it, as bytes).
- `keys`: every key (delivery id, alias, sample id) of a landed line, unique per stream: the
  dedupe across hosts. A copy whose key another transaction holds waits for it (Postgres's unique
  index does) and is a duplicate once that one commits, landed if it rolls back: "duplicate"
  always means "durable", with or without Redis, whatever Redis forgot.
- `marks`: lines landed per stream, day and writer (each writer its own row, so writers never
  wait for each other on it): `size` sums them, the change marker the sensors compare, exact
  even when transactions commit out of `seq` order (a `max(seq)` would miss a late one).

One batch is one transaction of one statement (`commit`): the keys inserted (`on conflict do
nothing`), then the lines whose keys were all new, then the marks. The reader side has the
interface of `LandingLog` (`days`, `size`, `read`, `path`, `files`) for the raw assets, sensors
and alert rules, plus `recent` and `heads` for the sidecar's catch-up and the rules' tail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

SCHEMA = "cc_landing"
# A copy of a key committed this recently may not be published yet (its replica may have died
# between its commit and its publish): `commit` says so for each duplicate.
RECENT_S = 60.0
CONNECT_TIMEOUT_S = 5
# A statement waits this long at most (on another host's uncommitted copy of a key, a lock): then
# its batch fails (503, retried by the sender) rather than hold every request behind it.
STATEMENT_TIMEOUT_MS = 30_000

_DDL = """
create schema if not exists {schema};
create table if not exists {schema}.lines (
    seq bigserial primary key,
    stream text not null,
    day date not null,
    writer text not null,
    key text,
    received_at timestamp not null,
    line bytea {compression} not null
);
create index if not exists lines_stream_day_seq on {schema}.lines (stream, day, seq);
create table if not exists {schema}.keys (
    stream text not null,
    key text not null,
    landed_at timestamptz not null default now(),
    primary key (stream, key)
);
-- Keys leave after the redelivery window (`prune_keys`): BRIN, as they are inserted in time order.
create index if not exists keys_landed_at on {schema}.keys using brin (landed_at);
create table if not exists {schema}.marks (
    stream text not null,
    day date not null,
    writer text not null,
    lines bigint not null,
    primary key (stream, day, writer)
);
"""

# One batch, one statement. `k`: the keys of every line (`n`: the line's place in the batch),
# inserted in a fixed order so two hosts' batches cannot deadlock; a line with a key that was
# not inserted is a duplicate (`dup`); the others are inserted in batch order and counted.
_COMMIT = f"""
with k as (
    select * from unnest(%(kn)s::int[], %(ks)s::text[], %(kk)s::text[]) as k(n, stream, key)
), ins as (
    insert into {SCHEMA}.keys (stream, key)
    select stream, key from k order by stream, key
    on conflict do nothing
    returning stream, key
), dup as (
    select distinct k.n from k left join ins using (stream, key) where ins.key is null
), l as (
    insert into {SCHEMA}.lines (stream, day, writer, key, received_at, line)
    select x.stream, x.day, %(writer)s, x.key, x.at, x.line
    from unnest(%(n)s::int[], %(s)s::text[], %(d)s::date[], %(key)s::text[], %(at)s::timestamp[],
                %(line)b::bytea[]) as x(n, stream, day, key, at, line)
    where x.n not in (select n from dup)
    order by x.n
    returning stream, day
), m as (
    insert into {SCHEMA}.marks (stream, day, writer, lines)
    select stream, day, %(writer)s, count(*) from l group by stream, day
    on conflict (stream, day, writer) do update set lines = marks.lines + excluded.lines
)
select array(select n from dup),
       array(select k.stream from k join ins using (stream, key) where k.n in (select n from dup)),
       array(select k.key from k join ins using (stream, key) where k.n in (select n from dup))
"""

_ensured: set[str] = set()
_ensure_lock = threading.Lock()


def connect(url: str, autocommit: bool = False):
    """A connection to the landing's database, its tables made on the first one of this process."""
    import psycopg

    conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S,
                           options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}", application_name="cc-landing")
    if url not in _ensured:
        try:
            with _ensure_lock:
                if url not in _ensured:
                    _make_tables(conn)
                    _ensured.add(url)
        except BaseException:
            conn.close()
            raise
    return conn


def _make_tables(conn) -> None:
    # Replicas starting together would race on `create … if not exists` (a unique violation in
    # the catalog): one at a time.
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('cc_landing schema'))")
        # lz4 where the server has it: a payload compressed by pglz cost the server more CPU than
        # the rest of its work for the line.
        lz4 = conn.execute("select 'lz4' = any(enumvals) from pg_settings where name = 'default_toast_compression'"
                           ).fetchone()
        conn.execute(_DDL.format(schema=SCHEMA, compression="compression lz4" if lz4 and lz4[0] else ""))
    if not conn.autocommit:
        conn.commit()


@dataclass
class Line:
    stream: str
    at: datetime  # picks the day (received, or a sample's own time)
    data: bytes  # one JSON line, without its newline
    keys: tuple[str, ...] = ()


def commit(conn, writer: str, lines: list[Line]) -> dict[int, bool]:
    """Land `lines` in one transaction. Returns the places of those not landed because another
    copy of one of their keys is (now) committed, each with whether that copy was committed within
    `RECENT_S` (by the server's clock). Raises psycopg's error (nothing landed) on failure."""
    if not lines:
        return {}
    kn, ks, kk = [], [], []
    for n, line in enumerate(lines):
        for key in dict.fromkeys(line.keys):
            kn.append(n)
            ks.append(line.stream)
            kk.append(_stored_key(key))
    params = {"kn": kn, "ks": ks, "kk": kk, "writer": writer, "n": list(range(len(lines))),
              "s": [x.stream for x in lines], "d": [x.at.date() for x in lines],
              "key": [_stored_key(x.keys[0]) if x.keys else None for x in lines], "at": [_naive(x.at) for x in lines],
              "line": [x.data for x in lines]}
    try:
        dup, orphan_streams, orphan_keys = conn.execute(_COMMIT, params).fetchone()
        if orphan_keys:  # new aliases of a copy that is a duplicate by another key: not landed, not kept
            conn.execute(f"delete from {SCHEMA}.keys where (stream, key) in "
                         "(select * from unnest(%s::text[], %s::text[]))", [orphan_streams, orphan_keys])
        recent: set[tuple[str, str]] = set()
        if dup:  # a statement of its own: the one above saw the rows as they were when it began
            wanted = [(lines[n].stream, _stored_key(k)) for n in dup for k in lines[n].keys]
            recent = {(s, k) for s, k in conn.execute(
                f"select stream, key from {SCHEMA}.keys where (stream, key) in"
                " (select * from unnest(%s::text[], %s::text[])) and landed_at > now() - make_interval(secs => %s)",
                [[s for s, _ in wanted], [k for _, k in wanted], RECENT_S]).fetchall()}
        conn.commit()
    except BaseException:
        _rollback(conn)
        raise
    return {n: any((lines[n].stream, _stored_key(k)) in recent for k in lines[n].keys) for n in dup}


def prune_keys(conn, keep_days: float, chunk: int = 10_000) -> int | None:
    """Forget keys landed more than `keep_days` ago, a chunk per transaction (`conn` in autocommit);
    how many, or None while another process is at it (one at a time across replicas). The lines
    stay: only a redelivery after the window lands again, as with the files' id index (the raw
    asset keeps one row per delivery)."""
    if not conn.execute("select pg_try_advisory_lock(hashtext('cc_landing prune'))").fetchone()[0]:
        return None
    try:
        total = 0
        while True:
            done = conn.execute(
                f"delete from {SCHEMA}.keys where ctid = any(array(select ctid from {SCHEMA}.keys"
                " where landed_at < now() - make_interval(secs => %s) limit %s))",
                [keep_days * 86400, chunk]).rowcount
            total += done
            if done < chunk:
                return total
    finally:
        conn.execute("select pg_advisory_unlock(hashtext('cc_landing prune'))")


def _stored_key(key: str) -> str:
    """A key as `keys` holds it: Postgres text cannot hold NUL, and a body's id may (`"a\\u0000b"`):
    such a key is stored as its digest, so it still dedupes and never fails its batch."""
    if "\x00" not in key:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _rollback(conn) -> None:
    with contextlib.suppress(Exception):  # a broken connection: its transaction is gone with it
        conn.rollback()


def _naive(at: datetime) -> datetime:
    """UTC without an offset, as the sidecar's times are."""
    return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)


def redacted(url: str) -> str:
    """The URL without its password, to show where a line sits."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = f":{parsed.port}" if parsed.port else ""
    user = f"{parsed.username}@" if parsed.username else ""
    return f"{parsed.scheme}://{user}{host}{port}{parsed.path}"


class PgLanding:
    """The landing log's interface over the `cc_landing` tables (`resources.storage.landing.landing_for`)."""

    def __init__(self, url: str, writer: str | None = None) -> None:
        self.url = url
        self.writer = writer or ""

    def __repr__(self) -> str:
        return f"PgLanding({redacted(self.url)!r})"

    def path(self, stream: str, day: date) -> str:
        """Where `stream`'s lines of `day` sit, for messages (no file: a table's rows)."""
        return f"{redacted(self.url)}#{SCHEMA}.lines?stream={stream}&day={day.isoformat()}"

    def files(self, stream: str, day: date) -> list:
        """No files: readers that want them read `read` instead."""
        return []

    def days(self, stream: str) -> list[date]:
        with connect(self.url, autocommit=True) as conn:
            rows = conn.execute(f"select distinct day from {SCHEMA}.marks where stream = %s order by day",
                                [stream]).fetchall()
        return [r[0] for r in rows]

    def size(self, stream: str, day: date) -> int:
        """Lines landed for `day` by every writer: grows with every commit that lands one."""
        with connect(self.url, autocommit=True) as conn:
            row = conn.execute(f"select coalesce(sum(lines), 0) from {SCHEMA}.marks where stream = %s and day = %s",
                               [stream, day]).fetchone()
        return int(row[0])

    def append(self, stream: str, records: Iterable[dict[str, Any]], received_at: datetime,
               keys: Iterable[str] | None = None) -> int:
        """Land records for `received_at`'s day (one transaction); with `keys` (one per record) a
        record whose key is landed already is not landed again. Returns how many were landed."""
        records = list(records)
        keyed = list(keys) if keys is not None else [None] * len(records)
        lines = [Line(stream, received_at, json.dumps({**r, "_received_at": received_at.isoformat()},
                                                      separators=(",", ":"), default=str).encode(),
                      (str(k),) if k is not None else ()) for r, k in zip(records, keyed, strict=True)]
        if not lines:
            return 0
        with connect(self.url) as conn:
            return len(lines) - len(commit(conn, self.writer or f"append-{socket.gethostname()}", lines))

    def read(self, stream: str, day: date) -> Iterator[dict[str, Any] | str]:
        """A day's records in landing order; a line that is not JSON comes back as its text."""
        with connect(self.url) as conn, conn.cursor(name="cc_landing_read") as cursor:
            cursor.itersize = 2000
            cursor.execute(f"select line from {SCHEMA}.lines where stream = %s and day = %s order by seq",
                           [stream, day])
            for (line,) in cursor:
                text = bytes(line).decode("utf-8", errors="replace")
                try:
                    yield json.loads(text)
                except ValueError:
                    yield text

    def recent(self, stream: str, since: datetime, until: datetime,
               limit: int) -> list[tuple[datetime, bytes]]:
        """Lines received in [since, until), oldest first, at most the newest `limit`."""
        with connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                f"select received_at, line from {SCHEMA}.lines where stream = %s and day between %s and %s"
                " and received_at >= %s and received_at < %s order by seq desc limit %s",
                [stream, since.date(), until.date(), since, until, limit]).fetchall()
        return sorted(((at, bytes(line)) for at, line in rows), key=lambda r: r[0])

    def heads(self, stream: str, since: datetime, until: datetime, after_seq: int = 0) -> list[tuple[int, bytes]]:
        """(seq, head) of the lines received from `since` past `after_seq`: each line cut before a
        spliced `,"payload":` and closed (the rules need its fields, not the payload's kilobytes)."""
        with connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                f"select seq, case when p > 0 then substring(line from 1 for p - 1) || '\\x7d'::bytea else line end"
                f" from (select seq, line, position('\\x2c227061796c6f6164223a'::bytea in line) as p"
                f" from {SCHEMA}.lines where stream = %s and day between %s and %s and received_at >= %s"
                " and seq > %s) as found order by seq",
                [stream, since.date(), until.date() + timedelta(days=1), since, after_seq]).fetchall()
        return [(seq, bytes(head)) for seq, head in rows]

    def drop(self, stream: str) -> None:
        """Forget everything `stream` landed (a source starting over from a fresh snapshot)."""
        with connect(self.url) as conn:
            for table in ("lines", "keys", "marks"):
                conn.execute(f"delete from {SCHEMA}.{table} where stream = %s", [stream])
            conn.commit()
