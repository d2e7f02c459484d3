"""`make bench-tiers`: bytes per million events in each tier, compaction ratio, and the p50/p99 of
30-day and 1-year historical queries at 10 million events per month.

Synthetic normalized events (the contract's columns, realistic cardinalities) are generated as
Parquet directly — a year at 10M/month is 120M events, far past what the sandbox should serve —
and then moved by the real code: a sample of landing days (hourly small files with re-emitted
copies, as the ingest leaves them) is compacted by `compact_day`; every other day is written as its
cold file by the same verified writer; each month outside the warm window is archived by
`archive_month` (zstd 12 + manifest); the warm window is loaded into a DuckDB warehouse and its
serving snapshot, as the warm dbt models and `serving/marts` leave it. Queries go through
`HistoryReader`, the interface the REST API and reports use.

    make bench-tiers                                   # 10M events/month, 12 months
    make bench-tiers BENCH_TIERS_ARGS="--events-per-month 1000000 --months 3"
    make bench-tiers BENCH_TIERS_ARGS="--out /tmp/tiers --keep --busy 2"      # also with 2 busy processes
    make bench-tiers BENCH_TIERS_ARGS="--out /tmp/tiers --queries-only"       # re-time the kept tiers
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from resources.settings import Settings
from resources.storage.lake import EVENTS_SCHEMA
from resources.storage.tier_moves import archive_month, compact_day
from resources.storage.tiers import COLD_ZSTD_LEVEL, Fingerprint, TierStore, month_start

EVENT_TYPES = [  # (event type, source, target type, weight)
    ("github.commit.pushed", "github", "commit", 18), ("github.pr.opened", "github", "pr", 6),
    ("github.pr.merged", "github", "pr", 5), ("github.review.submitted", "github", "review", 8),
    ("github.check_run.completed", "github", "check_run", 14), ("github.workflow_run.completed", "github", "run", 8),
    ("linear.issue.created", "linear", "issue", 4), ("linear.issue.state_changed", "linear", "issue", 9),
    ("linear.comment.created", "linear", "comment", 6), ("charlie.task.started", "charlie", "task", 5),
    ("charlie.task.completed", "charlie", "task", 4), ("charlie.task.failed", "charlie", "task", 1),
    ("charlie.heartbeat", "charlie", "instance", 6), ("openclaw.session.updated", "openclaw", "session", 4),
    ("cron.run.completed", "cron", "job", 2),
]
ACTORS = 400
TARGETS = 50_000


class _Random:
    """Seeded vectorized draws from pyarrow alone (numpy is not a dependency)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def uniform(self, n: int) -> pa.Array:
        self.seed += 1
        return pc.random(n, initializer=self.seed)

    def integers(self, n: int, high: int, power: float = 1.0) -> pa.Array:
        u = self.uniform(n)
        if power != 1.0:
            u = pc.power(u, power)
        return pc.cast(pc.floor(pc.multiply(u, high)), pa.int64())

    def weighted(self, n: int, weights: list[float]) -> pa.Array:
        u, total, cumulative = self.uniform(n), sum(weights), 0.0
        index = pa.array([0] * n, pa.int64())
        for w in weights[:-1]:
            cumulative += w / total
            index = pc.add(index, pc.cast(pc.greater(u, cumulative), pa.int64()))
        return index


def _pick(values: list[str], index: pa.Array) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pc.cast(index, pa.int32()), pa.array(values)).cast(pa.string())


def _text(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*[p if isinstance(p, str) else pc.cast(p, pa.string()) for p in parts], "")


def synth_day(day: date, n: int, seed: int, first_id: int) -> pa.Table:
    """`n` events on `day`, sorted by time, ids unique across days (from `first_id`)."""
    rng = _Random(seed)
    kind = rng.weighted(n, [w for *_, w in EVENT_TYPES])
    micros = pc.sort_indices(pa.table({"t": rng.integers(n, 86_400_000_000)}), [("t", "ascending")])
    offsets = rng.integers(n, 86_400_000_000).take(micros)
    start = int(datetime.combine(day, datetime.min.time()).timestamp() - datetime(1970, 1, 1).timestamp()) * 10**6
    at = pc.cast(pc.add(offsets, start), pa.timestamp("us"))
    actor = rng.integers(n, ACTORS, power=2.0)  # a few actors do most of the work
    target = rng.integers(n, TARGETS, power=3.0)
    types = _pick([t for t, *_ in EVENT_TYPES], kind)
    repo = pc.divide(target, 1250)
    is_charlie = pc.less(actor, 12)
    actor_type = pc.if_else(is_charlie, 2, pc.if_else(pc.less(actor, 40), 1, 0))
    columns = {
        "event_id": _text(types, ":", pa.array(range(first_id, first_id + n), pa.int64())),
        "event_at": at,
        "source": _pick([src for _, src, *_ in EVENT_TYPES], kind),
        "event_type": types,
        "actor_id": _text("github:user-", actor),
        "actor_name": _text("User ", actor),
        "actor_type": _pick(["human", "bot", "charlie"], actor_type),
        "actor_instance": pc.if_else(is_charlie, _text("charlie-", actor), pa.nulls(n, pa.string())),
        "target_type": _pick([tt for _, _, tt, _ in EVENT_TYPES], kind),
        "target_id": _text("acme/repo-", repo, "#", target),
        "target_title": _text("Improve the thing number ", target, " in the service"),
        "target_url": _text("https://github.com/acme/repo-", repo, "/pull/", target),
        "correlation_id": pa.nulls(n, pa.string()),
        "parent_event_id": pa.nulls(n, pa.string()),
        "tags": pa.array(["[]"] * n),
        "payload": _text('{"number": ', target, ', "repo": "acme/repo-', repo, '"}'),
        "_partition_date": pa.array([day] * n, pa.date32()),
        "_ingested_at": at,
    }
    return pa.table(columns, schema=EVENTS_SCHEMA)


