"""Postgres restarted, and once killed -9, in the middle of everything that uses it.

One throwaway cluster is at once the warehouse (`CC_WAREHOUSE=postgres`: raw partitions COPY
into it), the sidecar's app store (dashboards in `CC_APP_SCHEMA`) and a CDC source (a business
database under a steady write load, followed by the `postgres_cdc` asset in a lander process).
Each disruption comes while a warehouse load is in flight (its table is held locked, so the load
is waiting inside its transaction), dashboards are being created over the sidecar's REST API and
the CDC lander is mid-stream. Afterwards the runs go on as the sensors would start them, and:

- warehouse: every raw partition equals a clean load of the same world (by content);
- app store: every dashboard answered 201 exists once; no 5xx but a 503 with Retry-After;
- CDC: every committed change is landed once (an uninterrupted slot is the truth).

Recovery is the longest time from Postgres being back to that part working again.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests

from sandbox.pg_cluster import PgCluster, restartable_cluster
from sandbox.process import run_sandbox
from scripts.chaos import Context, Row, Scenario
from scripts.chaos.cdc_kill_resume import Lander, source_database
from scripts.chaos.cdc_landing import TruthSlot, Writer, compare, land, landed_changes
from scripts.chaos.env import environment
from scripts.chaos.harness import SECRETS, Sidecar
from scripts.chaos.partitions import compare as compare_partitions
from scripts.chaos.partitions import pg_partitions
from scripts.chaos.source_outage_storm import END, POLLED, Storm, ingest, polled_tables

LOCKED_TABLE = "raw.github__pull_requests"


@dataclass
class Restarts:
    disruptions: tuple[str, ...] = ("restart", "kill")
    events: int = 600
    days: int = 2
    sources: tuple[str, ...] = POLLED  # loaded into the warehouse; with github: its pull requests are the load held
    dashboards_per_s: float = 20.0
    changes_per_s: float = 20.0
    settle_s: float = 3.0  # between disruptions: everything runs normally
    seed: int = 1234


@dataclass
class Disruption:
    kind: str
    down_at: float = 0.0
    up_at: float = 0.0
    load_in_flight: bool = False  # a COPY transaction was waiting on the locked table when it came


class Dashboards(threading.Thread):
    """Creates dashboards over REST at a steady rate; keeps every answer."""

    def __init__(self, url: str, token: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.rate = url, token, rate
        self.answers: list[tuple[float, str, int, bool]] = []  # at, name, status, with Retry-After
        self._halt = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.token}"}
        while not self._halt.is_set():
            name = f"chaos-{uuid.uuid4().hex[:12]}"
            try:
                r = session.post(f"{self.url}/dashboard/dashboards", json={"name": name}, headers=headers, timeout=10)
                self.answers.append((time.time(), name, r.status_code, "Retry-After" in r.headers))
            except requests.RequestException:
                self.answers.append((time.time(), name, 0, False))
            self._halt.wait(1 / self.rate)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def _create_database(cluster: PgCluster, name: str) -> str:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    return cluster.url(name)


def _disrupt(cluster: PgCluster, warehouse: str, disruption: Disruption, timeout_s: float = 60) -> None:
    """Wait until a load is stuck on the locked table, then restart or kill Postgres under it."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(warehouse, autocommit=True) as watch:
        while time.monotonic() < deadline:
            waiting = watch.execute("select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                                    " and datname = current_database()").fetchone()[0]
            if waiting:
                disruption.load_in_flight = True
                break
            time.sleep(0.05)
    disruption.down_at = time.time()
    if disruption.kind == "kill":
        cluster.kill()
        cluster.start()
    else:
        cluster.restart()
    disruption.up_at = time.time()


def unfinished(result) -> list[str]:
    """The sources with a step that failed or was skipped: the ones their sensors would run again."""
    steps = {e.step_key for e in result.all_events if e.is_step_failure or e.is_step_skipped}
    return sorted({step.split("__")[1] for step in steps if step and step.startswith("raw__")})


def run_restarts(workdir: Path, plan: Restarts) -> list[Row]:
    storm = Storm(events=plan.events, days=plan.days)  # only its world and window: no faults here
    tables = [t for t in polled_tables() if t[0] in plan.sources]
    first_day = datetime.now(UTC).date()
    with (run_sandbox(workdir / "sandbox", seed=7, events=plan.events, days=plan.days, end=END,
                      rate_limit=10**9) as sandbox,
          restartable_cluster(workdir) as cluster):
        clean_url, warehouse_url = _create_database(cluster, "clean"), _create_database(cluster, "warehouse")
        business = source_database(cluster, "business")
        truth = TruthSlot(business, workdir)
        cdc_dir = workdir / "cdc"
        env = {"CC_CDC_PG_URL": business, "CC_HTTP_MAX_RETRIES": "2", "CC_HTTP_BACKOFF_S": "0.05"}
        child_env = {**os.environ, **env, "CC_DATA_DIR": str(cdc_dir)}
        (workdir / "sidecar").mkdir()
        # Both start while the loads run: they take seconds to import.
        lander = Lander(cdc_dir, child_env, 0)
        sidecar = Sidecar(workdir / "sidecar" / "data", {**SECRETS, "CC_WAREHOUSE": "postgres",
                                                           "CC_PG_URL": warehouse_url, "CC_APP_SCHEMA": "cc_app",
                                                           "CC_REDIS_URL": ""})
        disruptions: list[Disruption] = []
        runs, failed_runs, warehouse_back = 0, 0, []
        try:
            sidecar.start()
            with environment(env):
                clean = ingest(workdir / "clean", sandbox, list(plan.sources), storm, warehouse="postgres", pg_url=clean_url)
                if not clean.success:
                    raise RuntimeError("the clean load failed: nothing to compare with")
                first = ingest(workdir / "data", sandbox, list(plan.sources), storm, warehouse="postgres",
                               pg_url=warehouse_url)
                if not first.success:
                    raise RuntimeError("the first load into the warehouse failed")
            lander.wait_for_run(120)  # its slot and snapshot exist before the first write
            writer = Writer(business, plan.changes_per_s, plan.seed)
            dashboards = Dashboards(sidecar.url, sidecar.token("chaos"), plan.dashboards_per_s)
            writer.start()
            dashboards.start()
            try:
                for kind in plan.disruptions:
                    time.sleep(plan.settle_s)
                    disruption = Disruption(kind)
                    disruptions.append(disruption)
                    lock = psycopg.connect(warehouse_url)
                    lock.execute(f"lock table {LOCKED_TABLE} in access exclusive mode")  # held until Postgres goes
                    thread = threading.Thread(target=_disrupt, args=(cluster, warehouse_url, disruption), daemon=True)
                    thread.start()
                    with environment(env):
                        result = ingest(workdir / "data", sandbox, list(plan.sources), storm, warehouse="postgres",
                                        pg_url=warehouse_url)
                        runs += 1
                        failed_runs += not result.success
                        thread.join(90)
                        lock.close()
                        # Then runs as the sensors start them, until one lands everything.
                        deadline = time.monotonic() + 60
                        while not result.success and time.monotonic() < deadline:
                            time.sleep(0.5)
                            again = unfinished(result) or list(plan.sources)
                            result = ingest(workdir / "data", sandbox, again, storm, warehouse="postgres",
                                            pg_url=warehouse_url)
                            runs += 1
                            failed_runs += not result.success
                    warehouse_back.append(time.time() - disruption.up_at if result.success else None)
                time.sleep(plan.settle_s)
            finally:
                dashboards.stop()
                writer.stop()
        finally:
            lander.kill()  # at a random point too: the next run after the load lands the rest
            sidecar.stop()
        with environment(env):
            cdc_ok = land(cdc_dir, first_day)
        cdc = compare(truth.snapshot, truth.changes(), landed_changes(cdc_dir))
        warehouse = compare_partitions(pg_partitions(clean_url, tables), pg_partitions(warehouse_url, tables))
        with psycopg.connect(warehouse_url) as conn:
            stored = Counter(r[0] for r in conn.execute("select name from cc_app.dashboards").fetchall())
    return _rows(plan, disruptions, runs, failed_runs, warehouse_back, warehouse, dashboards, stored, cdc, cdc_ok,
                 writer, lander)


def _rows(plan, disruptions, runs, failed_runs, warehouse_back, warehouse, dashboards, stored, cdc, cdc_ok,
          writer, lander) -> list[Row]:
    kinds = "+".join(d.kind for d in disruptions)
    in_flight = sum(d.load_in_flight for d in disruptions)
    back = [b for b in warehouse_back if b is not None]
    rows = [Row("postgres_restart: warehouse", attempts=runs, acked_lost=warehouse.lost,
                duplicated=warehouse.duplicated,
                recovery_s=max(back) if len(back) == len(disruptions) else None,
                notes=f"{kinds}; {in_flight} of {len(disruptions)} with a load in flight; {failed_runs} runs failed; "
                      f"{warehouse.partitions} partitions, {warehouse.rows:,} rows compared with a clean load"
                      + (f"; differs: {'; '.join(warehouse.differing[:3])}" if warehouse.differing else ""))]
    acked = [name for _, name, status, _ in dashboards.answers if 200 <= status < 300]
    errors = [(at, status) for at, _, status, retry_after in dashboards.answers
              if status >= 500 and not (status == 503 and retry_after)]
    refused = sum(1 for _, _, status, retry_after in dashboards.answers if status == 503 and retry_after)
    unanswered = sum(1 for _, _, status, _ in dashboards.answers if status == 0)
    recovery = []
    for d in disruptions:
        after = [at for at, _, status, _ in dashboards.answers if at > d.up_at and 200 <= status < 300]
        recovery.append(min(after) - d.up_at if after else None)
    rows.append(Row("postgres_restart: app store", attempts=len(dashboards.answers),
                    acked_lost=sum(1 for name in acked if stored[name] == 0),
                    duplicated=sum(max(0, stored[name] - 1) for name in acked),
                    errors_5xx=len(errors),
                    recovery_s=max(recovery) if recovery and None not in recovery else None,
                    notes=f"{len(acked):,} dashboards created (201), {refused} refused with 503 + Retry-After, "
                          f"{unanswered} unanswered; 5xx other than that: {len(errors)}"))
    runs_after = lander.runs()
    cdc_back = []
    for d in disruptions:
        after = [r["at"] for r in runs_after if r["ok"] and r["at"] > d.up_at]
        cdc_back.append(min(after) - d.up_at if after else None)
    rows.append(Row("postgres_restart: cdc", attempts=cdc.committed, acked_lost=cdc.lost + cdc.snapshot_lost,
                    duplicated=cdc.duplicated + cdc.snapshot_duplicated,
                    recovery_s=max(cdc_back) if cdc_back and None not in cdc_back else None,
                    notes=f"{writer.committed:,} transactions ({writer.in_doubt} in doubt, {writer.reconnects} "
                          f"reconnects), {cdc.landed:,} changes landed; final run {'ok' if cdc_ok else 'FAILED'}"
                          + (f"; {'; '.join(cdc.examples)}" if cdc.examples else "")))
    return rows


def run(ctx: Context) -> list[Row]:
    return run_restarts(ctx.workdir, Restarts(seed=ctx.seed, settle_s=max(1.0, ctx.seconds / 30)))


SCENARIO = Scenario("postgres_restart", run, 60, needs=("pg_ctl",))
