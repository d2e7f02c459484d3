"""The agent-side sources of the same organisation: OpenClaw agent sessions, cron runs, weather arbitrage.

Derived from a generated `Org` after the fact, each with its own seeded random stream, so adding
them changes nothing in the GitHub, Linear and Charlie world or in `truth.parquet`.

Sessions follow the work the org already holds: a Charlie instance plans an issue, implements it
(opening its PR), fixes review feedback, reviews other PRs and runs its scheduled jobs; people run
coding agents on their own issues and on questions that name nothing. A session names at most the
Linear issue and the PR of one story, and those are always keys of one workflow of the org.
Cron runs follow fixed schedules over the window; weather opportunities come from a scanner that
runs every 15 minutes.
"""

from __future__ import annotations

import math
import random
import time

from sandbox import text
from sandbox.model import (
    DAY,
    HOUR,
    MIN,
    Activity,
    AgentWorld,
    CronEvent,
    CronJob,
    Instance,
    LinearIssue,
    Opportunity,
    Org,
    Pull,
    Session,
    paused_gc,
)

# USD per million tokens (input, output), list prices without cache discounts.
MODEL_PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-1": (15.0, 75.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "gpt-5": (1.25, 10.0),
    "gpt-5-codex": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gemini-2.5-pro": (1.25, 10.0),
}
_INSTANCE_MODELS = {"production": "claude-sonnet-4-5", "staging": "claude-opus-4-1", "development": "gpt-5-codex"}
_HELPERS = (  # coding agents people run themselves, and the models they pick
    ("claude-code", ("claude-sonnet-4-5", "claude-sonnet-4-5", "claude-opus-4-1")),
    ("codex", ("gpt-5-codex", "gpt-5")),
    ("cursor-agent", ("claude-sonnet-4-5", "gpt-5")),
    ("aider", ("gemini-2.5-pro", "claude-sonnet-4-5")),
)


def session_cost(model: str, tokens_input: int, tokens_output: int) -> float:
    """What a session costs at the model's list price, to the hundredth of a cent."""
    price_in, price_out = MODEL_PRICES[model]
    return round((tokens_input * price_in + tokens_output * price_out) / 1_000_000, 4)


def generate_agents(org: Org) -> AgentWorld:
    """The agent-side sources of `org`; the same org always gives the same sources."""
    with paused_gc():
        sessions = _Sessions(org).build()
        jobs, events = _cron(org)
        return AgentWorld(sessions, jobs, events, _weather(org))


def _rng(org: Org, stream: str) -> random.Random:
    # A string seed is hashed with SHA-512: stable across runs and Python processes.
    return random.Random(f"{org.seed}/{org.events_target}/{org.start}/{org.end}/{stream}")