def write_landing_day(landing: TierStore, table: pa.Table, day: date, rng_seed: int) -> int:
    """The day as the ingest would leave it: 24 hourly files, plus re-emitted copies (10%) in the
    next day's partition (a record updated again re-emits its events)."""
    hours = pc.hour(table.column("event_at"))
    written = 0
    for h in range(24):
        part = table.filter(pc.equal(hours, h))
        path = landing.path("normalized", "events", f"date={day.isoformat()}", f"part-{h:02d}.parquet")
        landing.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(part, path, filesystem=landing.fs, compression="zstd")
        written += landing.size(path)
    copies = table.filter(pc.less(_Random(rng_seed).uniform(table.num_rows), 0.1))
    later = day + timedelta(days=1)
    copies = copies.set_column(copies.schema.get_field_index("_partition_date"), "_partition_date",
                               pa.array([later] * copies.num_rows, pa.date32()))
    path = landing.path("normalized", "events", f"date={later.isoformat()}", "part-copies.parquet")
    landing.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(copies, path, filesystem=landing.fs, compression="zstd")
    return written + landing.size(path)


def _write_cold_days(args) -> int:
    root, days, per_day, first_index = args
    tiers = TierStore.local(root)
    for i, day in enumerate(days):
        n = first_index + i
        table = synth_day(day, per_day, seed=n, first_id=n * per_day)
        tiers.write_verified(tiers.cold_path(day), table, Fingerprint.of(table), COLD_ZSTD_LEVEL)
    return len(days)


def _archive(args) -> tuple[str, int, int, float]:
    root, month = args
    started = time.perf_counter()
    report = archive_month(TierStore.local(root), month)
    return f"{month:%Y-%m}", sum(report.moved.values()), report.bytes_written, time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99


def timed(fn, repeat: int) -> tuple[float, float, int]:
    fn()  # warm the page cache, the engine and the query plans once, like a serving process
    samples, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = len(fn())
        samples.append((time.perf_counter() - t0) * 1000)
    p50, p99 = percentiles(samples)
    return p50, p99, rows


def build_warm(settings: Settings, cold: TierStore, days: list[date]) -> tuple[int, int]:
    """The warm window in a DuckDB warehouse, as the warm dbt models build it, then its snapshot."""
    from resources.storage.serving import export_snapshot, snapshot_path

    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    paths = [cold.cold_path(d) for d in days]
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute(f"""
            create or replace table fct_events as
            select event_id, null::varchar as workflow_id, source, event_type, actor_id, actor_name, actor_type,
                   actor_instance as actor_instance_id, target_type, target_id, target_title, target_url,
                   event_at, _ingested_at as ingested_at
            from read_parquet({paths!r}) order by event_at, event_id
        """)  # noqa: S608 - our own paths
        for table, grain in (("fct_event_volume_1m", "minute"), ("fct_event_volume_1d", "day")):
            con.execute(f"""
                create or replace table {table} as
                select cast(date_trunc('{grain}', event_at) as timestamp) as bucket_start_at, source, event_type,
                       actor_type, count(*) as event_count, count(workflow_id) as workflow_event_count
                from fct_events group by all
            """)  # noqa: S608
        rows = con.execute("select count(*) from fct_events").fetchone()[0]
        con.execute("checkpoint")
    written = export_snapshot(settings.duckdb_path, snapshot_path(settings))
    return rows, written.path.stat().st_size


