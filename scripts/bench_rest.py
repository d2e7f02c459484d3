"""REST reads of the sidecar with millions of events in the warehouse, also while dbt builds.

Usage: python -m scripts.bench_rest [--seed-events 100000] [--copies 10] [--requests 2000]
                                   [--data-dir DIR] [--only TEXT] [--graphql] [--no-build-beside]

Builds a warehouse of about `seed-events × copies` events: the sandbox's organisation goes
through the real ingest, then its normalized events and keys are copied into earlier weeks
(new event ids, keys suffixed per copy so each copy is its own set of workflows), and the real
dbt build runs over all of it (kept in `--data-dir` for the next run, if given). Then the sidecar
(uvicorn, its own process) serves, and one client reads each endpoint `--requests` times: once
the same URL (the seeds' TTL cache answers) and once a distinct URL per request (every read
misses the cache). `/api/workflows` is read by offset (50 a page, up to `requests × 50` deep) and
as deep by following `nextCursor`. The overview is read again while a full dbt build runs beside
it, as Dagster runs it (dbt at a lower CPU priority). With `--graphql`, the same questions (the
overview, a page of 50 workflows with every field, same and distinct) are also asked of `/graphql`
in the same run, plus a page of 50 workflows with 5 events each (one query for their events).
Prints p50/p99 per endpoint; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.benchlib import quantile

ROOT = Path(__file__).resolve().parent.parent


def amplify(lake_dir: Path, copies: int, weeks_apart: int = 1) -> int:
    """Copy every normalized partition into `copies - 1` earlier weeks; returns the events now there."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for name in ("events", "event_keys"):
        folder = lake_dir / "normalized" / name
        originals = sorted(folder.glob("date=*/part-0.parquet"))
        for path in originals:
            table = pq.read_table(path)
            day = datetime.fromisoformat(path.parent.name.removeprefix("date=")).date()
            if name == "events":
                total += table.num_rows * copies
            for k in range(1, copies):
                shift = timedelta(weeks=weeks_apart * k)
                copy = table.set_column(table.schema.get_field_index("event_id"), "event_id",
                                        pc.binary_join_element_wise(table["event_id"], pa.scalar(f"~{k}"), ""))
                if name == "events":
                    for column in ("event_at", "_ingested_at"):
                        index = copy.schema.get_field_index(column)
                        if index >= 0:
                            copy = copy.set_column(index, column, pc.subtract(copy[column], pa.scalar(shift)))
                    for column in ("correlation_id", "parent_event_id"):
                        index = copy.schema.get_field_index(column)
                        if index >= 0:
                            copy = copy.set_column(index, column, pc.binary_join_element_wise(
                                copy[column], pa.scalar(f"~{k}"), ""))
                else:
                    index = copy.schema.get_field_index("correlation_key")
                    copy = copy.set_column(index, "correlation_key", pc.binary_join_element_wise(
                        copy["correlation_key"], pa.scalar(f"~{k}"), ""))
                new_day = day - shift
                index = copy.schema.get_field_index("_partition_date")
                if index >= 0:
                    copy = copy.set_column(index, "_partition_date",
                                           pa.array([new_day] * copy.num_rows, pa.date32()))
                target = folder / f"date={new_day.isoformat()}"
                target.mkdir(parents=True, exist_ok=True)
                # Several copies can fall on one day: one file each.
                pq.write_table(copy, target / f"part-copy{k}.parquet", compression="zstd")
    return total


def transform(data_dir: Path) -> float:
    from dagster import DagsterInstance

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource

    platform = PlatformResource(data_dir=str(data_dir))
    started = time.perf_counter()
    with DagsterInstance.ephemeral() as instance:
        defs.resolve_job_def("transform_job").execute_in_process(
            instance=instance, resources={"platform": platform}, raise_on_error=True)
    return time.perf_counter() - started


def read_many(url: str, paths: list[str], token: str) -> list[float]:
    import httpx

    timings = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        client.get(url + paths[0])  # connection and first read out of the way
        for path in paths:
            started = time.perf_counter()
            response = client.get(url + path)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return timings


def post_many(url: str, queries: list[str], token: str) -> list[float]:
    """POST each GraphQL query to `/graphql`, timed; an answer with errors stops the bench."""
    import httpx

    timings = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        client.post(url + "/graphql", json={"query": queries[0]})  # connection, first read, the lazy import
        for query in queries:
            started = time.perf_counter()
            response = client.post(url + "/graphql", json={"query": query})
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or "errors" in response.json():
                raise RuntimeError(f"POST /graphql {query[:80]}: {response.status_code} {response.text[:300]}")
    return timings


