"""Raw partitions compared by content: what a clean run landed against what a run under faults did.

A row is its columns as canonical JSON, less `_ingested_at` (when it landed is not what it says);
a partition is the multiset of its rows. A row of the clean run that is missing is lost, a row
beyond the clean run's count is a duplicate (a row that changed counts as one of each).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

SKIPPED_COLUMNS = ("_ingested_at",)

Partitions = dict[tuple[str, str], Counter]  # ("github/pull_requests", "2026-11-20") -> row -> count


def canonical(row: dict) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in SKIPPED_COLUMNS}, sort_keys=True, default=str)


def lake_partitions(data_dir: Path, tables: list[tuple[str, str]]) -> Partitions:
    """Every landed partition of `tables` under `data_dir/lake/raw`."""
    found: Partitions = {}
    for source, entity in tables:
        for path in sorted(data_dir.joinpath("lake", "raw", source, entity).glob("date=*/part-0.parquet")):
            day = path.parent.name.removeprefix("date=")
            found[f"{source}/{entity}", day] = Counter(canonical(r) for r in pq.read_table(path).to_pylist())
    return found


def pg_partitions(url: str, tables: list[tuple[str, str]], schema: str = "raw") -> Partitions:
    """The same, from the Postgres warehouse's `raw.<source>__<entity>` tables."""
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    found: Partitions = {}
    with psycopg.connect(url, row_factory=dict_row) as conn:
        for source, entity in tables:
            name = sql.Identifier(schema, f"{source}__{entity}")
            if conn.execute("select to_regclass(%s)", (f"{schema}.{source}__{entity}",)).fetchone()["to_regclass"]:
                for row in conn.execute(sql.SQL("select * from {}").format(name)).fetchall():
                    day = str(row["_partition_date"])
                    found.setdefault((f"{source}/{entity}", day), Counter())[canonical(row)] += 1
    return found


@dataclass
class Difference:
    lost: int = 0
    duplicated: int = 0
    rows: int = 0  # rows in the clean run
    partitions: int = 0
    differing: list[str] = field(default_factory=list)  # "table date: -lost +extra"

    @property
    def equal(self) -> bool:
        return not (self.lost or self.duplicated)


def compare(clean: Partitions, got: Partitions) -> Difference:
    diff = Difference(rows=sum(sum(c.values()) for c in clean.values()), partitions=len(clean))
    for key in sorted(set(clean) | set(got)):
        want, have = clean.get(key, Counter()), got.get(key, Counter())
        lost, extra = sum((want - have).values()), sum((have - want).values())
        if lost or extra:
            diff.lost += lost
            diff.duplicated += extra
            diff.differing.append(f"{key[0]} {key[1]}: -{lost} +{extra}")
    return diff
