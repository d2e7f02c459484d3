"""Operations rules: the things that run the platform and the work — a source's circuit breaker,
Charlie instances and their tasks, cron jobs, hosts — found broken, silent, late or overloaded.

Every rule reads what is on disk, as of `ctx.now`: the breakers' state files, the lake's recent
daily partitions (polled tables with their delivered twins, `raw/webhooks/<source>__<entity>`,
so a record that only came by webhook counts), and for host samples the landing log too, where
the sidecar and the metrics agent write a sample (fsynced) before any build lands it. Nothing
later than `ctx.now` counts, so a rule evaluated "at" a past moment sees that moment.

`count` on these findings is 1 per evaluation that found the condition; the numbers that matter
(failures in a row, tasks failed in the window, minutes over the threshold) are in the message.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cc_alerts.model import Finding, subject
from cc_alerts.reads import landed_files
from cc_alerts.rules.base import Evaluation, Rule, RuleContext
from resources.http.circuit import CircuitBreaker
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.storage.lake import PART_FILE, TablePath

DELIVERED = "webhooks"  # raw/webhooks/<source>__<entity>: the records deliveries and pushes carried
INSTANCES_LINK = {"instances": "/api/charlie/instances"}
HOSTS_LINK = {"metrics": "/dashboard/metrics?timeRange=1h"}


# ---- reading ------------------------------------------------------------------------------------

def _files(ctx: RuleContext, table: TablePath, since: datetime, delivered: bool = False) -> list[str]:
    """The daily partitions of `table` that can hold rows from `since` to now, and of its delivered
    twin with `delivered`: only the recent files are ever opened."""
    tables = [table]
    if delivered:
        tables.append(("raw", DELIVERED, f"{table[1]}__{table[2]}"))
    first = since.date()
    days = [first + timedelta(days=n) for n in range((ctx.now.date() - first).days + 1)]
    return [str(path) for t in tables for day in days
            if (path := ctx.lake.partition_dir(t, day) / PART_FILE).exists()]


def _rows(ctx: RuleContext, sql: str, files: Sequence[str], *params: Any) -> list[dict[str, Any]]:
    """`sql` over `files` (its first parameter); no files, no rows."""
    if not files:
        return []
    cursor = ctx.duckdb.execute(sql, [list(files), *params])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def _span(seconds: float) -> str:
    """A duration as a person reads it: 45 s, 7 min, 3 h 05 min, 2 d 4 h."""
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _at(moment: datetime, now: datetime) -> str:
    """A time of day, with its date when it is not today's."""
    return moment.strftime("%H:%M UTC" if moment.date() == now.date() else "%b %d %H:%M UTC")


# ---- the circuit breaker --------------------------------------------------------------------------

def _circuit_open(ctx: RuleContext) -> Evaluation:
    """An open circuit per source, from the breakers' state files (what every process consults)."""
    folder = ctx.settings.state_dir / "circuits"
    open_s = float(ctx.settings.circuit_open_s)
    now = _epoch(ctx.now)
    findings = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        source = path.stem
        state = CircuitBreaker(source, folder, ctx.settings.circuit_failures, open_s).state()
        if state.opened_at is None:
            continue
        until = state.opened_at + open_s
        stamp = datetime.fromtimestamp(until, UTC).strftime("%H:%M:%S UTC")
        after = (f"calls fail fast until {stamp}, then one trial request" if now < until
                 else f"cooling down ended at {stamp}: the next call is the trial that closes it")
        findings.append(Finding(
            "circuit_open", subject("source", source), "critical",
            f"{source} circuit open after {state.failures} consecutive failures; last error: "
            f"{state.last_error or 'none recorded'}; {after}"))
    # A closed breaker resets its file (or has none): every source not found open is resolved.
    return Evaluation(findings)


# ---- Charlie -------------------------------------------------------------------------------------

def _instances(ctx: RuleContext) -> dict[str, dict[str, Any]]:
    """The registry (a daily snapshot): id -> its latest row."""
    files = _files(ctx, ("raw", "charlie", "instances"), ctx.now - timedelta(days=2))
    rows = _rows(ctx, "select id, name, instance_type, status from read_parquet(?, union_by_name = true)"
                      " qualify row_number() over (partition by id order by _ingested_at desc) = 1", files)
    return {r["id"]: r for r in rows}


