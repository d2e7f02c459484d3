"""A conditional-request cache that outlives the process: ETag, body and `Link` per request.

GitHub answers `If-None-Match` with 304 when nothing changed, and a 304 costs no rate limit;
but a client may only send the ETag if it can give back the body it stands for. Kept in memory,
every Dagster run (a new process) starts cold and spends its budget again. Here the cache is one
SQLite file under `$CC_DATA_DIR/state/`, shared by every run and the sensors' probes.

SQLite handles several processes at once (WAL, a busy timeout); an entry not used for
`max_age_days` is dropped when a cache is opened, so listings of long-closed PRs do not pile up.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any


class ConditionalCache:
    """(etag, data, link) by request key, for one source."""

    def __init__(self, path: Path | str, source: str, max_age_days: float = 14.0) -> None:
        self.path = Path(path)  # ":memory:": a cache that lives as long as this object
        self.source = source
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")
        self._db.execute(
            "create table if not exists responses (source text not null, key text not null, etag text not null,"
            " data text not null, link text not null, used_at real not null, primary key (source, key))"
        )
        self._db.execute("delete from responses where used_at < ?", (time.time() - max_age_days * 86400,))

    def get(self, key: str) -> tuple[str, Any, str] | None:
        row = self._db.execute("select etag, data, link from responses where source = ? and key = ?",
                               (self.source, key)).fetchone()
        if row is None:
            return None
        self._db.execute("update responses set used_at = ? where source = ? and key = ?",
                         (time.time(), self.source, key))
        return row[0], json.loads(row[1]), row[2]

    def put(self, key: str, etag: str, data: Any, link: str) -> None:
        self._db.execute(
            "insert into responses (source, key, etag, data, link, used_at) values (?, ?, ?, ?, ?, ?)"
            " on conflict (source, key) do update set etag = excluded.etag, data = excluded.data,"
            " link = excluded.link, used_at = excluded.used_at",
            (self.source, key, etag, json.dumps(data, separators=(",", ":")), link, time.time()),
        )

    def __len__(self) -> int:
        return self._db.execute("select count(*) from responses where source = ?", (self.source,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()
