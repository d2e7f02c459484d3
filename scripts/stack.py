"""`make stack`: the production topology on this machine, each part its own process, and proof
that it computes what the embedded run computes.

Started here, as a fleet would run them:
- Postgres: the warehouse (dbt builds there, raw partitions are COPYed in) and Dagster's runs,
  event logs and schedules, in two throwaway databases on `CC_PG_URL`'s server;
- Redis: a `redis-server` of its own on a free port (the sidecar workers' rooms and dedupe);
- an S3-compatible lake: moto's server (`python -m moto.server`), a bucket of its own;
- Dagster: a gRPC code server (`dagster code-server start`), the daemon (which drains the run
  queue, resources/dagster_home.py) and the webserver (left out with `--reduced`), all pointed at
  the code server by a workspace file (deploy/workspace.grpc.yaml's shape, on the chosen port);
- two sidecar workers landing in Postgres (`CC_LANDING_URL`, the warehouse's `cc_landing` schema) with one Redis;
- the sandbox world, its APIs on loopback.

The world then goes through it: every polled source lands in one queued run for the whole range,
the world's webhooks are posted half to each sidecar worker meanwhile, each day's deliveries
land in one queued run per day (the queue lets one webhooks run go at a time), and a queued dbt
build follows. The same world goes through the embedded path in this process (DuckDB, a local
lake, one sidecar), its ingest while the code server starts and its build while the daemon runs
the stack's ingest (neither waits for the other), and the two warehouses are compared: every
mart's row count, and row for row which workflow each event is in and each workflow's status and
event count. The exit code is 0 only when all of it is equal.

Usage: python -m scripts.stack [--events 2000] [--days 2] [--reduced] [--serve] [--work DIR]
`--serve` keeps the stack up after the check (the Dagster UI and both workers) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from scripts.chaos.harness import ROOT, SECRETS, Sidecar, free_port, throwaway_database
from scripts.chaos.replicas_redis import RedisServer

BIN = Path(sys.executable).parent
LOCATION = "command_center"
BUCKET = "cc-stack"
# The runs this script submits, told apart from those the daemon's running sensors request.
CHECK_TAG = {"cc/stack": "check"}


class Process:
    """A child process in a session of its own: `stop()` ends its whole group (TERM, then KILL)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                         start_new_session=True)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               + self.log.read_text(errors="replace")[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def wait_until(what: str, ready, processes: list[Process], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        for process in processes:
            process.alive()
        with contextlib.suppress(Exception):
            if ready():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready in {timeout_s:.0f} s")
        time.sleep(0.25)


def say(line: str) -> None:
    print(line, flush=True)


def embedded_ingest(work: Path, sandbox_url: str, first: str, last: str) -> tuple[Path, list]:
    """The world through the embedded default's ingest, in this process: its data folder, and the
    world's webhooks (made from what its poll landed, as scripts/parity.py does)."""
    from dagster import DagsterInstance

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from scripts.parity import deliveries

    data = work / "embedded"
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    with DagsterInstance.ephemeral() as instance:
        ingest = defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, tags=tags, resources={"platform": PlatformResource(data_dir=str(data),
                                                                                  sandbox_url=sandbox_url)},
            raise_on_error=False)
    if not ingest.success:
        raise RuntimeError("the embedded ingest failed")
    return data, deliveries(data / "lake")


def embedded_build(data: Path, outgoing: list) -> Path:
    """The webhooks through one sidecar on the embedded data folder, landed and built with dbt on
    DuckDB: the warehouse."""
    from scripts.parity import build, send_all

    server = Sidecar(data, dict(SECRETS)).start()
    try:
        send_all(server.url, outgoing)
    finally:
        server.stop()
    build(data)
    return data / "warehouse.duckdb"


def launch(env: dict[str, str], workspace: Path, job: str, tags: dict[str, str] | None = None) -> None:
    """Submit a run to the instance's queue, as the UI or a sensor would (the daemon launches it)."""
    cmd = [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", job,
           "--tags", json.dumps({**(tags or {}), **CHECK_TAG})]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"dagster job launch {job} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def wait_for_runs(instance, expected: int, processes: list[Process], timeout_s: float = 1800.0) -> None:
    """Every one of the `expected` runs this script submitted so far finished, retries included
    (the daemon retries a failed run from its failure: its success counts); raises on a run that
    failed for good, with its id."""
    from dagster import DagsterRunStatus, RunsFilter

    ended = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    retries = instance.run_retries_max_retries if instance.run_retries_enabled else 0

    def settled(run, runs) -> bool:
        """Ended, and if it failed, retried as often as it will be."""
        if run.status not in ended:
            return False
        if run.status == DagsterRunStatus.SUCCESS or int(run.tags.get("dagster/retry_number", 0)) >= retries:
            return True
        return any(r.tags.get("dagster/parent_run_id") == run.run_id for r in runs)

    deadline = time.monotonic() + timeout_s
    while True:
        runs = instance.get_runs(RunsFilter(tags=CHECK_TAG))
        roots = [r for r in runs if "dagster/parent_run_id" not in r.tags]
        if len(roots) >= expected and all(settled(r, runs) for r in runs):
            break
        for process in processes:
            process.alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"runs not finished in {timeout_s:.0f} s: {[(r.job_name, r.status) for r in runs]}")
        time.sleep(1.0)
    succeeded = {r.tags.get("dagster/root_run_id", r.run_id) for r in runs if r.status == DagsterRunStatus.SUCCESS}
    failed = [r for r in roots if r.run_id not in succeeded]
    if failed:
        raise RuntimeError("runs failed: " + ", ".join(f"{r.job_name} {r.run_id}" for r in failed))