def pg_warm_bytes_per_million(settings: Settings, cold: TierStore, day: date) -> float | None:
    """Bytes per million events of the warm table on Postgres (one day loaded into its partition)."""
    import psycopg

    from resources.storage.warm import ensure_pg_partitions, partition_name

    try:
        with psycopg.connect(settings.pg_url, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError:
        return None
    schema = "cc_bench_tiers"
    ensure_pg_partitions(settings.pg_url, schema, [day])
    table = cold.read_table(cold.cold_path(day))
    columns = ["event_id", "source", "event_type", "actor_id", "actor_name", "actor_type", "actor_instance",
               "target_type", "target_id", "target_title", "target_url", "event_at", "_ingested_at"]
    names = ["event_id", "source", "event_type", "actor_id", "actor_name", "actor_type", "actor_instance_id",
             "target_type", "target_id", "target_title", "target_url", "event_at", "ingested_at"]
    try:
        with psycopg.connect(settings.pg_url) as conn, conn.cursor() as cur:
            with cur.copy(f"copy {schema}.fct_events ({', '.join(names)}) from stdin") as copy:
                for row in zip(*(table.column(c).to_pylist() for c in columns), strict=True):
                    copy.write_row(row)
            conn.commit()
            cur.execute("analyze " + f"{schema}.fct_events")
            size = cur.execute("select pg_total_relation_size(%s::regclass)",
                               (f"{schema}.{partition_name('fct_events', day)}",)).fetchone()[0]
        return size * 1e6 / table.num_rows
    finally:
        with psycopg.connect(settings.pg_url, autocommit=True) as conn:
            conn.execute(f"drop schema {schema} cascade")


def hot_bytes_per_million(settings: Settings, cold: TierStore, day: date) -> tuple[str, float]:
    """Bytes per million events of one busy hour in the hot tier (Redis if configured or local)."""
    import redis

    from resources.storage.hot import FileHotStore, RedisHotStore

    table = cold.read_table(cold.cold_path(day))
    hour = datetime.combine(day, datetime.min.time()).replace(hour=14)
    rows = table.filter(pc.equal(pc.hour(table.column("event_at")), 14)).to_pylist()
    url = settings.redis_url or "redis://127.0.0.1:6379/0"
    try:
        store = RedisHotStore(url)
        store.client.ping()
    except redis.RedisError:
        store = FileHotStore(settings.hot_dir)
    try:
        store.replace_hour(hour, rows, 120)
        if isinstance(store, RedisHotStore):
            keys = [f"events:hour:{hour:%Y-%m-%dT%H}", f"counter:events:{hour:%Y-%m-%dT%H}"]
            used = sum(store.client.memory_usage(k) or 0 for k in keys)
            store.client.delete(*keys)
        else:
            used = store.memory_bytes() or 0
        return store.backend, used * 1e6 / max(len(rows), 1)
    finally:
        store.close()


TODAY = date(2026, 11, 1)  # a fixed "today": months and days line up the same on every run


def _busy(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(100_000))


@contextmanager
def busy_processes(count: int):
    """`count` processes spinning on the CPU for the duration: the machine shared with another job."""
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=_busy, args=(stop,), daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join()


def print_queries(settings: Settings, repeat: int, busy: int = 0) -> None:
    from resources.storage.history import HistoryReader

    reader = HistoryReader(settings, today=TODAY)
    end = datetime.combine(TODAY + timedelta(days=1), datetime.min.time())
    year_start = end - timedelta(days=366)
    month_ago = end - timedelta(days=30)
    queries = {
        "30-day volume per day and source": lambda: reader.event_volume(month_ago, end, "day"),
        "1-year volume per day and source": lambda: reader.event_volume(year_start, end, "day"),
        "30-day events of one actor (first 100)": lambda: reader.events(month_ago, end, actor_id="github:user-77"),
        "1-year events of one actor (first 100)": lambda: reader.events(year_start, end, actor_id="github:user-77"),
        "1-year failed tasks of one actor (all)": lambda: reader.events(
            year_start, end, event_type="charlie.task.failed", actor_id="github:user-3", limit=100_000),
    }
    beside = f", {busy} busy process(es) beside them" if busy else ""
    print(f"Historical queries through HistoryReader (after one warm-up{beside}):")
    with busy_processes(busy):
        for name, fn in queries.items():
            # The full scan takes seconds a run: a tenth of the runs (p99 is then the slowest).
            runs = max(5, repeat // 10) if "(all)" in name else repeat
            p50, p99, rows = timed(fn, runs)
            print(f"  {name:<42} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   ({rows:,} rows, {runs} runs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events-per-month", type=int, default=10_000_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--warm-days", type=int, default=30)
    parser.add_argument("--landing-sample-days", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=100,
                        help="runs per query for p50/p99 (with 20, p99 is just the slowest run)")
    parser.add_argument("--busy", type=int, default=0,
                        help="also time the queries with this many CPU-bound processes beside them")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--queries-only", action="store_true",
                        help="only time the queries over the tiers a previous --out --keep run left")
    args = parser.parse_args(argv)

    out = args.out or Path(tempfile.mkdtemp(prefix="cc-bench-tiers-"))
    settings = Settings.from_env({"CC_DATA_DIR": str(out)}).model_copy(update={"warm_days": args.warm_days})
    if args.queries_only:
        print_queries(settings, args.repeat)
        if args.busy:
            print_queries(settings, args.repeat, args.busy)
        return 0
    shutil.rmtree(out, ignore_errors=True)
    landing = cold = TierStore.local(str(settings.lake_dir))
    today = TODAY
    first = month_start(today - timedelta(days=31 * (args.months - 1)))
    days = [first + timedelta(days=n) for n in range((today - first).days + 1)]
    per_day = round(args.events_per_month * 12 / 365)
    total = per_day * len(days)
    print(f"bench-tiers: {len(days)} days x {per_day:,} events = {total:,} events "
          f"({args.events_per_month:,}/month) in {out}")

    t0 = time.perf_counter()
    sample = days[-args.landing_sample_days - 1:-1]
    landing_bytes = 0
    for day in sample:
        n = days.index(day)
        landing_bytes += write_landing_day(landing, synth_day(day, per_day, seed=n, first_id=n * per_day), day, n)
    compacted = [compact_day(landing, cold, day) for day in sample]
    cold_sample_bytes = sum(r.bytes_written for r in compacted)
    sample_rows = sum(sum(r.moved.values()) for r in compacted)
    assert sample_rows == per_day * len(sample), "compaction lost or duplicated events"
    jobs = [(str(settings.lake_dir), [day], per_day, days.index(day)) for day in days if day not in sample]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_write_cold_days, jobs, chunksize=4))
    gen_s = time.perf_counter() - t0
    cold_days = cold.cold_days()
    cold_bytes = sum(cold_days.values())
    print(f"  landing sample + cold days written and verified in {gen_s:.0f}s")

    warm_from = today - timedelta(days=args.warm_days)
    months = sorted({month_start(d) for d in days if month_start(d) < month_start(warm_from)})
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        archived = list(pool.map(_archive, [(str(settings.lake_dir), m) for m in months]))
    archive_s = time.perf_counter() - t0
    archive_rows = sum(a[1] for a in archived)
    archive_bytes = sum(a[2] for a in archived)
    archived_days = {d for d in cold_days if month_start(d) in months}
    cold_of_archived = sum(cold_days[d] for d in archived_days)
    print(f"  {len(months)} month(s) archived in {archive_s:.0f}s ({archive_s / max(len(months), 1):.1f}s/month)")
    # Cold retention as it runs in production: archived days leave the cold tier.
    for day in archived_days:
        cold.delete(cold.cold_path(day))

    warm_days = [d for d in days if d >= warm_from]
    warm_rows, snapshot_bytes = build_warm(settings, cold, warm_days)
    warehouse_bytes = settings.duckdb_path.stat().st_size
    pg_bytes = pg_warm_bytes_per_million(settings, cold, warm_days[-1])
    hot_backend, hot_bytes = hot_bytes_per_million(settings, cold, warm_days[-1])

    def per_million(nbytes: float, rows: int) -> str:
        return f"{nbytes * 1e6 / max(rows, 1) / 1e6:8.1f} MB"

    print()
    print(f"Bytes per million events ({args.events_per_month:,} events/month, {len(days)} days):")
    print(f"  hot      ({hot_backend:>5})                 {hot_bytes / 1e6:8.1f} MB   (one hour, events + counters)")
    print(f"  warm     (DuckDB warehouse)         {per_million(warehouse_bytes, warm_rows)}   "
          f"(fct_events + 1m/1d rollups, {warm_rows:,} events)")
    print(f"  warm     (serving snapshot)         {per_million(snapshot_bytes, warm_rows)}")
    if pg_bytes is not None:
        print(f"  warm     (Postgres partition)       {pg_bytes / 1e6:8.1f} MB   (fct_events with its TOAST)")
    print(f"  landing  (hourly files + copies)    {per_million(landing_bytes, sample_rows)}")
    print(f"  cold     (daily, zstd {COLD_ZSTD_LEVEL})            {per_million(cold_bytes, len(cold_days) * per_day)}")
    print(f"  archive  (monthly, zstd 12)         {per_million(archive_bytes, archive_rows)}")
    print(f"Compaction ratio: landing -> cold {landing_bytes / cold_sample_bytes:.2f}x "
          f"(incl. dropping the 10% re-emitted copies); cold -> archive {cold_of_archived / max(archive_bytes, 1):.2f}x; "
          f"landing -> archive {landing_bytes / cold_sample_bytes * cold_of_archived / max(archive_bytes, 1):.2f}x")
    print_queries(settings, args.repeat)
    if args.busy:
        print_queries(settings, args.repeat, args.busy)
    if not args.keep and args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