def _label(instance_id: str, registry: dict[str, dict[str, Any]]) -> str:
    row = registry.get(instance_id) or {}
    kind = f" ({row['instance_type']})" if row.get("instance_type") else ""
    return f"{row.get('name') or instance_id}{kind}"


def _for_instance(severity: str, instance_id: str, registry: dict[str, dict[str, Any]]) -> str:
    """A production instance's trouble keeps its severity; a staging or development one's is one
    level lower (an offline development box warns, it does not page)."""
    kind = (registry.get(instance_id) or {}).get("instance_type")
    if kind in (None, "production"):
        return severity
    return {"critical": "warning", "warning": "info"}.get(severity, severity)


def _latest_health(ctx: RuleContext) -> dict[str, dict[str, Any]]:
    files = _files(ctx, ("raw", "charlie", "health"), ctx.now - timedelta(days=1))
    rows = _rows(ctx, "select instance_id, status, checked_at, queue_depth, version"
                      " from read_parquet(?, union_by_name = true) where checked_at <= ?"
                      " qualify row_number() over (partition by instance_id order by checked_at desc,"
                      " _ingested_at desc) = 1", files, ctx.now)
    return {r["instance_id"]: r for r in rows}


def _charlie_unhealthy(ctx: RuleContext) -> Evaluation:
    """Each instance's latest health check; anything but `healthy` is an alert (offline or down
    critical, degraded a warning). An instance with no health check is the silent rule's."""
    registry, health = _instances(ctx), _latest_health(ctx)
    findings = []
    for instance_id, check in sorted(health.items()):
        status = str(check["status"]).lower()
        if status == "healthy":
            continue
        severity = _for_instance("warning" if status == "degraded" else "critical", instance_id, registry)
        findings.append(Finding(
            "charlie_unhealthy", subject("instance", instance_id), severity,
            f"{_label(instance_id, registry)} is {status}: health check at {_at(check['checked_at'], ctx.now)}, "
            f"queue depth {check['queue_depth'] if check['queue_depth'] is not None else '?'}, "
            f"version {check['version'] or '?'}", dict(INSTANCES_LINK)))
    return Evaluation(findings, covers={subject("instance", i) for i in health})


def _charlie_silent(ctx: RuleContext) -> Evaluation:
    """Each registered instance's last sign of life: its latest health check or activity (polled
    or pushed). Nothing for longer than `silent_s` is an alert."""
    silent_s = ctx.threshold("charlie_silent", "silent_s")
    since = ctx.now - timedelta(seconds=max(silent_s, 86400.0))
    registry, health = _instances(ctx), _latest_health(ctx)
    activity = {r["instance_id"]: r for r in _rows(
        ctx, "select instance_id, arg_max(activity_type, occurred_at) as activity_type,"
             " max(occurred_at) as occurred_at from read_parquet(?, union_by_name = true)"
             " where occurred_at > ? and occurred_at <= ? group by instance_id",
        _files(ctx, ("raw", "charlie", "activity"), since, delivered=True), since, ctx.now)}
    findings = []
    for instance_id in sorted(registry.keys() | health.keys() | activity.keys()):
        heard = []
        if instance_id in health:
            heard.append((health[instance_id]["checked_at"], "health check"))
        if instance_id in activity:
            heard.append((activity[instance_id]["occurred_at"], activity[instance_id]["activity_type"]))
        last = max(heard, default=None)
        if last is not None and (ctx.now - last[0]).total_seconds() <= silent_s:
            continue
        quiet = (f"for {_span((ctx.now - last[0]).total_seconds())} (last: {last[1]} at {_at(last[0], ctx.now)})"
                 if last else f"in the last {_span((ctx.now - since).total_seconds())}")
        findings.append(Finding(
            "charlie_silent", subject("instance", instance_id), _for_instance("warning", instance_id, registry),
            f"{_label(instance_id, registry)} is silent: no health check or activity {quiet}; "
            f"expected at least every {_span(silent_s)}", dict(INSTANCES_LINK)))
    return Evaluation(findings)


