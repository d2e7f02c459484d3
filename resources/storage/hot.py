"""The hot tier: the last hour(s) of normalized events and live counters, with a TTL.

Chosen by configuration like the sidecar's broker: with `CC_REDIS_URL` the hours live in Redis
under the seeds' `<kind>:<entity>:<id>` key naming, otherwise in small files under
`$CC_DATA_DIR/hot/` that any process on the machine (the sidecar, `make sql`) can read, so the
embedded setup needs no server. Either way an hour expires `CC_HOT_TTL_S` after it was written:

    events:hour:<YYYY-MM-DDTHH>     sorted set, score = event time (ms), member = the event as JSON
    counter:events:<YYYY-MM-DDTHH>  hash, `<source>|<event_type>` -> events in that hour

Writing an hour replaces it whole (one MULTI/EXEC in Redis, one rename on disk), so re-running a
partition never double-counts.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pyarrow as pa
import pyarrow.parquet as pq

from resources.settings import Settings

HOUR_FORMAT = "%Y-%m-%dT%H"


def hour_id(hour: datetime) -> str:
    return hour.strftime(HOUR_FORMAT)


def _jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in row.items()}


def counters_of(events: list[dict]) -> dict[str, int]:
    return dict(Counter(f"{e.get('source')}|{e.get('event_type')}" for e in events))


@dataclass(frozen=True)
class HotWrite:
    hour: str
    events: int
    ttl_s: int
    backend: str


class HotStore(ABC):
    backend: str

    @abstractmethod
    def replace_hour(self, hour: datetime, events: list[dict], ttl_s: int) -> HotWrite:
        """Make `events` the hour's whole content, expiring `ttl_s` from now."""

    @abstractmethod
    def hour_events(self, hour: datetime) -> list[dict]:
        """The hour's events, oldest first ([] once expired)."""

    @abstractmethod
    def read_hour(self, hour: datetime) -> list[dict] | None:
        """The hour's events, or None when the tier does not hold the hour (never written, or
        expired): a reader then asks a colder tier instead of taking it for an hour with no events."""

    @abstractmethod
    def counters(self, hour: datetime) -> dict[str, int]: ...

    @abstractmethod
    def hours(self) -> list[str]:
        """Hours currently held (not expired)."""

    def memory_bytes(self) -> int | None:
        return None

    def close(self) -> None:  # noqa: B027 - optional
        pass


class RedisHotStore(HotStore):
    backend = "redis"

    def __init__(self, url: str) -> None:
        import redis  # optional at import: only a configured Redis needs it

        parsed = urlparse(url)
        # `?channel=` belongs to the sidecar's broker; redis-py would refuse it.
        self.client = redis.Redis.from_url(urlunparse(parsed._replace(query="")), socket_timeout=10)

    @staticmethod
    def _keys(hour: datetime) -> tuple[str, str]:
        return f"events:hour:{hour_id(hour)}", f"counter:events:{hour_id(hour)}"

    def replace_hour(self, hour: datetime, events: list[dict], ttl_s: int) -> HotWrite:
        events_key, counter_key = self._keys(hour)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(events_key, counter_key)
        members = {}
        for event in events:
            row = _jsonable(event)
            at = datetime.fromisoformat(row["event_at"]) if row.get("event_at") else hour
            members[json.dumps(row, sort_keys=True, default=str)] = at.replace(tzinfo=UTC).timestamp() * 1000
        for start in range(0, len(members), 5000):
            chunk = dict(list(members.items())[start:start + 5000])
            pipe.zadd(events_key, chunk)
        counters = counters_of(events)
        if counters:
            pipe.hset(counter_key, mapping=counters)
        pipe.expire(events_key, ttl_s)
        pipe.expire(counter_key, ttl_s)
        pipe.execute()
        return HotWrite(hour_id(hour), len(events), ttl_s, self.backend)

    def hour_events(self, hour: datetime) -> list[dict]:
        return [json.loads(m) for m in self.client.zrange(self._keys(hour)[0], 0, -1)]

    def read_hour(self, hour: datetime) -> list[dict] | None:
        # Redis keeps no empty sorted set: an hour written with no events reads as not held, and a
        # reader asks a colder tier, which has no events for it either.
        return self.hour_events(hour) or None

    def counters(self, hour: datetime) -> dict[str, int]:
        raw = self.client.hgetall(self._keys(hour)[1])
        return {k.decode(): int(v) for k, v in raw.items()}

    def hours(self) -> list[str]:
        return sorted(k.decode().rsplit(":", 1)[1] for k in self.client.scan_iter("events:hour:*"))

    def memory_bytes(self) -> int | None:
        return sum(self.client.memory_usage(k) or 0 for k in self.client.scan_iter("*:hour:*")) + sum(
            self.client.memory_usage(k) or 0 for k in self.client.scan_iter("counter:events:*"))

    def close(self) -> None:
        self.client.close()


class FileHotStore(HotStore):
    """One Parquet file per hour under `root`, its expiry in the file's metadata."""

    backend = "file"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, hour: datetime) -> Path:
        return self.root / "events" / f"hour={hour_id(hour)}.parquet"

    def _live(self, path: Path) -> pa.Table | None:
        if not path.exists():
            return None
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            return None
        expires = float((table.schema.metadata or {}).get(b"expires_at", b"0"))
        return table if expires > time.time() else None

    def replace_hour(self, hour: datetime, events: list[dict], ttl_s: int) -> HotWrite:
        path = self._path(hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([_jsonable(e) for e in events]) if events else pa.table({})
        table = table.replace_schema_metadata({"expires_at": str(time.time() + ttl_s)})
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        self._expire()
        return HotWrite(hour_id(hour), len(events), ttl_s, self.backend)

    def _expire(self) -> None:
        for path in (self.root / "events").glob("hour=*.parquet"):
            if self._live(path) is None:
                path.unlink(missing_ok=True)

    def hour_events(self, hour: datetime) -> list[dict]:
        return self.read_hour(hour) or []

    def read_hour(self, hour: datetime) -> list[dict] | None:
        table = self._live(self._path(hour))
        return None if table is None else table.to_pylist()

    def counters(self, hour: datetime) -> dict[str, int]:
        return counters_of(self.hour_events(hour))

    def hours(self) -> list[str]:
        return sorted(p.name[5:-8] for p in (self.root / "events").glob("hour=*.parquet")
                      if self._live(p) is not None)

    def memory_bytes(self) -> int | None:
        return sum(p.stat().st_size for p in (self.root / "events").glob("hour=*.parquet"))


def hot_store(settings: Settings) -> HotStore:
    return RedisHotStore(settings.redis_url) if settings.redis_url else FileHotStore(settings.hot_dir)
