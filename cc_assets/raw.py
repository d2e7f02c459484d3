"""Raw assets: one daily-partitioned asset per source entity, landed as Parquet in the lake.

Each run pages its source once for the whole partition window, buckets records by their day,
and replaces every partition of the window. Records that break the schema and pages that cannot
be read go to the dead-letter store with the reason; the rest lands. A source that stays down
fails its own asset with the client's message, and the other sources land regardless.
"""


import logging
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import psycopg
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from cc_assets.partitions import daily_partitions, single_run_backfill
from cc_events.logs import log_event_id
from cc_events.model import InvalidRecord
from cc_events.raw_tables import RAW_TABLES, RawTable
from cc_events.webhooks import LANDING_STREAM as WEBHOOKS_STREAM
from resources.http.client import MalformedPage, NotFound, SourceUnavailable, dumps
from resources.ingest.cdc import CdcReader, parse_lsn
from resources.ingest.log_tailer import LogTailer
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.platform import PlatformResource
from resources.sources.paging import Item
from resources.storage.cursors import CursorStore
from resources.storage.lake import DeadLetter, Lake, raw_schema
from resources.storage.landing import LandingLog

CDC_STREAM = "postgres_cdc"
# A pushed stream's run pulls for at most this long, then lands what it has: its sensor runs again soon.
PULL_BUDGET_S = 10.0
LOGS_STREAM = "logs"

# A fetched record, what the fetch knew about it (repo, PR number), and its day when the
# day comes from the fetch (a review lands in its PR's partition) rather than from the record.
Fetch = tuple[Item, dict, date | None]


@dataclass(frozen=True)
class Window:
    days: list[date]
    # Incremental runs: per cursor scope, the time this run's fetch starts from (inside the window).
    since: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.days[0], datetime.min.time())

    @property
    def end(self) -> datetime:
        return datetime.combine(self.days[-1] + timedelta(days=1), datetime.min.time())

    def start_for(self, scope: str) -> datetime:
        """Where to fetch `scope` from: its cursor when the run is incremental, else the window start."""
        return self.since.get(scope, self.start)


def _pull_requests_in(lake: Lake, window: Window) -> Iterator[tuple[str, int, date]]:
    for day in window.days:
        table = lake.read(("raw", "github", "pull_requests"), day)
        if table is not None:
            for row in table.select(["repo", "number"]).to_pylist():
                yield row["repo"], row["number"], day


def _pull_request_heads_in(lake: Lake, window: Window) -> Iterator[tuple[str, int, str, date]]:
    """Each landed PR's head commit (partitions from before `head_sha` was a column have none)."""
    for day in window.days:
        table = lake.read(("raw", "github", "pull_requests"), day)
        if table is not None and "head_sha" in table.column_names:
            for row in table.select(["repo", "number", "head_sha"]).to_pylist():
                if row["head_sha"]:
                    yield row["repo"], row["number"], row["head_sha"], day


def _instances_in(lake: Lake, window: Window) -> list[str]:
    table = lake.read(("raw", "charlie", "instances"), window.days[-1])
    return sorted({r for r in table.column("id").to_pylist()}) if table is not None else []