def every_field(type_name: str, skip_arguments: bool = True) -> str:
    """A selection of every field of a GraphQL type (from the committed SDL), as REST sends them all."""
    from graphql import GraphQLObjectType, build_schema, get_named_type

    from streaming.graphql.export import SDL_PATH

    schema = build_schema(SDL_PATH.read_text())

    def select(name: str) -> str:
        kind = schema.get_type(name)
        out = []
        for field_name, field in kind.fields.items():  # type: ignore[union-attr]
            if skip_arguments and field.args:
                continue
            inner = get_named_type(field.type)
            out.append(f"{field_name} {{ {select(inner.name)} }}" if isinstance(inner, GraphQLObjectType)
                       else field_name)
        return " ".join(out)

    return select(type_name)


def walk_cursor(url: str, first: str, pages: int, token: str) -> list[float]:
    """Read `pages` pages from `first` on, each by the `nextCursor` of the one before (uncached)."""
    import httpx

    timings = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        cursor = client.get(url + first).json()["nextCursor"]  # connection and first read out of the way
        while cursor and len(timings) < pages:
            started = time.perf_counter()
            response = client.get(url + first, params={"cursor": cursor})
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"GET {first} cursor={cursor}: {response.status_code} {response.text[:200]}")
            cursor = response.json()["nextCursor"]
    return timings