def compare(duckdb_path: Path, pg_url: str, schema: str = "analytics") -> list[tuple[str, object, object]]:
    """(what, embedded, stack) for every mart's row count and the row-for-row checks."""
    import duckdb
    import psycopg

    from resources.storage.serving import mart_names

    rows: list[tuple[str, object, object]] = []
    with duckdb.connect(str(duckdb_path), read_only=True) as con, psycopg.connect(pg_url) as pg:
        def both(sql_duck: str, sql_pg: str):
            try:
                left = con.execute(sql_duck).fetchall()
            except duckdb.Error:
                left = None
            try:
                right = pg.execute(sql_pg).fetchall()
            except psycopg.Error:
                pg.rollback()
                right = None
            return left, right

        for name in mart_names():
            left, right = both(f"select count(*) from {name}", f"select count(*) from {schema}.{name}")
            rows.append((f"{name} rows", left and left[0][0], right and right[0][0]))
        left, right = both("select event_id, workflow_id from fct_workflow_events",
                           f"select event_id, workflow_id from {schema}.fct_workflow_events")
        rows.append(("event → workflow", len(set(left or [])), "equal" if set(left or []) == set(right or [])
                     else f"{len(set(left or []) ^ set(right or []))} differ"))
        query = "select workflow_id, status, event_count from {}fct_workflows"
        left, right = both(query.format(""), query.format(schema + "."))
        rows.append(("workflow status and events", len(left or []),
                     "equal" if sorted(left or []) == sorted(right or []) else "differ"))
    return rows