def fetch_github_pull_requests(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    github = platform.github()
    for repo in github.repos():
        for item in github.pull_requests(repo, window.start_for(f"github/pull_requests/{repo}"), window.end):
            yield item, {"repo": repo}, None


def fetch_github_issues(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    github = platform.github()
    for repo in github.repos():
        for item in github.issues(repo, window.start_for(f"github/issues/{repo}"), window.end):
            yield item, {"repo": repo}, None


def _of_pull(items: Iterator[Item], repo: str, number: int) -> Iterator[Item]:
    """A pull request's reviews, commits or checks; a PR that is gone (404) is a dead letter, not a
    source outage: the other PRs land."""
    try:
        yield from items  # a generator: the 404 is raised here, while paging
    except NotFound as exc:
        yield MalformedPage(str(exc), f"pull request {repo}#{number} is gone (404): deleted or transferred", "", {})


def fetch_github_reviews(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    github = platform.github()
    for repo, number, day in _pull_requests_in(platform.lake(), window):
        for item in _of_pull(github.reviews(repo, number), repo, number):
            yield item, {"repo": repo, "pull_number": number}, day


def fetch_github_commits(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    github = platform.github()
    for repo in github.repos():
        for item in github.commits(repo, window.start_for(f"github/commits/{repo}"), window.end):
            yield item, {"repo": repo}, None
    # Branch commits are only tied to their PR by this listing; it is what correlates them.
    for repo, number, day in _pull_requests_in(platform.lake(), window):
        for item in _of_pull(github.pull_commits(repo, number), repo, number):
            yield item, {"repo": repo, "pull_number": number}, day


def fetch_github_workflow_runs(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # GitHub filters runs by creation only: from a day earlier, so a run that finished after
    # midnight (or was re-run) lands on the day it was last updated.
    github = platform.github()
    for repo in github.repos():
        for item in github.workflow_runs(repo, window.start - timedelta(days=1), window.end):
            yield item, {"repo": repo}, None


def fetch_github_check_runs(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # The checks on each updated PR's head commit: the CI status a reviewer sees on the PR.
    github = platform.github()
    for repo, number, head_sha, day in _pull_request_heads_in(platform.lake(), window):
        for item in _of_pull(github.check_runs(repo, head_sha), repo, number):
            yield item, {"repo": repo, "pull_number": number}, day


def fetch_linear_comments(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    for item in platform.linear().comments(window.start_for("linear/comments"), window.end):
        yield item, {}, None


def fetch_linear_cycles(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from _snapshot(list(platform.linear().cycles()), window)


def fetch_linear_issues(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    for item in platform.linear().issues(window.start_for("linear/issues"), window.end):
        yield item, {}, None


def _snapshot(items: Iterable[Item], window: Window) -> Iterator[Fetch]:
    for item in items:
        for day in window.days:
            yield item, {}, day


def fetch_linear_teams(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from _snapshot(list(platform.linear().teams()), window)


def fetch_linear_users(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from _snapshot(list(platform.linear().users()), window)


def fetch_charlie_instances(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from _snapshot(list(platform.charlie().instances()), window)


def fetch_charlie_health(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    charlie = platform.charlie()
    yield from _snapshot([charlie.health(i) for i in _instances_in(platform.lake(), window)], window)


def fetch_charlie_activity(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    charlie = platform.charlie()
    for instance in _instances_in(platform.lake(), window):
        for item in charlie.activity(instance, window.start, window.end):
            yield item, {}, None


def fetch_openclaw_sessions(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    for item in platform.openclaw().sessions(window.start, window.end):
        yield item, {}, None


def fetch_cron_events(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # The runner's log is ordered by sequence, not time: read it all, the window keeps its days.
    for item in platform.cron().events(after_seq=0):
        yield item, {}, None


def fetch_weather_opportunities(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    for item in platform.weather().opportunities(window.start, window.end):
        yield item, {}, None


def _from_landing(platform: PlatformResource, stream: str, days: Iterable[date],
                  identity: Callable[[dict], object]) -> Iterator[Fetch]:
    """A pushed stream's records for `days` from the landing log, each identity once."""
    log = LandingLog(platform.settings().landing_dir)
    seen: set[object] = set()
    for day in days:
        for record in log.read(stream, day):
            if isinstance(record, str):
                yield MalformedPage(str(log.path(stream, day)), "torn line in the landing log", record, {}), {}, None
                continue
            key = identity(record)
            if key not in seen:
                seen.add(key)
                yield record, {}, None


def fetch_system_metrics(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from _from_landing(platform, METRICS_STREAM, window.days, lambda r: r.get("id"))


def pull_postgres_cdc(platform: PlatformResource, log: logging.Logger) -> int:
    """Move every change waiting in the replication slot into the landing log; returns how many.

    A batch is confirmed to Postgres only after its lines are fsynced in the landing log, so a
    crash anywhere replays it and the landing dedupes on (commit_lsn, seq)."""
    settings = platform.settings()
    if not settings.cdc_pg_url:
        log.info("the CDC source is not configured (set CC_CDC_PG_URL to follow a Postgres database)")
        return 0
    landing = LandingLog(settings.landing_dir)
    cursors = platform.cursors()
    pulled = 0
    deadline = time.monotonic() + PULL_BUDGET_S
    # Under a steady write load the slot is never empty: a run lands what was committed before it
    # began (and whatever else arrives meanwhile), and leaves the rest to the next run.
    with psycopg.connect(settings.cdc_pg_url, connect_timeout=10) as conn:
        target = parse_lsn(conn.execute("select pg_current_wal_lsn()::text").fetchone()[0])
    with CdcReader(settings.cdc_pg_url, settings.cdc_slot, settings.cdc_publication, cursors,
                   tables=settings.cdc_tables or None) as reader:
        while True:
            batch = reader.read_batch(max_changes=5000, timeout_s=1.0)
            if batch.reset:
                # A fresh snapshot replaces whatever this slot landed before.
                shutil.rmtree(landing.root / CDC_STREAM, ignore_errors=True)
            if batch.changes:
                landing.append(CDC_STREAM, batch.changes, datetime.utcnow())
                pulled += len(batch.changes)
            reader.confirm(batch)
            if not batch.changes:  # caught up (the rest arrives on the next run)
                return pulled
            if reader.in_snapshot:
                continue
            if batch.position is not None and batch.position.lsn >= target:
                return pulled  # every transaction committed before the pull began has landed
            if time.monotonic() > deadline:
                log.info("pull budget of %.0f s spent; the rest waits for the next run", PULL_BUDGET_S)
                return pulled


def pull_logs(platform: PlatformResource) -> int:
    """Move every new log line into the landing log; the tailer's cursor is committed after."""
    settings = platform.settings()
    landing = LandingLog(settings.landing_dir)
    tailer = LogTailer(settings.log_patterns, platform.cursors())
    pulled = 0
    deadline = time.monotonic() + PULL_BUDGET_S
    try:
        while True:
            batch = tailer.read_batch(5000)
            records = [{**r, "id": log_event_id(r)} for r in batch.records]
            if records:
                landing.append(LOGS_STREAM, records, datetime.utcnow())
                pulled += len(records)
            tailer.commit(batch)
            if not records or time.monotonic() > deadline:  # a file written faster than read: next run
                return pulled
    finally:
        tailer.close()


def fetch_logs(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    days = [*window.days, window.days[-1] + timedelta(days=1)]
    yield from _from_landing(platform, LOGS_STREAM, days, lambda r: r.get("id"))


def fetch_postgres_cdc(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # A change committed late on a day can land just after midnight: read one day more.
    days = [*window.days, window.days[-1] + timedelta(days=1)]
    yield from _from_landing(platform, CDC_STREAM, days, lambda r: (r.get("commit_lsn"), r.get("seq")))


@dataclass(frozen=True)
class Incremental:
    """An entity pulled by update time, with one durable cursor per scope (a repo, a workspace).

    A run whose window holds a scope's cursor fetches that scope from the cursor (less the
    overlap) and merges into the partitions already landed, replacing records by `key`; after
    the partitions are written the cursor moves to the newest `column` landed. A crash before
    that refetches from the old cursor and the merge drops the repeats: nothing lost, nothing twice.
    """

    scope: Callable[[dict], str | None]  # a landed row's cursor scope; None: no cursor (refetched whole)
    column: str
    key: tuple[str, ...]


CURSOR_PREFIX = "incremental/"


def _repo_scope(entity: str) -> Callable[[dict], str | None]:
    return lambda row: f"github/{entity}/{row['repo']}" if row.get("pull_number") is None else None


def source_cursors(cursors: Mapping[str, object], source: str, entity: str | None = None) -> dict[str, datetime]:
    """The incremental cursors of a source (or of one of its entities), by scope."""
    wanted = f"{source}/{entity}" if entity else source
    found = {}
    for key, value in cursors.items():
        scope = key.removeprefix(CURSOR_PREFIX)
        if key.startswith(CURSOR_PREFIX) and (scope == wanted or scope.startswith(wanted + "/")):
            found[scope] = datetime.fromisoformat(str(value))
    return found


def incremental_since(table: RawTable, cursors: Mapping[str, object], window: Window,
                      overlap: timedelta) -> dict[str, datetime]:
    """Per scope, where this run fetches from: only cursors inside the window count (a backfill of
    older days, or a window that starts after the cursor, fetches its whole window)."""
    since = {}
    for scope, mark in source_cursors(cursors, table.source, table.entity).items():
        start = mark - overlap
        if window.start <= start < window.end:
            since[scope] = start
    return since


def merge_landed(lake: Lake, table: RawTable, key: tuple[str, ...], window: Window,
                 rows_by_day: dict[date, list[dict]]) -> None:
    """Add to each day's fetched rows the rows already landed that this run did not fetch again."""
    fetched = {tuple(row[k] for k in key) for rows in rows_by_day.values() for row in rows}
    for day in window.days:
        existing = lake.read(("raw", table.source, table.entity), day)
        if existing is None:
            continue
        kept = [row for row in existing.drop_columns(["_partition_date", "_ingested_at"]).to_pylist()
                if tuple(row[k] for k in key) not in fetched]
        rows_by_day[day] = kept + rows_by_day.get(day, [])


def advance_cursors(store: CursorStore, incremental: Incremental, rows_by_day: dict[date, list[dict]]) -> dict:
    """Move each scope's cursor to the newest landed record; a cursor never moves back."""
    marks: dict[str, datetime] = {}
    for rows in rows_by_day.values():
        for row in rows:
            scope = incremental.scope(row)
            value = row.get(incremental.column)
            if scope and value is not None and (scope not in marks or value > marks[scope]):
                marks[scope] = value
    current = store.all()
    moved = {}
    for scope, mark in marks.items():
        old = current.get(CURSOR_PREFIX + scope)
        if old is None or datetime.fromisoformat(old) < mark:
            moved[CURSOR_PREFIX + scope] = mark.isoformat()
    if moved:
        store.set_many(moved)
    return moved


def fetch_webhook_deliveries(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    # A redelivery the sidecar landed twice (two replicas, or a crash before its ack) is one row.
    yield from _from_landing(platform, WEBHOOKS_STREAM, window.days, lambda r: r.get("id"))


@dataclass(frozen=True)
class RawSpec:
    table: RawTable
    fetch: Callable[[PlatformResource, Window], Iterator[Fetch]]
    day_column: str | None  # the record's time that picks its partition; None: the fetch decides
    deps: tuple[tuple[str, str], ...] = ()
    incremental: Incremental | None = None


RAW_SPECS = [
    RawSpec(RAW_TABLES["github", "pull_requests"], fetch_github_pull_requests, "updated_at",
            incremental=Incremental(_repo_scope("pull_requests"), "updated_at", ("repo", "id"))),
    RawSpec(RAW_TABLES["github", "issues"], fetch_github_issues, "updated_at",
            incremental=Incremental(_repo_scope("issues"), "updated_at", ("repo", "id"))),
    RawSpec(RAW_TABLES["github", "reviews"], fetch_github_reviews, None, (("github", "pull_requests"),)),
    RawSpec(RAW_TABLES["github", "commits"], fetch_github_commits, "authored_at", (("github", "pull_requests"),),
            incremental=Incremental(_repo_scope("commits"), "authored_at", ("repo", "pull_number", "sha"))),
    RawSpec(RAW_TABLES["linear", "issues"], fetch_linear_issues, "updated_at",
            incremental=Incremental(lambda row: "linear/issues", "updated_at", ("id",))),
    RawSpec(RAW_TABLES["github", "workflow_runs"], fetch_github_workflow_runs, "updated_at"),
    RawSpec(RAW_TABLES["github", "check_runs"], fetch_github_check_runs, None, (("github", "pull_requests"),)),
    RawSpec(RAW_TABLES["linear", "comments"], fetch_linear_comments, "updated_at",
            incremental=Incremental(lambda row: "linear/comments", "updated_at", ("id",))),
    RawSpec(RAW_TABLES["linear", "cycles"], fetch_linear_cycles, None),
    RawSpec(RAW_TABLES["linear", "teams"], fetch_linear_teams, None),
    RawSpec(RAW_TABLES["linear", "users"], fetch_linear_users, None),
    RawSpec(RAW_TABLES["charlie", "instances"], fetch_charlie_instances, None),
    RawSpec(RAW_TABLES["charlie", "health"], fetch_charlie_health, None, (("charlie", "instances"),)),
    RawSpec(RAW_TABLES["charlie", "activity"], fetch_charlie_activity, "occurred_at", (("charlie", "instances"),)),
    RawSpec(RAW_TABLES["openclaw", "sessions"], fetch_openclaw_sessions, "updated_at"),
    RawSpec(RAW_TABLES["cron", "events"], fetch_cron_events, "occurred_at"),
    RawSpec(RAW_TABLES["weather", "opportunities"], fetch_weather_opportunities, "updated_at"),
    RawSpec(RAW_TABLES["system", "metrics"], fetch_system_metrics, "sampled_at"),
    RawSpec(RAW_TABLES["postgres_cdc", "changes"], fetch_postgres_cdc, "committed_at"),
    RawSpec(RAW_TABLES["logs", "lines"], fetch_logs, "received_at"),
    RawSpec(RAW_TABLES["webhooks", "deliveries"], fetch_webhook_deliveries, "received_at"),
]


@dataclass
class Landing:
    rows_by_day: dict[date, list[dict]]
    dead_letters: list[DeadLetter]


def collect(spec: RawSpec, fetched: Iterable[Fetch], window: Window) -> Landing:
    """Flatten fetched records into per-day rows; what cannot be used becomes a dead letter."""
    table = spec.table
    in_window = set(window.days)
    rows_by_day: dict[date, list[dict]] = defaultdict(list)
    dead: list[DeadLetter] = []
    for item, extra, fixed_day in fetched:
        if isinstance(item, MalformedPage):
            dead.append(DeadLetter(table.source, table.entity, f"{item.reason} (page {item.url})", item.body))
            continue
        try:
            row = table.flatten(item, extra)
        except InvalidRecord as exc:
            dead.append(DeadLetter(table.source, table.entity, str(exc), dumps({"record": item, "context": extra})))
            continue
        row["_raw"] = dumps(item)
        day = fixed_day if fixed_day is not None else row[spec.day_column].date()
        if day in in_window:
            rows_by_day[day].append(row)
    return Landing(rows_by_day, dead)


def build_raw_asset(spec: RawSpec):
    table = spec.table
    key = AssetKey(["raw", table.source, table.entity])

    @asset(
        key=key,
        description=table.description,
        group_name=f"raw_{table.source}",
        partitions_def=daily_partitions,
        backfill_policy=single_run_backfill,
        deps=[AssetKey(["raw", *dep]) for dep in spec.deps],
        kinds={"parquet", table.source},
        check_specs=[AssetCheckSpec("no_dead_letters", asset=key,
                                    description="Every fetched record and page of the run was usable.")],
        metadata={"lake_path": f"lake/raw/{table.source}/{table.entity}/date=YYYY-MM-DD/part-0.parquet"},
    )
    def raw_asset(context: AssetExecutionContext, platform: PlatformResource) -> MaterializeResult:
        window = Window([date.fromisoformat(k) for k in context.partition_keys])
        ingested_at = datetime.utcnow().replace(microsecond=0)
        cursors = platform.cursors()
        if spec.incremental:
            overlap = timedelta(seconds=platform.settings().incremental_overlap_s)
            window = Window(window.days, incremental_since(table, cursors.all(), window, overlap))
            for scope, start in sorted(window.since.items()):
                context.log.info("incremental: %s from %s", scope, start.isoformat())
        try:
            if table.source == "postgres_cdc":
                context.log.info("pulled %d change(s) from the replication slot",
                                 pull_postgres_cdc(platform, context.log))
            elif table.source == "logs":
                context.log.info("tailed %d new log line(s)", pull_logs(platform))
            landing = collect(spec, spec.fetch(platform, window), window)
        except SourceUnavailable as exc:
            raise Failure(description=f"{table.source} is unavailable, nothing landed for "
                                      f"{table.source}/{table.entity}: {exc}") from exc
        if window.since:
            merge_landed(platform.lake(), table, spec.incremental.key, window, landing.rows_by_day)
        schema = raw_schema(table)
        per_day = {}
        total_bytes = 0
        for day in window.days:
            written = platform.land(("raw", table.source, table.entity), day,
                                    landing.rows_by_day.get(day, []), schema, ingested_at)
            per_day[day.isoformat()] = written.rows
            total_bytes += written.bytes
        if landing.dead_letters:
            platform.lake().write_dead_letters(table.source, table.entity, window.days[-1],
                                               landing.dead_letters, ingested_at)
            context.log.warning("%d dead letter(s) for %s/%s, first: %s", len(landing.dead_letters),
                                table.source, table.entity, landing.dead_letters[0].reason)
        # Cursors move only once every partition (and its dead letters) is durably written.
        moved = advance_cursors(cursors, spec.incremental, landing.rows_by_day) if spec.incremental else {}
        # A range run records these on every partition it wrote: they describe the run.
        return MaterializeResult(
            metadata={
                "rows_in_run": sum(per_day.values()),
                "rows_per_day": MetadataValue.json(per_day),
                "bytes_in_run": total_bytes,
                "dead_letters_in_run": len(landing.dead_letters),
                "incremental_from": MetadataValue.json({k: v.isoformat() for k, v in window.since.items()}),
                "cursors_moved": MetadataValue.json(moved),
            },
            check_results=[AssetCheckResult(
                check_name="no_dead_letters", passed=not landing.dead_letters,
                severity=AssetCheckSeverity.WARN,
                metadata={"dead_letters": len(landing.dead_letters),
                          "first_reason": landing.dead_letters[0].reason if landing.dead_letters else ""},
            )],
        )

    return raw_asset


raw_assets = [build_raw_asset(spec) for spec in RAW_SPECS]