def build_warehouse(work: Path, data_dir: Path, seed_events: int, copies: int, days_back: int,
                    end: datetime) -> None:
    """Ingest the sandbox's organisation, copy its events into earlier weeks, and build the marts."""
    from dagster import DagsterInstance

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from sandbox.process import run_sandbox

    days = [(end - timedelta(days=n)).date() for n in range(days_back, -1, -1)]
    t0 = time.perf_counter()
    with run_sandbox(work / "sandbox", events=seed_events, days=days_back, end=end,
                     rate_limit=10_000_000) as sandbox:
        sandbox.set_limits(linear_requests=10**9, linear_complexity=10**12)
        platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url)
        tags = {"dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[-1].isoformat()}
        with DagsterInstance.ephemeral() as instance:
            defs.resolve_job_def("ingest_job").execute_in_process(
                instance=instance, tags=tags, resources={"platform": platform}, raise_on_error=True)
    ingest_s = time.perf_counter() - t0
    events = amplify(data_dir / "lake", copies)
    build_s = transform(data_dir)
    (data_dir / BUILT).write_text(json.dumps({"end": end.isoformat(), "events": events}))
    print(f"built: ~{events:,} events; ingest {ingest_s:.0f} s, dbt build {build_s:.0f} s", flush=True)


BUILT = "bench-rest.json"  # in the data folder: what was built there, so `--data-dir` can reuse it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed-events", type=int, default=100_000, help="sandbox events ingested (default 100k)")
    parser.add_argument("--copies", type=int, default=10, help="copies of them in earlier weeks (default 10)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000, help="reads per endpoint and kind (default 2000)")
    parser.add_argument("--only", default="", help="run only the endpoints whose name contains this text")
    parser.add_argument("--no-build-beside", action="store_true",
                        help="skip the overview read while a full dbt build runs (minutes at 10M events)")
    parser.add_argument("--graphql", action="store_true",
                        help="ask /graphql the same questions (overview, workflow pages) in the same run")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="build the warehouse here and keep it; a later run with the same folder reuses it "
                             "(and ignores --seed-events/--copies/--days). Default: a temporary folder")
    args = parser.parse_args()

    from resources.dbt import DBT_NICENESS
    from resources.storage.warehouse import mart_counts
    from streaming.auth import issue_token

    with tempfile.TemporaryDirectory(prefix="cc-bench-rest-") as tmp:
        data_dir = args.data_dir.resolve() if args.data_dir else Path(tmp) / "data"
        if not (data_dir / BUILT).exists():
            end = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
            build_warehouse(Path(tmp), data_dir, args.seed_events, args.copies, args.days, end)
        built = json.loads((data_dir / BUILT).read_text())
        end, events = datetime.fromisoformat(built["end"]), built["events"]
        counts = mart_counts(data_dir / "warehouse.duckdb")
        print(f"warehouse: ~{events:,} events, {counts.get('fct_workflows', 0):,} workflows in {data_dir}",
              flush=True)

        secret = "bench-secret-of-at-least-32-bytes-for-hs256"
        port = 8890
        # One token reads as fast as the sidecar answers: over any rate limit a real token has.
        env = {**os.environ, "CC_DATA_DIR": str(data_dir), "CC_JWT_SECRET": secret, "CC_RATE_LIMIT_READ": "unlimited"}
        log = (Path(tmp) / "sidecar.log").open("wb")  # noqa: SIM115 - closed in the finally below
        sidecar = subprocess.Popen([sys.executable, "-m", "uvicorn", "streaming.app:app", "--host", "127.0.0.1",
                                    "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        token = issue_token(secret, "bench", 3600)
        try:
            import httpx

            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            n = args.requests
            cases = {
                "/dashboard/overview": (["/dashboard/overview"] * n, None),
                "/api/workflows (50 per page)": (["/api/workflows?limit=50"] * n,
                                                 [f"/api/workflows?limit=50&offset={i * 50}" for i in range(n)]),
                "/api/events (100)": (["/api/events?limit=100"] * n,
                                      [f"/api/events?limit=100&since={(end - timedelta(minutes=i)).isoformat()}"
                                       for i in range(n)]),
                "/dashboard/metrics?timeRange=24h": (["/dashboard/metrics?timeRange=24h"] * n,
                                                     [f"/dashboard/metrics?timeRange=custom&from="
                                                      f"{(end - timedelta(days=1, minutes=i)).isoformat()}&to="
                                                      f"{end.isoformat()}" for i in range(n)]),
            }
            rows = []
            for name, (same, distinct) in cases.items():
                if args.only not in name:
                    continue
                cached = read_many(url, same, token)
                rows.append((name, "same URL (TTL cache)", cached))
                if distinct:
                    rows.append((name, "distinct URLs (no cache)", read_many(url, distinct, token)))
                print(f"{name}: done", flush=True)
            if args.graphql:
                overview, workflow = every_field("Overview"), every_field("Workflow")
                page = f"workflows {{ {workflow} }} total limit offset hasMore nextCursor"
                graphql_cases = {
                    "/graphql overview": ([f"{{ overview {{ {overview} }} }}"] * n, None),
                    "/graphql workflows (50 per page)": (
                        [f"{{ workflows(limit: 50) {{ {page} }} }}"] * n,
                        [f"{{ workflows(limit: 50, offset: {i * 50}) {{ {page} }} }}" for i in range(n)]),
                    "/graphql workflows (50 per page, 5 events each)": (
                        ["{ workflows(limit: 50) { workflows { id events(limit: 5) { events { id type timestamp } } } } }"] * n,
                        [f"{{ workflows(limit: 50, offset: {i * 50}) {{ workflows {{ id events(limit: 5) "
                         f"{{ events {{ id type timestamp }} }} }} }} }}" for i in range(n)]),
                }
                for name, (same, distinct) in graphql_cases.items():
                    if args.only not in name:
                        continue
                    rows.append((name, "same query (TTL cache)", post_many(url, same, token)))
                    if distinct:
                        rows.append((name, "distinct queries (no cache)", post_many(url, distinct, token)))
                    print(f"{name}: done", flush=True)
            # Keyset pages as deep as the offset ones above: each `where (last_event_at, workflow_id) < ...`.
            name = "/api/workflows by cursor (50 per page)"
            if args.only in name:
                rows.append((name, "following nextCursor (no cache)", walk_cursor(url, "/api/workflows?limit=50", n, token)))
                print(f"{name}: done", flush=True)

            if args.only in "/dashboard/overview" and not args.no_build_beside:
                # The overview while a full dbt build runs in another process.
                during: list[float] = []
                build = threading.Thread(target=lambda: during.append(transform_in_subprocess(data_dir)))
                build.start()
                overview_during: list[float] = []
                while build.is_alive():
                    overview_during.extend(read_many(url, ["/dashboard/overview"] * 200, token))
                build.join()
                # As Dagster runs it: dbt at nice DBT_NICENESS (cc_assets/dbt.py), the rest as is.
                rows.append(("/dashboard/overview", f"during a dbt build at nice {DBT_NICENESS} ({during[0]:.0f} s)",
                             overview_during))
        finally:
            sidecar.terminate()
            sidecar.wait(10)
            log.close()

        print()
        print(f"{'REST and GraphQL' if args.graphql else 'REST'} reads with ~{events:,} events in the warehouse "
              "(one client, sequential, loopback):")
        print("| endpoint | reads | n | p50 | p99 | max |")
        print("|---|---|---:|---:|---:|---:|")
        for name, how, timings in rows:
            print(f"| {name} | {how} | {len(timings):,} | {statistics.median(timings):.1f} ms "
                  f"| {quantile(timings, 0.99):.1f} ms | {max(timings):.1f} ms |")


def transform_in_subprocess(data_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from pathlib import Path; from scripts.bench_rest import transform; "
                    f"transform(Path({str(data_dir)!r}))"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
