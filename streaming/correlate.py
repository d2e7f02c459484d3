"""Correlation of live events, by the rules dbt applies (docs/contract.md §3).

A workflow is a connected component of the event–key graph, its id the component's root key
(lowest priority number, then smallest md5). The sidecar sees only part of the graph: the keys of
the events it received (joined here with a union-find) and, for everything older, the key →
workflow map of the last dbt build (`int_correlation_keys_linked` in the serving snapshot). The
root over both is the id dbt will give the workflow once it has the event.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cc_events.keys import PRIORITY

log = logging.getLogger(__name__)


def _rank(key: str) -> tuple[int, str]:
    kind = key.split(":", 1)[0]
    return PRIORITY.get(kind, 99), hashlib.md5(key.encode()).hexdigest()


def root_of(keys: Iterable[str]) -> str | None:
    keys = list(keys)
    return min(keys, key=_rank) if keys else None


class Snapshot:
    """Read-only queries on the serving snapshot (`resources/serving.py`), reopened when it is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con: Any = None
        self._ino: int | None = None
        self._lock = threading.Lock()

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple] | None:
        """Rows, or None when there is no snapshot (no dbt build yet) or it cannot be read."""
        with self._lock:
            try:
                ino = os.stat(self.path).st_ino
            except FileNotFoundError:
                return None
            try:
                if self._con is None or ino != self._ino:
                    import duckdb

                    if self._con is not None:
                        self._con.close()
                    self._con = duckdb.connect(str(self.path), read_only=True)
                    self._ino = ino
                return self._con.execute(sql, params or []).fetchall()
            except Exception as exc:  # noqa: BLE001 - a missing table or a torn file: no answer, not a crash
                log.debug("serving snapshot query failed: %s", exc)
                return None

    @property
    def version(self) -> int | None:
        return self._ino

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


class Correlator:
    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.snapshot = snapshot
        self._parent: dict[str, str] = {}
        self._known: dict[str, str | None] = {}
        self._known_version: int | None = None

    def _find(self, key: str) -> str:
        parent = self._parent.setdefault(key, key)
        if parent != key:
            parent = self._parent[key] = self._find(parent)
        return parent

    def _union(self, a: str, b: str) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            low, high = sorted((ra, rb), key=_rank)
            self._parent[high] = low

    def _built_workflows(self, keys: list[str]) -> list[str]:
        if self.snapshot is None:
            return []
        if self.snapshot.version != self._known_version:
            self._known.clear()
        missing = [k for k in keys if k not in self._known]
        if missing:
            placeholders = ", ".join("?" for _ in missing)
            rows = self.snapshot.query(
                f"select correlation_key, workflow_id from int_correlation_keys_linked "  # noqa: S608
                f"where correlation_key in ({placeholders})", missing)
            self._known_version = self.snapshot.version
            found = dict(rows or [])
            for key in missing:
                self._known[key] = found.get(key)
        return [w for k in keys if (w := self._known.get(k))]

    def workflow_for(self, keys: Iterable[str]) -> str | None:
        """Join these keys (one event names them all) and return their workflow's id."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return None
        for key in keys[1:]:
            self._union(keys[0], key)
        for workflow in self._built_workflows(keys):
            self._union(keys[0], workflow)
        return self._find(keys[0])