# ---- OpenClaw sessions -----------------------------------------------------------------------------
class _Sessions:
    def __init__(self, org: Org) -> None:
        self.org, self.rng = org, _rng(org, "openclaw")
        self.out: list[Session] = []
        self.ids: set[str] = set()

    def _gap(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def _add(self, agent: str, inst: Instance | None, model: str, t0: int, t1: int, status: str, title: str,
             issue: LinearIssue | None = None, pull: Pull | None = None) -> Session | None:
        """A session from t0 planned to end at t1; one still going at `end` is running. None before `start`."""
        org, rng = self.org, self.rng
        if not org.start <= t0 <= org.end:
            return None
        t1 = max(t1, t0 + 20)
        if t1 > org.end:
            status, ended, updated = "running", None, org.end - rng.randint(0, min(300, org.end - t0))
        else:
            ended = updated = t1
        minutes = min((updated - t0) / MIN, 240.0)  # long sessions compact their context
        tokens_in = int(rng.randint(4_000, 25_000) + minutes * rng.uniform(3_000, 15_000))
        tokens_out = int(tokens_in * rng.uniform(0.01, 0.05))
        while (sid := f"ses_{rng.getrandbits(64):016x}") in self.ids:
            pass
        self.ids.add(sid)
        session = Session(sid, agent, inst, status, model, t0, ended, updated, tokens_in, tokens_out,
                          session_cost(model, tokens_in, tokens_out), title, issue, pull)
        self.out.append(session)
        return session

    def build(self) -> list[Session]:
        by_issue: dict[str, list[Activity]] = {}
        by_run: dict[str, list[Activity]] = {}
        for act in self.org.activities:  # in time order
            if act.correlation_id:
                by_run.setdefault(act.correlation_id, []).append(act)
            elif act.issue is not None:
                by_issue.setdefault(act.issue.id, []).append(act)
        for acts in by_issue.values():
            self._charlie_issue(acts)
        for acts in by_run.values():
            self._charlie_run(acts)
        self._charlie_reviews()
        self._helpers()
        self.out.sort(key=lambda s: (s.updated_at, s.id))
        return self.out

    def _charlie_issue(self, acts: list[Activity]) -> None:
        """Plan (sometimes), implement until the PR opens (retried after a crash), fix review feedback."""
        rng, first = self.rng, acts[0]
        if first.type != "task.started":
            return
        inst, issue = first.instance, first.issue
        assert issue is not None
        model = _INSTANCE_MODELS[inst.type]
        begin = first.timestamp
        if rng.random() < 0.5 and begin - 15 * MIN > issue.created_at:
            self._add(inst.id, inst, "claude-haiku-4-5", begin - self._gap(3 * MIN, 15 * MIN),
                      begin - self._gap(5, 40), "completed", f"Plan {issue.identifier}: {issue.title}", issue)
        opened = next((a for a in acts if a.type == "pr.opened"), None)
        stopped = next((a for a in acts if a.type == "task.failed" and a.pull is None), None)
        title = f"{issue.identifier}: {issue.title}"
        t0 = begin - self._gap(2, 20)
        if opened is not None:
            t1, status, pull = opened.timestamp + self._gap(5, 90), "completed", opened.pull
        elif stopped is not None:
            t1, status, pull = stopped.timestamp + self._gap(1, 20), "cancelled", None
        else:  # the PR would open after `end`: still at work
            t1, status, pull = self.org.end + 1, "completed", None
        if rng.random() < 0.08:  # the agent crashed; a new session picks the work up again
            crash = t0 + int((t1 - t0) * rng.uniform(0.2, 0.7))
            self._add(inst.id, inst, model, t0, crash, "failed", title, issue)
            t0 = crash + self._gap(30, 5 * MIN)
        self._add(inst.id, inst, model, t0, t1, status, title, issue, pull)
        for act in acts:
            if act.type == "comment.posted" and act.pull is not None:  # review feedback addressed
                start = max(act.pull.created_at + MIN, act.timestamp - self._gap(4 * MIN, 30 * MIN))
                self._add(inst.id, inst, model, start, act.timestamp + self._gap(5, 60), "completed",
                          f"Address review feedback on {act.pull.ref}", issue, act.pull)

    def _charlie_run(self, acts: list[Activity]) -> None:
        """A scheduled run: one session from start to finish, naming the PR it opened, if any."""
        first, last = acts[0], acts[-1]
        if first.type != "task.started":
            return
        pull = next((a.pull for a in acts if a.pull is not None), None)
        if last.type == "task.completed":
            status = "completed"
        elif last.type == "task.failed":
            status = "failed"
        else:
            status = "running"
        t1 = last.timestamp + self._gap(5, 60) if status != "running" else self.org.end + 1
        name = first.message.removesuffix(" started")
        self._add(first.instance.id, first.instance, "gpt-5-mini", first.timestamp - self._gap(2, 20), t1, status,
                  name, pull=pull)

    def _charlie_reviews(self) -> None:
        """A Charlie instance asked to review a PR: a short session naming the PR only."""
        bots = {id(i.github): i for i in self.org.instances}
        for pull in self.org.pulls:
            for review in pull.reviews:
                inst = bots.get(id(review.user))
                if inst is not None:
                    at = review.submitted_at
                    self._add(inst.id, inst, "claude-haiku-4-5", at - self._gap(2 * MIN, 10 * MIN),
                              at + self._gap(2, 30), "completed", f"Review {pull.ref}", pull=pull)

    def _helpers(self) -> None:
        """People's own coding agents: on their Linear issues before the PR, and on questions."""
        org, rng = self.org, self.rng
        for pull in org.pulls:
            if pull.user.type != "User" or not pull.refs or not isinstance(pull.refs[0], LinearIssue):
                continue
            if rng.random() >= 0.25:
                continue
            issue = pull.refs[0]
            agent, models = rng.choice(_HELPERS)
            t0 = max(issue.created_at + MIN, pull.created_at - self._gap(10 * MIN, 3 * HOUR))
            if rng.random() < 0.5:  # the agent opened the PR too
                t1, named = pull.created_at + self._gap(5, 60), pull
            else:
                t1, named = pull.created_at - self._gap(MIN, 10 * MIN), None
            status = "completed" if rng.random() < 0.93 else "cancelled"
            self._add(agent, None, rng.choice(models), t0, t1, status, f"{issue.identifier}: {issue.title}",
                      issue, named)
        for _ in range(max(3, int(len(org.humans) * org.days * 0.6))):
            agent, models = rng.choice(_HELPERS)
            t0 = _work_time(rng, org.start, org.end)
            roll = rng.random()
            status = "completed" if roll < 0.86 else "cancelled" if roll < 0.94 else "failed"
            self._add(agent, None, rng.choice(models), t0, t0 + self._gap(3 * MIN, 60 * MIN), status,
                      rng.choice(text.AGENT_PROMPTS))


def _work_time(rng: random.Random, start: int, end: int) -> int:
    """Mostly working hours (UTC) on weekdays, as people work."""
    while True:
        t = rng.randint(start, end - 1)
        tm = time.gmtime(t)
        if (tm.tm_wday < 5 and 8 <= tm.tm_hour < 19) or rng.random() < 0.2:
            return t


# ---- cron ------------------------------------------------------------------------------------------
# name, schedule (UTC), host, description, run seconds (lo, hi), failure rate, failures (exit code, message),
# success message template (%d: a count).
_JOBS = (
    ("session-reaper", "*/5 * * * *", "app-01", "Cancels agent sessions idle for 30 minutes", (1, 8), 0.004,
     ((1, "database is locked"),), "reaped %d idle sessions"),
    ("cache-warm", "*/15 * * * *", "app-02", "Warms the API response cache", (20, 90), 0.01,
     ((124, "timed out after 120s"),), "warmed %d keys"),
    ("invoice-sync", "*/30 * * * *", "worker-01", "Pulls new invoices from the billing provider", (30, 240), 0.02,
     ((1, "billing API returned 502 Bad Gateway"),), "synced %d invoices"),
    ("metrics-rollup", "5 * * * *", "worker-02", "Rolls up hourly platform metrics", (40, 300), 0.01,
     ((2, "lock held by another run"),), "rolled up %d series"),
    ("search-reindex", "0 */6 * * *", "search-01", "Rebuilds the search index", (600, 2400), 0.06,
     ((137, "killed: out of memory"),), "reindexed %d documents"),
    ("log-rotate", "0 0 * * *", "web-01", "Rotates and compresses web server logs", (5, 30), 0.0,
     (), "rotated %d files"),
    ("db-backup", "0 2 * * *", "db-01", "Dumps Postgres to object storage", (900, 2700), 0.05,
     ((1, "pg_dump: error: connection to server lost"),), "backup of %d GiB uploaded"),
    ("cert-renew", "0 3 * * 1", "edge-01", "Renews TLS certificates due within 30 days", (10, 60), 0.1,
     ((1, "ACME challenge failed for api.acme.dev"),), "%d certificates checked"),
    ("dbt-nightly", "30 4 * * *", "worker-02", "Builds the warehouse models", (900, 3600), 0.1,
     ((1, "2 of 214 models failed"), (2, "profile not found")), "%d models built, all tests passed"),
    ("stale-branch-cleanup", "0 6 * * 1-5", "ci-01", "Deletes merged branches older than 30 days", (20, 120),
     0.02, ((1, "GitHub API rate limit exceeded"),), "deleted %d stale branches"),
    ("disk-usage-report", "0 8 * * 1-5", "ops-01", "Mails the disk usage report", (5, 40), 0.01,
     ((1, "df: /mnt/scratch: Stale file handle"),), "report sent, fullest volume at %d%%"),
)
_COUNTS = {"session-reaper": (0, 6), "cache-warm": (800, 5000), "invoice-sync": (0, 40),
           "metrics-rollup": (1200, 1800), "search-reindex": (180_000, 260_000), "log-rotate": (4, 12),
           "db-backup": (38, 46), "cert-renew": (3, 9), "dbt-nightly": (210, 214),
           "stale-branch-cleanup": (0, 25), "disk-usage-report": (41, 88)}


def cron_times(schedule: str, start: int, end: int) -> list[int]:
    """Minutes in [start, end] a five-field cron expression (UTC) fires at, in order."""
    minute, hour, dom, month, dow = schedule.split()
    minutes, hours = _field(minute, 0, 59), _field(hour, 0, 23)
    doms, months, dows = _field(dom, 1, 31), _field(month, 1, 12), {d % 7 for d in _field(dow, 0, 7)}
    out = []
    for day in range(start - start % DAY, end + 1, DAY):
        tm = time.gmtime(day)
        wday = (tm.tm_wday + 1) % 7  # cron counts from Sunday
        in_dom, in_dow = tm.tm_mday in doms, wday in dows
        # Both day fields restricted: either may match (cron's rule); otherwise both must.
        fits = (in_dom or in_dow) if dom != "*" and dow != "*" else (in_dom and in_dow)
        if tm.tm_mon in months and fits:
            out += [t for h in sorted(hours) for m in sorted(minutes)
                    if start <= (t := day + h * HOUR + m * MIN) <= end]
    return out


def _field(spec: str, lo: int, hi: int) -> set[int]:
    values: set[int] = set()
    for part in spec.split(","):
        body, _, step = part.partition("/")
        if body == "*":
            a, b = lo, hi
        elif "-" in body:
            a, b = (int(x) for x in body.split("-"))
        else:
            a = int(body)
            b = hi if step else a
        values.update(range(a, b + 1, int(step or 1)))
    return values


def _cron(org: Org) -> tuple[list[CronJob], list[CronEvent]]:
    rng = _rng(org, "cron")
    jobs, runs = [], []
    # One stretch of a few hours when the billing provider is down and every invoice sync fails.
    outage = rng.randint(org.start, max(org.start, org.end - 4 * HOUR))
    outage_end = outage + rng.randint(2 * HOUR, 4 * HOUR)
    run_ids: set[str] = set()
    for name, schedule, host, description, (lo, hi), fail_rate, failures, done in _JOBS:
        job = CronJob(name, schedule, host, description)
        jobs.append(job)
        for fire in cron_times(schedule, org.start, org.end):
            started = fire + rng.randint(0, 3)
            if started > org.end:
                continue
            while (run_id := f"r{rng.getrandbits(48):012x}") in run_ids:
                pass
            run_ids.add(run_id)
            runs.append(CronEvent(0, "", job, "started", run_id, started))
            duration_ms = rng.randint(lo * 1000, hi * 1000)
            down = name == "invoice-sync" and outage <= fire < outage_end
            if down or (failures and rng.random() < fail_rate):
                code, message = failures[0] if down else rng.choice(failures)
                if code == 124:
                    duration_ms = 120_000
                outcome = CronEvent(0, "", job, "failed", run_id, 0, duration_ms, code, message)
            else:
                outcome = CronEvent(0, "", job, "succeeded", run_id, 0, duration_ms, 0,
                                    done % rng.randint(*_COUNTS[name]))
            outcome.at = started + duration_ms // 1000
            if outcome.at <= org.end:  # a run still going at `end` has only started
                runs.append(outcome)
    # By time; a run's start before its end; then generation order.
    runs.sort(key=lambda e: (e.at, e.event != "started"))
    ids: set[str] = set()
    for seq, event in enumerate(runs, 1):
        event.seq = seq
        while (eid := f"cev_{rng.getrandbits(64):016x}") in ids:
            pass
        ids.add(eid)
        event.id = eid
    return jobs, runs


# ---- weather arbitrage -----------------------------------------------------------------------------
# city, Kalshi code, Polymarket slug, mean daily high (F), seasonal swing (F), UTC offset (h)
_CITIES = (
    ("New York", "NY", "nyc", 62.0, 22.0, -5), ("Chicago", "CHI", "chicago", 59.0, 26.0, -6),
    ("Miami", "MIA", "miami", 84.0, 7.0, -5), ("Austin", "AUS", "austin", 80.0, 17.0, -6),
    ("Denver", "DEN", "denver", 65.0, 22.0, -7), ("Los Angeles", "LAX", "los-angeles", 75.0, 7.0, -8),
    ("Philadelphia", "PHIL", "philadelphia", 64.0, 22.0, -5),
)
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_SCAN, _BANKROLL = 15 * MIN, 2500.0


def _weather(org: Org) -> list[Opportunity]:
    rng = _rng(org, "weather")
    anomaly: dict[tuple[str, int], float] = {}  # how far a day's real high sits from the seasonal normal
    out: list[Opportunity] = []
    ids: set[str] = set()
    first = org.start + (-org.start) % _SCAN
    for scan in range(first, org.end + 1, _SCAN):
        today = scan - scan % DAY
        for city, code, slug, mean, swing, offset in _CITIES:
            for day in (today, today + DAY):
                if rng.random() >= 0.02:
                    continue
                tm = time.gmtime(day)
                normal = mean + swing * math.cos(2 * math.pi * (tm.tm_yday - 201) / 365)
                base = anomaly.setdefault((city, day), rng.gauss(0, 6))
                forecast = round(normal + base + rng.gauss(0, 0.8), 1)
                implied = round(forecast + rng.choice((-1, 1)) * rng.uniform(1.0, 4.5), 1)
                low = math.floor(forecast)
                if rng.random() < 0.75:
                    market = "kalshi"
                    month = _MONTHS[tm.tm_mon - 1][:3].upper()
                    contract = f"KXHIGH{code}-{tm.tm_year % 100:02d}{month}{tm.tm_mday:02d}-B{low}.5"
                else:
                    market = "polymarket"
                    month = _MONTHS[tm.tm_mon - 1]
                    contract = f"highest-temperature-in-{slug}-on-{month}-{tm.tm_mday}-{low}-{low + 1}f"
                edge = rng.uniform(0.03, 0.25)
                price = rng.uniform(0.08, 0.55)
                confidence = rng.uniform(0.55, 0.95) if day == today else rng.uniform(0.45, 0.8)
                kelly = edge / (1 - price)
                stake = min(250.0, max(5.0, round(_BANKROLL * kelly * 0.25 * confidence, 2)))
                detected = scan + rng.randint(5, 90)
                settles = day + DAY - offset * HOUR  # local midnight after the contract's day
                taken = detected + rng.randint(2 * MIN, 60 * MIN) if rng.random() < 0.5 * confidence else None
                gone = min(settles, detected + rng.randint(30 * MIN, 8 * HOUR))  # the market moved or settled
                if taken is not None and taken <= org.end and taken < gone:
                    status, updated = "taken", taken
                elif gone <= org.end:
                    status, updated = "expired", gone
                else:
                    status, updated = "open", min(org.end, detected)
                if detected > org.end:
                    continue
                while (oid := f"opp_{rng.getrandbits(48):012x}") in ids:
                    pass
                ids.add(oid)
                out.append(Opportunity(oid, market, city, contract, forecast, implied, round(edge * 100, 1),
                                       round(confidence, 2), stake, status, detected, updated))
    out.sort(key=lambda o: (o.updated_at, o.id))
    return out