def _charlie_task_failed(ctx: RuleContext) -> Evaluation:
    """Failed tasks per instance over the last `window_s` (polled and pushed activity, each event
    once); `failures` or more is an alert, naming the latest failure."""
    window_s = ctx.threshold("charlie_task_failed", "window_s")
    least = ctx.threshold("charlie_task_failed", "failures")
    since = ctx.now - timedelta(seconds=window_s)
    failed = _rows(
        ctx, "select instance_id, count(distinct id) as failures, max(occurred_at) as last_at,"
             " arg_max(message, occurred_at) as message, arg_max(issue_key, occurred_at) as issue_key,"
             " arg_max(correlation_id, occurred_at) as correlation_id from read_parquet(?, union_by_name = true)"
             " where activity_type = 'task.failed' and occurred_at > ? and occurred_at <= ? group by instance_id",
        _files(ctx, ("raw", "charlie", "activity"), since, delivered=True), since, ctx.now)
    registry = _instances(ctx) if failed else {}
    findings = []
    for row in sorted(failed, key=lambda r: r["instance_id"]):
        if row["failures"] < least:
            continue
        task = row["issue_key"] or row["correlation_id"]
        links = dict(INSTANCES_LINK)
        if row["issue_key"]:
            links["workflow"] = f"/api/events?workflow=linear:{row['issue_key']}"
        plural = "s" if row["failures"] != 1 else ""
        findings.append(Finding(
            "charlie_task_failed", subject("instance", row["instance_id"]),
            _for_instance("warning", row["instance_id"], registry),
            f"{_label(row['instance_id'], registry)}: {row['failures']} failed task{plural} in the last "
            f"{_span(window_s)}; latest at {_at(row['last_at'], ctx.now)}: {row['message'] or 'no reason given'}"
            + (f" ({task})" if task and task not in (row["message"] or "") else ""), links))
    # An instance with no failure left in the window is resolved.
    return Evaluation(findings)


# ---- cron ----------------------------------------------------------------------------------------

def _cron_runs(ctx: RuleContext, days: float) -> dict[str, list[dict[str, Any]]]:
    """Runs per job over the last `days`, oldest first, as fct_cron_runs derives them: a run's time
    is its start (its first event), its outcome its latest finishing event."""
    since = ctx.now - timedelta(days=days)
    rows = _rows(
        ctx, "with events as (select distinct on (id) * from read_parquet(?, union_by_name = true)"
             " where occurred_at > ? and occurred_at <= ?)"
             " select run_id, min(job) as job, min(host) as host, min(occurred_at) as run_at,"
             " arg_max(run_event, seq) filter (where run_event in ('succeeded', 'failed')) as outcome,"
             " max(occurred_at) filter (where run_event in ('succeeded', 'failed')) as finished_at,"
             " arg_max(exit_code, seq) filter (where run_event in ('succeeded', 'failed')) as exit_code,"
             " arg_max(message, seq) filter (where run_event in ('succeeded', 'failed')) as message"
             " from events group by run_id order by run_at, run_id",
        _files(ctx, ("raw", "cron", "events"), since, delivered=True), since, ctx.now)
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        runs[row["job"]].append(row)
    return runs


def _cron_failed(ctx: RuleContext) -> Evaluation:
    """Each job's latest finished run; failed is an alert (critical after `critical_after` failed
    runs in a row) until a later run succeeds."""
    critical_after = ctx.threshold("cron_failed", "critical_after")
    findings, covers = [], set()
    for job, runs in sorted(_cron_runs(ctx, ctx.threshold("cron_failed", "history_days")).items()):
        finished = sorted((r for r in runs if r["outcome"]), key=lambda r: (r["finished_at"], r["run_at"]))
        if not finished:
            continue
        covers.add(subject("job", job))
        last = finished[-1]
        if last["outcome"] != "failed":
            continue
        streak = 0
        for run in reversed(finished):
            if run["outcome"] != "failed":
                break
            streak += 1
        success = next((r for r in reversed(finished) if r["outcome"] == "succeeded"), None)
        history = [f"{streak} failed runs in a row since {_at(finished[-streak]['run_at'], ctx.now)}"] if streak > 1 else []
        history.append(f"last success {_at(success['finished_at'], ctx.now)}" if success
                       else f"no success in the last {_span((ctx.now - finished[0]['run_at']).total_seconds())}")
        findings.append(Finding(
            "cron_failed", subject("job", job), "critical" if streak >= critical_after else "warning",
            f"{job} failed on {last['host'] or '?'} at {_at(last['finished_at'], ctx.now)}: "
            f"exit {last['exit_code'] if last['exit_code'] is not None else '?'}, "
            f"{last['message'] or 'no message'} ({'; '.join(history)})"))
    return Evaluation(findings, covers=covers)


