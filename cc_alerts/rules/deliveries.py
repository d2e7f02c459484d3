"""Rules about what deliveries brought (cc_alerts/rules/__init__.py): records dropped as
schema-invalid, and events a pushing source had to be polled for. Both read the webhook landing
log through one incremental tail per process (`cc_alerts.reads.LandingTail`)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from cc_alerts.model import Finding, subject
from cc_alerts.reads import LandingTail, days, landing_tail, part_files
from cc_alerts.rules.base import Evaluation, Rule, RuleContext
from cc_alerts.rules.data_quality import (
    PUSHED_AND_POLLED,
    WEBHOOKS,
    _ago,
    _duckdb,
    _newest_landing,
    _since_last_evaluation,
)
from cc_events.context import NormalizeContext
from cc_events.model import InvalidRecord
from cc_events.registry import RAW_TABLES, normalize, normalize_delivery
from cc_events.sources.webhooks import LANDING_STREAM as WEBHOOKS_STREAM

# --- schema validation ----------------------------------------------------------------------------

def _letter_source(source: str, entity: str) -> str:
    """The source a dead letter is about: a carried record's (`webhooks`/`github__reviews`) is GitHub's."""
    return entity.partition("__")[0] if source == WEBHOOKS and "__" in entity else source


def evaluate_schema_validation(ctx: RuleContext) -> Evaluation:
    now, settings = ctx.now, ctx.settings
    since = now - timedelta(seconds=ctx.threshold(SCHEMA_VALIDATION, "window_s"))
    fresh = _since_last_evaluation(SCHEMA_VALIDATION, now)
    limit = ctx.threshold(SCHEMA_VALIDATION, "per_minute")
    letters: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    base = Path(settings.lake_dir) / "dead_letter"
    files = [str(p) for d in days(since, now) for p in base.glob(f"*/*/date={d.isoformat()}/part-0.parquet")]
    if files:
        # The sidecar's own refusals of deliveries are read below, at the second they were refused.
        for source, entity, reason, at in _duckdb(ctx).execute(
                "select source, entity, reason, failed_at from read_parquet(?, union_by_name = true)"
                " where failed_at >= ? and failed_at <= ? and not (source = 'webhooks' and entity = 'deliveries')",
                [files, since, now]).fetchall():
            letters[_letter_source(source, entity)].append((at, reason or ""))
    # Deliveries the sidecar refused: the landing log (every replica's) and the live facts (every
    # replica's too, shared through Redis: streaming/alerting.py), whichever holds more.
    refused: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for delivery in _deliveries(settings).since(since, now):
        if delivery.status == "dead_letter":
            refused[delivery.source].append((delivery.at, delivery.reason))
    for source, seen in ctx.facts.dead_letters_since(since).items():
        if len(seen) > len(refused.get(source, [])):
            refused[source] = list(seen)
    for source, seen in refused.items():
        letters[source] += seen
    findings = []
    for source, seen in sorted(letters.items()):
        if len(seen) < limit:
            continue
        reasons = Counter(reason[:120] for _, reason in seen).most_common(3)
        top = "; ".join(f"{reason} ({n})" for reason, n in reasons)
        findings.append(Finding(
            SCHEMA_VALIDATION.name, subject("source", source), SCHEMA_VALIDATION.severity,
            f"{source}: {len(seen)} record(s) dropped as schema-invalid in the last "
            f"{_ago((now - since).total_seconds())} (kept in dead letters); top reasons: {top}",
            links={"dead_letters": str(base)}, count=max(1, sum(1 for at, _ in seen if at > fresh))))
    return Evaluation(findings)


SCHEMA_VALIDATION = Rule(
    "schema_validation",
    "records and deliveries dropped as schema-invalid (dead letters) per source and minute, with the reasons",
    30.0, "warning", {"per_minute": 1.0, "window_s": 60.0}, "none (the records are kept in dead_letter/)",
    "sidecar", evaluate_schema_validation)


# --- missed webhooks ------------------------------------------------------------------------------

def _time_filter(source: str, entity: str) -> str:
    """SQL keeping a polled row any of whose times is recent (its events' times are among them)."""
    times = [c.name for c in RAW_TABLES[source, entity].columns if c.type == "time"]
    if not times:
        return "true"
    return "greatest(" + ", ".join(f"coalesce({c}, timestamp '1970-01-01')" for c in times) + ") >= ?"


def _polled_events(ctx: RuleContext, source: str, since: datetime, until: datetime) -> dict[str, datetime]:
    """The events the poll landed for `source` with times in [since, until): event id → time."""
    db, context, found = _duckdb(ctx), NormalizeContext(), {}
    for entity in PUSHED_AND_POLLED[source]:
        files = part_files(ctx.settings.lake_dir, ("raw", source, entity), days(since, ctx.now))
        if not files:
            continue
        table = RAW_TABLES[source, entity]
        extra = [c for c in ("repo", "pull_number") if any(col.name == c for col in table.columns)]
        where = _time_filter(source, entity)
        rows = db.execute(f"select _raw{''.join(', ' + c for c in extra)} from read_parquet(?, union_by_name = true)"
                          f" where {where}", [files] + ([since] if where != "true" else [])).fetchall()
        for raw, *values in rows:
            try:
                events = normalize(source, entity, json.loads(raw), context, dict(zip(extra, values, strict=True)))
            except (InvalidRecord, ValueError, TypeError):
                continue
            for event in events:
                if event.source == source and since <= event.timestamp < until:
                    found[event.id] = event.timestamp
    return found


_TAILS: dict[str, LandingTail] = {}


def _normalized_delivery(record: dict) -> tuple[list[str], list[str]]:
    """A landing line written without its events (before the sidecar recorded them): normalized."""
    try:
        events = normalize_delivery(str(record.get("source")), str(record.get("event")), record.get("payload"),
                                    NormalizeContext())
    except (InvalidRecord, ValueError, TypeError, KeyError, AttributeError):
        return [], []
    return sorted({e.source for e in events}), [e.id for e in events]


def _deliveries(settings) -> LandingTail:
    """This process's incremental reader of the webhook landing log (each line parsed once)."""
    key = settings.landing_url or str(settings.landing_dir)
    if key not in _TAILS:
        _TAILS[key] = landing_tail(settings, WEBHOOKS_STREAM, _normalized_delivery)
    return _TAILS[key]


def _where(settings) -> str:
    """Where the deliveries landed: the stream's folder, or the shared landing's table."""
    if settings.landing_url:
        from resources.storage.pg_landing import SCHEMA, redacted

        return f"{redacted(settings.landing_url)}#{SCHEMA}.lines?stream={WEBHOOKS_STREAM}"
    return f"{settings.landing_dir}/{WEBHOOKS_STREAM}"


def evaluate_missed_webhooks(ctx: RuleContext) -> Evaluation:
    now, settings = ctx.now, ctx.settings
    grace = timedelta(seconds=ctx.threshold(MISSED_WEBHOOKS, "grace_s"))
    window = timedelta(seconds=ctx.threshold(MISSED_WEBHOOKS, "window_s"))
    limit = ctx.threshold(MISSED_WEBHOOKS, "count")
    since, until = now - window, now - grace
    # Every event a delivery carried (a webhook, or a pushed record), whichever source pushed it.
    delivered: set[str] = set()
    pushing: set[str] = set()
    for delivery in _deliveries(settings).since(since - grace, now):
        delivered.update(delivery.events)
        pushing.update(delivery.event_sources)
    findings = []
    for source in PUSHED_AND_POLLED:
        raw = Path(settings.lake_dir) / "raw" / WEBHOOKS
        ever = source in pushing or any(_newest_landing([raw / f"{source}__{e}"])[0] for e in PUSHED_AND_POLLED[source])
        if not ever:
            continue  # this source does not push to us (no webhook configured): the poll is all there is
        missed = {eid: at for eid, at in _polled_events(ctx, source, since, until).items() if eid not in delivered}
        if len(missed) < limit:
            continue
        newly = sum(1 for at in missed.values() if at >= until - timedelta(seconds=MISSED_WEBHOOKS.cadence_s or 60))
        examples = ", ".join(sorted(missed, key=missed.__getitem__)[-3:])
        findings.append(Finding(
            MISSED_WEBHOOKS.name, subject("source", source), MISSED_WEBHOOKS.severity,
            f"{source}: {len(missed)} event(s) of the last {_ago(window.total_seconds())} reached us only through "
            f"the poll, no webhook delivered them within {_ago(grace.total_seconds())} (e.g. {examples}): the push "
            "channel is losing deliveries; the poll filled them in, live pages saw them late.",
            links={"deliveries": _where(settings)}, count=max(1, newly)))
    return Evaluation(findings)


MISSED_WEBHOOKS = Rule(
    "missed_webhooks",
    "events a source that pushes (GitHub, Linear, Charlie) had to be polled for: landed by the poll, "
    "delivered by no webhook within the grace period",
    60.0, "warning", {"grace_s": 600.0, "window_s": 3600.0, "count": 1.0},
    "none (the poll already filled them in)", "sidecar", evaluate_missed_webhooks)



RULES: list[Rule] = [SCHEMA_VALIDATION, MISSED_WEBHOOKS]
