"""Correlation of live events, by the rules dbt applies (docs/contract.md §3).

A workflow is a connected component of the event–key graph, its id the component's root key
(lowest priority number, then smallest md5). The sidecar sees only part of the graph: the keys of
the events it received (joined here with a union-find) and, for everything older, the key →
workflow map of the last dbt build (`int_correlation_keys_linked`, read through the same `Marts`
as the REST API: the serving snapshot, or the dbt schema on Postgres). The
root over both is the id dbt will give the workflow once it has the event.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable

from cc_events.keys import PRIORITY
from streaming.data.marts import Marts, MartsUnavailable

log = logging.getLogger(__name__)

VERSION_EVERY_S = 0.25


def _rank(key: str) -> tuple[int, str]:
    kind = key.split(":", 1)[0]
    return PRIORITY.get(kind, 99), hashlib.md5(key.encode()).hexdigest()


def root_of(keys: Iterable[str]) -> str | None:
    keys = list(keys)
    return min(keys, key=_rank) if keys else None


class Correlator:
    def __init__(self, marts: Marts | None = None) -> None:
        self.marts = marts
        self._parent: dict[str, str] = {}
        self._known: dict[str, str | None] = {}
        self._known_version: str | None = None
        # The webhook path joins keys; the live state's worker reads roots (streaming/state/).
        self._lock = threading.RLock()
        self._version_seen: str | None = None
        self._version_at = float("-inf")
        self._merged: list[str] = []  # roots that stopped being roots, until `merged()` takes them

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
            self._merged.append(high)
            if len(self._merged) > 100_000:  # nobody takes them (no live state): say so instead
                self._merged = [None]  # type: ignore[list-item]

    def _built_workflows(self, keys: list[str]) -> list[str]:
        if self.marts is None:
            return []
        try:
            version = self._version()
            if version != self._known_version:
                self._known.clear()
                self._known_version = version
            missing = [k for k in keys if k not in self._known]
            if missing and version is not None:
                rows = self.marts.query("select correlation_key, workflow_id from int_correlation_keys_linked"
                                        f" where {self.marts.in_list('correlation_key', 'keys')}", {"keys": missing})
                found = {r["correlation_key"]: r["workflow_id"] for r in rows}
                for key in missing:
                    self._known[key] = found.get(key)
        except MartsUnavailable:
            return []  # no build yet: the live graph alone
        except Exception as exc:  # noqa: BLE001 - an unreadable warehouse must not fail a webhook
            log.warning("correlation lookup failed, using the live graph alone: %s", exc)
            return []
        return [w for k in keys if (w := self._known.get(k))]

    def _version(self) -> str | None:
        """The marts' version, looked at most every VERSION_EVERY_S (a stat per event was 1.5% of
        the sidecar's CPU per webhook under a flood): a new build is noticed that much later."""
        now = time.monotonic()
        if now - self._version_at > VERSION_EVERY_S:
            self._version_seen, self._version_at = self.marts.version(), now
        return self._version_seen

    def workflow_for(self, keys: Iterable[str]) -> str | None:
        """Join these keys (one event names them all) and return their workflow's id."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return None
        with self._lock:
            for key in keys[1:]:
                self._union(keys[0], key)
            for workflow in self._built_workflows(keys):
                self._union(keys[0], workflow)
            return self._find(keys[0])

    def rejoin(self, key_lists: Iterable[Iterable[str]]) -> None:
        """After a new build: join each event's keys to the workflows that build gave them (one
        lookup for all), so events the build does not have yet join what it built."""
        lists = [list(dict.fromkeys(keys)) for keys in key_lists]
        with self._lock:
            self._built_workflows([k for keys in lists for k in keys])
            for keys in lists:
                if keys:
                    self.workflow_for(keys)

    def root(self, key: str) -> str:
        """The workflow `key` belongs to now."""
        with self._lock:
            return self._find(key)

    def merged(self) -> list[str] | None:
        """The workflow ids that joined another workflow since the last call (None: too many were
        not taken, recompute everything)."""
        with self._lock:
            merged, self._merged = self._merged, []
            return None if merged[:1] == [None] else merged

    def built_ids(self) -> set[str]:
        """The built workflows the live keys looked up so far belong to (of the current build)."""
        with self._lock:
            return {w for w in self._known.values() if w}