def equal(rows: list[tuple[str, object, object]]) -> bool:
    return all(stack == "equal" or stack == embedded for _, embedded, stack in rows) and \
        any(embedded for what, embedded, _ in rows if what == "fct_workflows rows")


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[tuple[Process, str]]:
    port = free_port()
    process = Process("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                      dict(os.environ), log_dir)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until("the S3 server", lambda: requests.get(url, timeout=2).status_code < 500, [process])
        requests.put(f"{url}/{BUCKET}", timeout=10).raise_for_status()
        yield process, url
    finally:
        process.stop()


def run(events: int, days: int, reduced: bool, serve: bool, work: Path) -> int:
    from dagster import DagsterInstance

    from resources.dagster_home import write_instance_config
    from resources.settings import Settings
    from resources.storage.landing import landing_for
    from sandbox.process import run_sandbox
    from scripts.parity import send_all

    def stop(signum, _frame):  # a SIGTERM unwinds the stack below, so every process it started stops
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first, last = (end - timedelta(days=days)).date().isoformat(), end.date().isoformat()
    os.environ.setdefault("CC_PARTITIONS_START", first)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(run_sandbox(work / "sandbox", events=events, days=days, end=end,
                                                  rate_limit=10_000_000))
        sandbox.set_limits(linear_requests=10**9, linear_complexity=10**12)
        say(f"sandbox world: {events:,} events over {days} days at {sandbox.url}")

        warehouse_url = stack.enter_context(throwaway_database(prefix="cc_stack_wh"))
        dagster_url = stack.enter_context(throwaway_database(prefix="cc_stack_dagster"))
        redis = RedisServer(work).start()
        stack.callback(redis.stop)
        s3_process, s3_url = stack.enter_context(moto_server(logs))
        data = work / "stack"
        home = work / "dagster_home"
        env = {**os.environ, **SECRETS,
               "DAGSTER_HOME": str(home), "CC_DAGSTER_PG_URL": dagster_url,
               "CC_WAREHOUSE": "postgres", "CC_PG_URL": warehouse_url, "CC_DATA_DIR": str(data),
               "CC_SANDBOX_URL": sandbox.url, "CC_REDIS_URL": redis.url,
               # Webhooks and samples land in Postgres, as replicas on several hosts do (deploy/).
               "CC_LANDING_URL": warehouse_url,
               "CC_LAKE_URL": f"s3://{BUCKET}/lake", "CC_LAKE_S3_ENDPOINT": s3_url,
               "CC_LAKE_S3_REGION": "us-east-1", "CC_LAKE_S3_ACCESS_KEY_ID": "stack",
               "CC_LAKE_S3_SECRET_ACCESS_KEY": "stack", "CC_PARTITIONS_START": first,
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        write_instance_config(Settings.from_env(env), home)
        code_port = free_port()
        workspace = work / "workspace.yaml"
        workspace.write_text((ROOT / "deploy" / "workspace.grpc.yaml").read_text()
                             .replace("port: 4266", f"port: {code_port}"))
        processes: list[Process] = []

        def start(name: str, cmd: list[str]) -> Process:
            process = Process(name, cmd, env, logs)
            processes.append(process)
            stack.callback(process.stop)
            return process

        # The code server loads the definitions (tens of seconds) while the embedded ingest runs here.
        start("code-server", [str(BIN / "dagster"), "code-server", "start", "-m", "cc_assets.definitions",
                              "-h", "127.0.0.1", "-p", str(code_port), "--location-name", LOCATION])
        say("embedded run (DuckDB, local lake, one sidecar): its ingest ...")
        embedded, outgoing = embedded_ingest(work, sandbox.url, first, last)
        say(f"  done in {time.monotonic() - started:.0f} s: {len(outgoing):,} webhook deliveries")
        wait_until("the code server", lambda: subprocess.run(
            [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(code_port)], capture_output=True,
            timeout=30).returncode == 0, processes, timeout_s=180)
        start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])
        ui_port = None
        if not reduced:
            ui_port = free_port()
            start("webserver", [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1",
                                "-p", str(ui_port)])
        workers = []
        for n in (1, 2):  # one data dir, one Postgres landing (CC_SIDECAR_WORKER_ID names each)
            worker = Sidecar(data, {k: v for k, v in env.items() if k.startswith("CC_")}, worker=f"w{n}").start()
            stack.callback(worker.stop)
            workers.append(worker)
        say(f"stack up in {time.monotonic() - started:.0f} s: Postgres warehouse and Dagster storage, Redis "
            f"{redis.url}, S3 {s3_url}, code server :{code_port}, daemon, "
            + (f"webserver http://127.0.0.1:{ui_port}, " if ui_port else "")
            + f"sidecar workers {workers[0].url} and {workers[1].url}")

        os.environ["CC_DAGSTER_PG_URL"] = dagster_url  # the instance config names it from the environment
        with DagsterInstance.from_config(str(home)) as instance:
            stack_started = time.monotonic()
            launch(env, workspace, "ingest_job", {"dagster/asset_partition_range_start": first,
                                                  "dagster/asset_partition_range_end": last})
            halves = [[d for d in outgoing if hash(d.key or d.at) % 2 == n] for n in range(2)]
            # Both workers at once, as a load balancer in front of them sends (not one after the other).
            with ThreadPoolExecutor(len(workers)) as pool:
                for sent in [pool.submit(send_all, worker.url, half)
                             for worker, half in zip(workers, halves, strict=True)]:
                    sent.result()
            say(f"  {len(halves[0]):,} + {len(halves[1]):,} deliveries acknowledged by the two workers")
            # The embedded run's webhooks and build while the daemon runs the stack's ingest.
            duckdb_path = embedded_build(embedded, outgoing)
            say(f"  embedded run built in {time.monotonic() - started:.0f} s")
            wait_for_runs(instance, 1, processes)
            # The files, or with CC_LANDING_URL in the environment the shared landing the workers used.
            landed_days = [d.isoformat() for d in landing_for(Settings.from_env(env)).days("webhooks")]
            for day in landed_days:
                launch(env, workspace, "webhooks_job", {"dagster/partition": day})
            wait_for_runs(instance, 1 + len(landed_days), processes)
            launch(env, workspace, "transform_job")
            wait_for_runs(instance, 2 + len(landed_days), processes)
            say(f"  {2 + len(landed_days)} queued runs through the daemon in {time.monotonic() - stack_started:.0f} s")

        rows = compare(duckdb_path, warehouse_url)
        width = max(len(what) for what, _, _ in rows)
        say(f"{'':{width}}  {'embedded (DuckDB)':>18}  {'stack (Postgres)':>18}")
        for what, embedded, stacked in rows:
            say(f"{what:{width}}  {embedded!s:>18}  {stacked!s:>18}")
        ok = equal(rows)
        say("the stack's warehouse equals the embedded run's" if ok else "THE STACK DIFFERS FROM THE EMBEDDED RUN")
        if serve and ok:
            say("serving until Ctrl-C")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--reduced", action="store_true", help="no Dagster webserver (the test's form)")
    parser.add_argument("--serve", action="store_true", help="keep the stack up after the check, until Ctrl-C")
    parser.add_argument("--work", type=Path, help="keep the stack's files here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.work:
        args.work.mkdir(parents=True, exist_ok=True)
        return run(args.events, args.days, args.reduced, args.serve, args.work)
    with tempfile.TemporaryDirectory(prefix="cc-stack-") as work:
        return run(args.events, args.days, args.reduced, args.serve, Path(work))


if __name__ == "__main__":
    sys.exit(main())
