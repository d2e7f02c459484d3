"""The CDC side of the chaos suite: a lander to kill, a steady writer, and the truth to compare with.

- `python -m scripts.chaos.cdc_landing DATA_DIR` runs the `raw/postgres_cdc/changes` asset again
  and again (as its sensor does, every `--interval` s) with `CC_CDC_PG_URL` from the environment,
  printing one JSON line per run, until it is killed.
- `Writer` commits `ChangeGenerator` transactions at a steady rate in a thread; when the
  connection breaks (a Postgres restart) it reconnects and goes on.
- `TruthSlot` is a second replication slot, created before the writes and read only at the end,
  uninterrupted: every change Postgres committed, each once, with its position.
- `compare` matches what the lake landed against it by (commit_lsn, seq, table, op, key).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
from dagster import AssetKey, BetaWarning, DagsterInstance, materialize

warnings.filterwarnings("ignore", category=BetaWarning)  # as cc_assets.definitions does, before the assets

from cc_assets.sources import raw_assets  # noqa: E402
from resources.ingest.cdc import CdcReader  # noqa: E402
from resources.platform import PlatformResource  # noqa: E402
from resources.storage.cursors import CursorStore  # noqa: E402
from sandbox.source_db import KEYS, ChangeGenerator  # noqa: E402

CDC_KEY = AssetKey(["raw", "postgres_cdc", "changes"])
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
Change = tuple[str, int, str, str, str]  # commit_lsn, seq, table, op, key


def land(data_dir: Path, first_day: date | None = None) -> bool:
    """One run of the CDC asset for today (or `first_day`..today, to rebuild every day landed)."""
    today = datetime.now(UTC).date()
    asset = next(a for a in raw_assets if a.key == CDC_KEY)
    first = first_day or today
    tags = {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": today.isoformat()}
    with DagsterInstance.ephemeral() as instance:
        return materialize([asset], tags=tags, instance=instance, raise_on_error=False, run_config=QUIET,
                           resources={"platform": PlatformResource(data_dir=str(data_dir))}).success


def lander(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--interval", type=float, default=0.3)
    args = parser.parse_args(argv)
    print(json.dumps({"at": time.time(), "started": True}), flush=True)
    while True:
        ok = land(args.data_dir)
        print(json.dumps({"at": time.time(), "ok": ok}), flush=True)
        time.sleep(args.interval)


def key_of(change: dict) -> str:
    table = change.get("table") or change.get("table_name")
    image = change.get("after") if change.get("op") != "delete" else change.get("before")
    if isinstance(image, str):
        image = json.loads(image)
    return str((image or {}).get(KEYS.get(table, "id")))


def identity(change: dict) -> Change:
    return (change["commit_lsn"], int(change["seq"]), change.get("table") or change.get("table_name"),
            change["op"], key_of(change))


def landed_changes(data_dir: Path) -> list[Change]:
    """Every row of every landed `postgres_cdc/changes` partition."""
    rows = []
    for path in sorted(data_dir.joinpath("lake", "raw", "postgres_cdc", "changes").glob("date=*/part-0.parquet")):
        rows += [identity(r) for r in pq.read_table(path).to_pylist()]
    return rows


class TruthSlot:
    """An uninterrupted slot of its own: created (and its snapshot read) before the writes begin."""

    def __init__(self, dsn: str, folder: Path, slot: str = "chaos_truth") -> None:
        self.dsn, self.slot = dsn, slot
        self.cursors = CursorStore(folder / "truth_cursors.json")
        self.snapshot: list[Change] = []
        with self._reader() as reader:
            while True:
                batch = reader.read_batch(5000, timeout_s=0.5)
                self.snapshot += [identity(c) for c in batch.changes]
                reader.confirm(batch)
                if batch.snapshot_done:
                    break

    def _reader(self) -> CdcReader:
        return CdcReader(self.dsn, self.slot, "command_center", self.cursors)

    def changes(self, timeout_s: float = 60.0) -> list[Change]:
        """Every change committed since the snapshot; call it once the writes have stopped. Two
        empty reads in a row mean the walsender has nothing more to send."""
        found: list[Change] = []
        deadline = time.monotonic() + timeout_s
        empty = 0
        with self._reader() as reader:
            while empty < 2:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the truth slot did not run dry in {timeout_s:.0f} s")
                batch = reader.read_batch(5000, timeout_s=1.0)
                found += [identity(c) for c in batch.changes]
                empty = 0 if batch.changes else empty + 1
        return found


class Writer(threading.Thread):
    """Commits `ChangeGenerator` transactions at `rate` per second until stopped; rides out restarts."""

    def __init__(self, dsn: str, rate: float, seed: int = 11) -> None:
        super().__init__(daemon=True)
        self.dsn, self.rate, self.seed = dsn, rate, seed
        self.committed = 0  # transactions whose commit returned
        self.in_doubt = 0  # transactions whose commit raised: Postgres alone knows
        self.reconnects = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        generator = None
        while not self._halt.is_set():
            try:
                if generator is None:
                    generator = ChangeGenerator(self.dsn, seed=self.seed + self.reconnects)
                generator.step()
                self.committed += 1
            except psycopg.Error:
                self.in_doubt += generator is not None
                if generator is not None:
                    with contextlib.suppress(psycopg.Error):
                        generator.close()
                generator, self.reconnects = None, self.reconnects + 1
                self._halt.wait(0.2)
                continue
            self._halt.wait(1 / self.rate)
        if generator is not None:
            generator.close()


@dataclass
class Comparison:
    committed: int  # changes Postgres committed after the snapshot (the truth slot's)
    landed: int
    lost: int
    duplicated: int
    snapshot_lost: int
    snapshot_duplicated: int
    examples: list[str]


def compare(truth_snapshot: list[Change], truth: list[Change], landed: list[Change]) -> Comparison:
    """Snapshot rows by (table, key): positions differ between two slots. Changes by position and content."""
    got_snapshot = Counter((t, k) for _, _, t, op, k in landed if op == "snapshot")
    want_snapshot = Counter((t, k) for _, _, t, _, k in truth_snapshot)
    got = Counter(c for c in landed if c[3] != "snapshot")
    want = Counter(truth)
    lost, extra = want - got, got - want
    examples = [f"lost {c}" for c in list(lost)[:3]] + [f"extra {c}" for c in list(extra)[:3]]
    return Comparison(sum(want.values()), sum(got.values()), sum(lost.values()), sum(extra.values()),
                      sum((want_snapshot - got_snapshot).values()), sum((got_snapshot - want_snapshot).values()),
                      examples)


if __name__ == "__main__":
    lander()
