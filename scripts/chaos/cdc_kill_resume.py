"""The CDC reader killed (SIGKILL) again and again under a steady write load, and resumed.

The lander is the real `raw/postgres_cdc/changes` asset, run in a loop by a subprocess as its
sensor would run it; each kill lands at a random moment of a run (reading, landing, confirming,
writing the lake partition). A second, uninterrupted replication slot is the truth: at the end
every change Postgres committed must be in the lake once, by (commit_lsn, seq, table, op, key).
Recovery is the longest time from a kill to the next successful run of a fresh lander.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from resources.storage.cursors import CursorStore
from sandbox.pg_cluster import PgCluster, restartable_cluster
from sandbox.source_db import setup_source_db
from scripts.chaos import Context, Row, Scenario
from scripts.chaos.cdc_landing import Comparison, TruthSlot, Writer, compare, land, landed_changes
from scripts.chaos.env import environment
from scripts.chaos.harness import ROOT


@dataclass
class Kills:
    kills: int = 6
    seconds: float = 30.0  # of write load
    rate: float = 40.0  # transactions per second
    seed: int = 1234


@dataclass
class KillOutcome:
    row: Row
    comparison: Comparison
    kills: int = 0
    recoveries: list[float] = field(default_factory=list)
    transactions: int = 0


class Lander:
    """One `python -m scripts.chaos.cdc_landing` process; its stdout lines say when a run ended."""

    def __init__(self, data_dir: Path, env: dict[str, str], number: int) -> None:
        self.out = data_dir.parent / f"lander-{number}.jsonl"
        with self.out.open("wb") as out, (data_dir.parent / f"lander-{number}.log").open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scripts.chaos.cdc_landing", str(data_dir)],
                cwd=ROOT, env=env, stdout=out, stderr=err)

    def runs(self) -> list[dict]:
        lines = self.out.read_text().splitlines() if self.out.exists() else []
        return [r for r in (json.loads(line) for line in lines if line.endswith("}")) if "ok" in r]

    def wait_for_run(self, timeout_s: float, ok: bool = True) -> float:
        """The time the first (successful) run of this process ended."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = [r["at"] for r in self.runs() if r["ok"] or not ok]
            if done:
                return done[0]
            if self.proc.poll() is not None:
                raise RuntimeError(f"the lander exited with {self.proc.returncode}; see {self.out.with_suffix('.log')}")
            time.sleep(0.05)
        raise TimeoutError(f"no successful CDC run in {timeout_s:.0f} s; see {self.out.with_suffix('.log')}")

    def kill(self) -> float:
        self.proc.kill()
        self.proc.wait(10)
        return time.time()


def source_database(cluster: PgCluster, name: str) -> str:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    dsn = cluster.url(name)
    setup_source_db(dsn)
    return dsn


def run_kills(workdir: Path, plan: Kills) -> KillOutcome:
    rng = random.Random(plan.seed)
    data_dir = workdir / "data"
    first_day = datetime.now(UTC).date()
    with restartable_cluster(workdir) as cluster:
        dsn = source_database(cluster, "business")
        truth = TruthSlot(dsn, workdir)
        env = {"CC_CDC_PG_URL": dsn, "CC_DATA_DIR": str(data_dir)}
        child_env = {**os.environ, **env}
        number = 0
        lander = Lander(data_dir, child_env, number)
        lander.wait_for_run(120)  # the slot and its snapshot exist before the first write
        cursor = CursorStore(data_dir / "state" / "cursors.json").get("postgres_cdc/command_center")
        if not (cursor or {}).get("snapshot_done"):
            raise RuntimeError(f"the first CDC run did not finish its snapshot: {cursor}")
        writer = Writer(dsn, plan.rate, plan.seed)
        writer.start()
        recoveries: list[float] = []
        started = time.monotonic()
        try:
            for i in range(plan.kills):
                # Kill somewhere in the middle of a run of a lander that has landed at least once.
                lander.wait_for_run(120)
                time.sleep(rng.uniform(0.05, 1.0))
                killed_at = lander.kill()
                number += 1
                lander = Lander(data_dir, child_env, number)
                recoveries.append(lander.wait_for_run(120) - killed_at)
                left = plan.seconds * (i + 1) / plan.kills - (time.monotonic() - started)
                if left > 0:
                    time.sleep(left)
        finally:
            writer.stop()
            lander.kill()  # at a random point too: the next run after the load lands the rest
        with environment(env):
            if not land(data_dir, first_day):  # the sensor's next run, after the load
                raise RuntimeError("the CDC run after the load failed")
        result = compare(truth.snapshot, truth.changes(), landed_changes(data_dir))
    row = Row("cdc_kill_resume", attempts=result.committed, acked_lost=result.lost + result.snapshot_lost,
              duplicated=result.duplicated + result.snapshot_duplicated,
              recovery_s=max(recoveries) if recoveries else None,
              notes=f"{plan.kills} kill -9s of the lander, {writer.committed:,} transactions "
                    f"({writer.in_doubt} in doubt), {result.landed:,} changes landed + "
                    f"{len(truth.snapshot)} snapshot rows" + (f"; {'; '.join(result.examples)}" if result.examples else ""))
    return KillOutcome(row, result, plan.kills, recoveries, writer.committed)


def run(ctx: Context) -> list[Row]:
    kills = max(3, int(ctx.seconds / 7))
    return [run_kills(ctx.workdir, Kills(kills=kills, seconds=max(10.0, ctx.seconds - 20), seed=ctx.seed)).row]


SCENARIO = Scenario("cdc_kill_resume", run, 45, needs=("pg_ctl",))
