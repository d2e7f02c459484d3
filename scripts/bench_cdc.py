"""CDC lag: a commit in the business database → the change in the lake's Parquet partition.

Usage: python -m scripts.bench_cdc [--seconds 90] [--tps 20] [--interval 15,0]

Starts a throwaway `wal_level=logical` cluster with the sandbox business schema, commits
transactions at `--tps` from a background thread, and meanwhile runs `postgres_cdc_job` the way
its sensor does, every `--interval` seconds (15 is the sensor's; 0 runs back to back, the
pipeline's own floor). A change's lag is the end of the run that first put it in the lake minus
its commit timestamp from the WAL. Runs execute in this process; the daemon's run launcher adds
its process start-up (a few seconds) on top. Prints medians and p99s; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from scripts.benchlib import quantile


def measure(dsn: str, data_dir: Path, seconds: float, tps: float, interval: float) -> dict:
    from dagster import DagsterInstance

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from resources.storage.lake import Lake
    from sandbox.source_db import ChangeGenerator

    platform = PlatformResource(data_dir=str(data_dir))
    job = defs.resolve_job_def("postgres_cdc_job")
    stop = threading.Event()
    committed = [0]

    def commit_changes() -> None:
        with ChangeGenerator(dsn) as generator:
            next_at = time.monotonic()
            while not stop.is_set():
                generator.step()
                committed[0] += 1
                next_at += 1.0 / tps
                time.sleep(max(0.0, next_at - time.monotonic()))

    seen: set[tuple] = set()
    lags: list[float] = []
    runs: list[float] = []
    writer = threading.Thread(target=commit_changes, daemon=True)
    with DagsterInstance.ephemeral() as instance:
        # The first run takes the snapshot; lag is measured on the changes that follow it.
        today = datetime.now(UTC).date()
        job.execute_in_process(instance=instance, partition_key=today.isoformat(), resources={"platform": platform})
        for row in _landed(Lake(data_dir / "lake"), today):
            seen.add((row["commit_lsn"], row["seq"]))
        writer.start()
        deadline = time.monotonic() + seconds
        drain = False
        while True:
            started = time.monotonic()
            today = datetime.now(UTC).date()
            job.execute_in_process(instance=instance, partition_key=today.isoformat(),
                                   resources={"platform": platform})
            visible = datetime.now(UTC).replace(tzinfo=None)
            runs.append(time.monotonic() - started)
            for row in _landed(Lake(data_dir / "lake"), today):
                key = (row["commit_lsn"], row["seq"])
                if key not in seen and row["committed_at"] is not None:
                    seen.add(key)
                    lags.append((visible - row["committed_at"]).total_seconds())
            if drain:
                break
            if time.monotonic() >= deadline:
                stop.set()
                writer.join()
                drain = True  # one more run picks up what was committed last
                continue
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return {"interval": interval, "transactions": committed[0], "changes": len(lags),
            "median": statistics.median(lags), "p99": quantile(lags, 0.99), "max": max(lags),
            "run_median": statistics.median(runs)}


def _landed(lake, day) -> list[dict]:
    table = lake.read(("raw", "postgres_cdc", "changes"), day)
    return [] if table is None else table.select(["commit_lsn", "seq", "committed_at"]).to_pylist()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--tps", type=float, default=20)
    parser.add_argument("--interval", default="15,0")
    args = parser.parse_args()

    import os

    from sandbox.pg_cluster import throwaway_cluster
    from sandbox.source_db import setup_source_db

    rows = []
    for interval in [float(x) for x in args.interval.split(",")]:
        with tempfile.TemporaryDirectory(prefix="cc-bench-cdc-") as tmp, throwaway_cluster() as dsn:
            setup_source_db(dsn)
            os.environ["CC_CDC_PG_URL"] = dsn
            result = measure(dsn, Path(tmp) / "data", args.seconds, args.tps, interval)
            rows.append(result)
            print(f"interval {interval:g}s: {result}", flush=True)
    print()
    print("| run every | transactions | changes | lag median | lag p99 | lag max | run median |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        label = f"{r['interval']:g} s" if r["interval"] else "back to back"
        print(f"| {label} | {r['transactions']:,} | {r['changes']:,} | {r['median']:.2f} s | {r['p99']:.2f} s "
              f"| {r['max']:.2f} s | {r['run_median']:.2f} s |")


if __name__ == "__main__":
    main()
