"""Conditional requests that outlive the process: requests-cache over one SQLite file.

GitHub answers `If-None-Match` with 304 when nothing changed, and a 304 costs no rate limit; but
a client may only send the ETag if it can give back the body it stands for. Kept in memory,
every Dagster run (a new process) would start cold and spend its budget again. requests-cache
keeps each 200 response (body and headers, `Link` included) in a SQLite file under
`$CC_DATA_DIR/state/`, shared by every run and the sensors' probes; every request it has a copy
for goes out conditional (`expire_after=0`: always revalidate), and a 304 comes back as the copy,
marked `from_cache`. Tokens are not stored (requests-cache drops `Authorization` from what it keeps).

SQLite handles several processes at once (WAL, a busy timeout); entries older than
`max_age_days` are dropped, so listings of long-closed PRs do not pile up: at most once a day per
file, as dropping them reads every entry back and rewrites the file (VACUUM), and each of the six
GitHub raw assets opens the cache (one 200k-event run leaves 114 MiB of pages: 0.5 s to prune).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from requests_cache import EXPIRE_IMMEDIATELY, CachedSession, SQLiteCache


def revalidating_session(path: Path | None, max_age_days: float = 14.0) -> CachedSession:
    """A session that revalidates every cached GET with its ETag; `path` None: in memory."""
    if path is None:
        backend = "memory"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = SQLiteCache(path, wal=True, busy_timeout=30_000)
    session = CachedSession(backend=backend, expire_after=EXPIRE_IMMEDIATELY, allowable_codes=(200,))
    if path is None or _prune_due(path):
        session.cache.delete(older_than=timedelta(days=max_age_days))
    return session


def _prune_due(path: Path, every_s: float = 86_400.0) -> bool:
    """Whether a day has passed since the cache at `path` was last pruned; if so, it is now due and
    marked done (a marker file's mtime), so processes opening it together prune it once."""
    marker = path.with_name(f"{path.name}.pruned")
    try:
        if time.time() - marker.stat().st_mtime < every_s:
            return False
    except FileNotFoundError:
        pass
    marker.touch()
    return True
