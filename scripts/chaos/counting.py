"""Counting acknowledged deliveries end to end: landing log → raw → normalized → marts → REST.

Each layer is read as a `Counter` of what it holds (delivery ids for the landing log and
`raw/webhooks/deliveries`, event ids for the rest); `Ledger.check` then finds, per layer, the
acknowledged deliveries whose id or events are missing (lost) or there more than once (duplicated).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import requests

from scripts.chaos.deliveries import Delivery


def landing(data_dir: Path, stream: str = "webhooks") -> Counter:
    """Delivery ids in the landing log; a torn last line (a crash mid-write) is no delivery."""
    found: Counter = Counter()
    for path in sorted((data_dir / "landing" / stream).glob("date=*.jsonl")):
        for line in path.read_bytes().split(b"\n"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("id"):
                found[record["id"]] += 1
    return found


def landing_shared(url: str, stream: str = "webhooks") -> Counter:
    """Delivery ids in the shared landing in Postgres (`CC_LANDING_URL`)."""
    from resources.storage.pg_landing import PgLanding

    landing = PgLanding(url)
    found: Counter = Counter()
    for day in landing.days(stream):
        found.update(r["id"] for r in landing.read(stream, day) if isinstance(r, dict) and r.get("id"))
    return found


def _parquet_column(folder: Path, column: str) -> Counter:
    found: Counter = Counter()
    for path in sorted(folder.glob("date=*/*.parquet")):
        found.update(pq.read_table(path, columns=[column]).column(column).to_pylist())
    return found


def raw_deliveries(data_dir: Path) -> Counter:
    return _parquet_column(data_dir / "lake" / "raw" / "webhooks" / "deliveries", "id")


def normalized_events(data_dir: Path) -> Counter:
    return _parquet_column(data_dir / "lake" / "normalized" / "events", "event_id")


def marts_duckdb(warehouse: Path) -> Counter:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return Counter(r[0] for r in con.execute("select event_id from fct_workflow_events").fetchall())


def marts_postgres(url: str, schema: str) -> Counter:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url) as conn:
        rows = conn.execute(sql.SQL("select event_id from {}.fct_workflow_events").format(sql.Identifier(schema)))
        return Counter(r[0] for r in rows.fetchall())


def rest_events(base_url: str, token: str, page: int = 1000) -> Counter:
    """Every event `/api/events` serves, read forward by time.

    `since` is inclusive, so pages overlap at their last instant: each page's events replace what
    earlier pages held for the instants it covers (the last instant of a page may be cut, the next
    page has it whole), and a duplicate within an instant still shows."""
    by_instant: dict[str, Counter] = {}
    since = "1970-01-01T00:00:00"
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        answer = requests.get(f"{base_url}/api/events", params={"since": since, "limit": page}, headers=headers,
                              timeout=60)
        answer.raise_for_status()
        body = answer.json()
        events = body["events"]
        fresh: dict[str, Counter] = {}
        for event in events:
            fresh.setdefault(event["timestamp"], Counter())[event["id"]] += 1
        by_instant.update(fresh)
        if len(events) < page:
            break
        if body["nextSince"] == since:
            raise RuntimeError(f"more than {page} events at {since}: /api/events cannot page past them")
        since = body["nextSince"]
    total: Counter = Counter()
    for counts in by_instant.values():
        total.update(counts)
    return total


@dataclass
class Finding:
    layer: str
    lost: set[str] = field(default_factory=set)  # delivery ids
    duplicated: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        return f"{self.layer} {len(self.lost)}/{len(self.duplicated)}"


@dataclass
class Ledger:
    """The acknowledged deliveries, and what each layer must hold of them."""

    acked: list[Delivery]

    def deliveries(self, layer: str, found: Counter) -> Finding:
        out = Finding(layer)
        for d in self.acked:
            if found[d.id] == 0:
                out.lost.add(d.id)
            elif found[d.id] > 1:
                out.duplicated.add(d.id)
        return out

    def events(self, layer: str, found: Counter) -> Finding:
        out = Finding(layer)
        for d in self.acked:
            for event in d.events:
                if found[event] == 0:
                    out.lost.add(d.id)
                elif found[event] > 1:
                    out.duplicated.add(d.id)
        return out

    @property
    def event_count(self) -> int:
        return sum(len(d.events) for d in self.acked)


def summary(findings: Iterable[Finding]) -> tuple[set[str], set[str], str]:
    """Deliveries lost / duplicated at any layer, and a note naming the layers where (lost/dup)."""
    findings = list(findings)
    lost = set().union(*(f.lost for f in findings)) if findings else set()
    dup = set().union(*(f.duplicated for f in findings)) if findings else set()
    bad = [str(f) for f in findings if f.lost or f.duplicated]
    checked = "→".join(f.layer for f in findings)
    note = f"checked {checked}" + (f"; lost/dup at {', '.join(bad)}" if bad else "")
    return lost, dup, note