def _usual_gap(starts: Sequence[datetime]) -> float:
    """The gap between runs its schedule usually leaves: the 95th percentile (nearest rank) of the
    gaps seen, so a weekday job's weekend counts as usual and a missed run or two does not."""
    gaps = sorted((b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False))
    return gaps[math.ceil(0.95 * len(gaps)) - 1]


def _cron_late(ctx: RuleContext) -> Evaluation:
    """A job with no run for longer than its schedule's usual gap plus `grace_s`. The runner's
    events carry no schedule, so each job's schedule is learnt from its own starts over
    `history_days` (at least `min_runs` of them; a job with fewer is not judged). Two weeks and a
    day always hold a whole weekend of a weekday job, so its Friday-to-Monday gap is usual."""
    grace_s = ctx.threshold("cron_late", "grace_s")
    min_runs = max(3, int(ctx.threshold("cron_late", "min_runs")))
    findings, covers = [], set()
    for job, runs in sorted(_cron_runs(ctx, ctx.threshold("cron_late", "history_days")).items()):
        starts = [r["run_at"] for r in runs]
        if len(starts) < min_runs:
            continue
        covers.add(subject("job", job))
        usual, quiet = _usual_gap(starts), (ctx.now - starts[-1]).total_seconds()
        if quiet <= usual + grace_s:
            continue
        findings.append(Finding(
            "cron_late", subject("job", job), "warning",
            f"{job} on {runs[-1]['host'] or '?'} is late: no run since {_at(starts[-1], ctx.now)} "
            f"({_span(quiet)} ago); it usually runs at least every {_span(usual)} (95% of the {len(starts) - 1:,} "
            f"gaps between its runs), grace {_span(grace_s)}"))
    return Evaluation(findings, covers=covers)


# ---- hosts ---------------------------------------------------------------------------------------

_LANDED_SQL = ("select id, host, sampled_at, cpu_percent, memory_percent, disk_percent"
               " from read_parquet(?, union_by_name = true) where sampled_at > ? and sampled_at <= ?")
_LOGGED_SQL = (
    "select id, host, sampled_at, cpu_percent, memory_percent, disk_percent from ("
    " select id, host, try_cast(sampled_at as timestamptz) at time zone 'UTC' as sampled_at,"
    " cpu_percent, memory_percent, disk_percent"
    " from read_json(?, format = 'newline_delimited', ignore_errors = true, columns = {id: 'VARCHAR',"
    " host: 'VARCHAR', sampled_at: 'VARCHAR', cpu_percent: 'DOUBLE', memory_percent: 'DOUBLE',"
    " disk_percent: 'DOUBLE'})) where id is not null and sampled_at > ? and sampled_at <= ?")


def _host_samples(ctx: RuleContext, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """Samples per host from `since` to now, oldest first, each id once: those `raw/system/metrics`
    landed, and those only in the landing log so far (the sidecar and the agent write a sample
    there before any build lands it)."""
    first = since.date()
    days = [first + timedelta(days=n) for n in range((ctx.now.date() - first).days + 1)]
    ctx.duckdb.execute("set TimeZone = 'UTC'")  # a sample time without an offset is UTC
    by_id = {r["id"]: r for r in _rows(ctx, _LANDED_SQL, _files(ctx, ("raw", "system", "metrics"), since),
                                       since, ctx.now)}
    with landed_files(ctx.settings, METRICS_STREAM, days) as log_files:
        logged = _rows(ctx, _LOGGED_SQL, log_files, since, ctx.now)
    by_id.update((r["id"], r) for r in logged if r["id"] not in by_id)
    hosts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(by_id.values(), key=lambda r: r["sampled_at"]):
        hosts[row["host"]].append(row)
    return hosts


def _host_rule(name: str, column: str, what: str) -> Callable[[RuleContext], Evaluation]:
    def evaluate(ctx: RuleContext) -> Evaluation:
        """A host whose `column` stayed over `percent` for `duration_s`: its latest samples are all
        over, the first of them at least `duration_s` ago, and there are `min_samples` of them. A
        host with no sample in the last `duration_s` is not judged (its alert, if any, stays)."""
        percent = ctx.threshold(name, "percent")
        duration_s = ctx.threshold(name, "duration_s")
        min_samples = max(1, int(ctx.threshold(name, "min_samples")))
        recent = ctx.now - timedelta(seconds=duration_s)
        findings, covers = [], set()
        for host, samples in sorted(_host_samples(ctx, recent - timedelta(seconds=duration_s)).items()):
            readings = [(s["sampled_at"], s[column]) for s in samples if s[column] is not None]
            if not readings or readings[-1][0] <= recent:
                continue
            covers.add(subject("host", host))
            streak = []
            for at, value in reversed(readings):
                if value <= percent:
                    break
                streak.append((at, value))
            if len(streak) < min_samples or streak[-1][0] > recent:
                continue
            # The streak may go back further than what was read: then it is "or more".
            over = _span((ctx.now - streak[-1][0]).total_seconds()) + (" or more" if streak[-1] == readings[0] else "")
            findings.append(Finding(
                name, subject("host", host), "warning",
                f"{host} {what} at {streak[0][1]:.1f}%, over {percent:g}% for {over} "
                f"({len(streak)} samples, peak {max(v for _, v in streak):.1f}%)", dict(HOSTS_LINK)))
        return Evaluation(findings, covers=covers)

    return evaluate


# ---- the rules -----------------------------------------------------------------------------------

HOST_THRESHOLDS = {"percent": 90.0, "duration_s": 300.0, "min_samples": 2.0}

RULES: list[Rule] = [
    Rule("circuit_open", "a source's circuit breaker is open (its calls fail fast); resolved once a trial "
         "request succeeds and closes it", 5.0, "critical", {}, "the source's sensors skip while it is open",
         "sidecar", _circuit_open),
    Rule("charlie_unhealthy", "a Charlie instance's latest health check is not healthy (offline critical, "
         "degraded warning; one level lower off production)", 30.0, "critical", {}, "none", "sidecar",
         _charlie_unhealthy),
    Rule("charlie_silent", "no health check or activity from a Charlie instance for `silent_s`", 30.0, "warning",
         {"silent_s": 120.0}, "none", "sidecar", _charlie_silent),
    Rule("charlie_task_failed", "`failures` or more failed Charlie tasks on an instance in the last `window_s`",
         30.0, "warning", {"window_s": 3600.0, "failures": 1.0}, "none", "sidecar", _charlie_task_failed),
    Rule("cron_failed", "a cron job's latest run failed (critical after `critical_after` in a row); resolved by "
         "a later success", 60.0, "warning", {"critical_after": 3.0, "history_days": 8.0}, "none", "sidecar",
         _cron_failed),
    Rule("cron_late", "no run of a cron job for longer than its usual gap (learnt from `history_days` of its "
         "runs) plus `grace_s`", 60.0, "warning", {"grace_s": 300.0, "min_runs": 3.0, "history_days": 15.0},
         "none", "sidecar", _cron_late),
    Rule("host_cpu", "a host's CPU over `percent` for `duration_s` (every sample, at least `min_samples`)",
         30.0, "warning", dict(HOST_THRESHOLDS), "none", "sidecar", _host_rule("host_cpu", "cpu_percent", "CPU")),
    Rule("host_memory", "a host's memory use over `percent` for `duration_s` (every sample, at least "
         "`min_samples`)", 30.0, "warning", dict(HOST_THRESHOLDS), "none", "sidecar",
         _host_rule("host_memory", "memory_percent", "memory")),
    Rule("host_disk", "a host's disk use over `percent` for `duration_s` (every sample, at least `min_samples`)",
         30.0, "warning", dict(HOST_THRESHOLDS), "none", "sidecar", _host_rule("host_disk", "disk_percent", "disk")),
]
