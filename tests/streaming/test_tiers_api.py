"""The REST API reads the storage tiers, over real HTTP (the sidecar in its own process, `make_sidecar`).

A copy of the session's warehouse, built from a sandbox that ends now. `/dashboard/metrics` over a
custom range of a year counts the days before the warm window from the cold and archive tiers (here a
copy of the sandbox's days moved back 350 days that only those tiers hold, and one recent day
compacted into the cold tier) and the rest from the marts; the 1h preset counts the hot tier
(Redis, or the embedded hot folder) merged with the events the sidecar itself received.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlparse, urlunparse

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import requests

from resources.settings import Settings
from resources.storage.hot import hot_store
from resources.storage.tier_moves import archive_month, compact_day, landing_events
from resources.storage.tiers import TierStore, month_start

SHIFT = timedelta(days=350)


@pytest.fixture(scope="module")
def data_dir(now_world, tmp_path_factory):
    """A copy of the session's built world (`now_world`, tests/streaming/conftest.py): a DuckDB
    warehouse and serving snapshot built from the sandbox, as transform_job leaves them."""
    return now_world.copy(tmp_path_factory.mktemp("data") / "data")


def marts(data_dir, sql: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(data_dir / "serving" / "marts.duckdb"), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def metrics(server, **params) -> dict:
    response = requests.get(f"{server.url}/dashboard/metrics", params=params, timeout=30,
                            headers={"Authorization": f"Bearer {server.token()}"})
    assert response.status_code == 200, response.text
    return response.json()


def counts(items: list[dict]) -> dict[str, int]:
    return {c["key"]: c["count"] for c in items}


def z(ts: datetime) -> str:
    return ts.isoformat() + "Z"


# --- history: cold and archive before the warm window, the marts after ----------------------------------

@pytest.fixture(scope="module")
def last_year(data_dir, now_world, tmp_path_factory) -> pa.Table:
    """The sandbox's events moved back 350 days into the cold and archive tiers only (as if the
    landing lake and marts had long forgotten them): all but the last day archived, that one still a
    cold day. Plus the sandbox's day before yesterday compacted into the cold tier. Returns the old events."""
    settings = Settings.from_env({"CC_DATA_DIR": str(data_dir)})
    landing, tiers = TierStore.landing(settings), TierStore.from_settings(settings)
    today = datetime.now(UTC).date()
    compact_day(landing, tiers, today - timedelta(days=2))

    recent = landing_events(landing, datetime.combine(today - timedelta(days=now_world.days + 1), datetime.min.time()),
                            datetime.combine(today + timedelta(days=1), datetime.min.time()))
    shift = pa.scalar(SHIFT, pa.duration("us"))
    old = recent.set_column(recent.schema.get_field_index("event_at"), "event_at",
                            pc.subtract(recent.column("event_at"), shift))
    old = old.set_column(old.schema.get_field_index("event_id"), "event_id",
                         pc.binary_join_element_wise("last-year:", old.column("event_id"), ""))
    old_landing = TierStore.local(str(tmp_path_factory.mktemp("old_landing")))
    days = sorted({d.as_py() for d in pc.unique(pc.cast(old.column("event_at"), pa.date32()))})
    for day in days:
        rows = old.filter(pc.equal(pc.cast(old.column("event_at"), pa.date32()), pa.scalar(day, pa.date32())))
        rows = rows.set_column(rows.schema.get_field_index("_partition_date"), "_partition_date",
                               pa.array([day] * rows.num_rows, pa.date32()))
        path = old_landing.path("normalized", "events", f"date={day.isoformat()}", "part-0.parquet")
        old_landing.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        pq.write_table(rows, path)
    for day in days[:-1]:
        compact_day(old_landing, tiers, day)
    for month in sorted({month_start(d) for d in days[:-1]}):
        archive_month(tiers, month)
    compact_day(old_landing, tiers, days[-1])
    assert tiers.manifest(month_start(days[0])) is not None and days[-1] in tiers.cold_days()
    return old


def test_a_year_of_metrics_reads_cold_and_archive_before_the_warm_window(data_dir, last_year, make_sidecar,
                                                                         now_world):
    today = datetime.now(UTC).date()
    # Warm from yesterday: the day before is in the cold tier, the one before that only in the marts.
    server = make_sidecar({"CC_WAREHOUSE": "duckdb", "CC_WARM_DAYS": "1", "CC_REDIS_URL": ""}, data_dir=data_dir)
    old_days = Counter(d.as_py().date().isoformat() for d in last_year.column("event_at"))
    lo = datetime.combine(date.fromisoformat(min(old_days)), datetime.min.time())
    hi = now_world.end + timedelta(hours=1)
    body = metrics(server, timeRange="custom", **{"from": z(lo), "to": z(hi)})

    recent = dict(marts(data_dir, "select source, count(*) from fct_workflow_events where event_at >= $lo"
                                  " and event_at < $hi group by 1", {"lo": lo, "hi": hi}))
    old = Counter(last_year.column("source").to_pylist())
    assert counts(body["events"]["bySource"]) == dict(Counter(recent) + old)
    assert body["events"]["total"] == last_year.num_rows + sum(recent.values()) and body["events"]["live"] == 0

    cold_day = today - timedelta(days=2)
    ((in_cold,),) = marts(data_dir, "select count(*) from fct_workflow_events where cast(event_at as date) = $d",
                          {"d": cold_day})
    assert in_cold > 0
    assert counts(body["events"]["byTier"]) == {"history": last_year.num_rows + in_cold,
                                                "warm": sum(recent.values()) - in_cold}
    spans = body["query"]["tiers"]
    assert spans[0] == {"tier": "history", "from": z(lo), "to": spans[0]["to"]}
    assert {"tier": "history", "from": z(datetime.combine(cold_day, datetime.min.time())),
            "to": z(datetime.combine(cold_day + timedelta(days=1), datetime.min.time()))} in spans
    assert spans[-1] == {"tier": "warm", "from": z(datetime.combine(today - timedelta(days=1), datetime.min.time())),
                         "to": z(hi)}
    series = {b["start"][:10]: b["count"] for b in body["events"]["series"]}
    assert {d: series.get(d) for d in old_days} == dict(old_days)
    assert body["query"]["grain"] == "day"

    # Filters reach the cold and archive tiers as bound values too.
    github = metrics(server, timeRange="custom", **{"from": z(lo), "to": z(hi)},
                     filters=json.dumps({"source": ["github"], "actorType": ["human", "bot"]}))
    old_github = sum(1 for s, a in zip(last_year.column("source").to_pylist(), last_year.column("actor_type").to_pylist(),
                                       strict=True) if s == "github" and a in ("human", "bot"))
    ((recent_github,),) = marts(data_dir, "select count(*) from fct_workflow_events where event_at >= $lo and"
                                          " event_at < $hi and source = 'github' and actor_type in ('human', 'bot')",
                                {"lo": lo, "hi": hi})
    assert counts(github["events"]["bySource"]) == {"github": old_github + recent_github} and old_github > 0
    evil = metrics(server, timeRange="custom", **{"from": z(lo), "to": z(hi)},
                   filters=json.dumps({"source": ["github' or '1'='1"]}))
    assert evil["events"]["total"] == 0


# --- hot: the last hour from the hot tier, merged with what the sidecar saw ----------------------------

def _redis_db(url: str, db: int) -> str:
    return urlunparse(urlparse(url)._replace(path=f"/{db}"))


def _pull_request_opened(number: int, at: datetime) -> dict:
    stamp = z(at.replace(microsecond=0))
    return {"action": "opened", "number": number, "repository": {"full_name": "acme/hot"},
            "sender": {"login": "octo", "type": "User"},
            "pull_request": {"number": number, "title": "Hot path", "body": "", "state": "open", "draft": False,
                             "created_at": stamp, "updated_at": stamp, "merged_at": None, "closed_at": None,
                             "html_url": f"https://github.com/acme/hot/pull/{number}",
                             "user": {"login": "octo", "type": "User"}, "head": {"ref": "hot"},
                             "base": {"repo": {"full_name": "acme/hot"}}}}


def _until(check, timeout_s: float = 15.0):
    """Poll `check()` until it returns something truthy (reads are cached for a second or two)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_the_last_hour_is_the_hot_tier_merged_with_what_the_sidecar_saw(data_dir, make_sidecar, sign, request,
                                                                        backend):
    env = {"CC_WAREHOUSE": "duckdb", "CC_REDIS_URL": ""}
    if backend == "redis":
        env["CC_REDIS_URL"] = _redis_db(request.getfixturevalue("redis_url"), 11)
    settings = Settings.from_env({"CC_DATA_DIR": str(data_dir), **env})
    store = hot_store(settings)
    assert store.backend == backend
    landing = TierStore.landing(settings)
    now = datetime.now(UTC).replace(tzinfo=None)
    current = now.replace(minute=0, second=0, microsecond=0)
    hours = [current + timedelta(hours=n) for n in (-2, -1, 0, 1)]
    held = {h: landing_events(landing, h, h + timedelta(hours=1)).to_pylist() for h in hours}
    # An event the ingest landed after the last dbt build: the hot tier has it, the marts not yet.
    held[current].append({"event_id": "github:pr:acme/late#1:opened", "event_at": current, "source": "github",
                          "event_type": "github.pr.opened", "actor_type": "human"})

    def write() -> None:
        for hour, events in held.items():
            store.replace_hour(hour, events, 600)

    write()
    server = make_sidecar(env, data_dir=data_dir)
    try:
        body = metrics(server, timeRange="1h")
        lo = datetime.fromisoformat(body["query"]["from"][:-1]).replace(minute=0, second=0, microsecond=0)
        hi = datetime.fromisoformat(body["query"]["to"][:-1])
        assert {s["tier"] for s in body["query"]["tiers"]} == {"hot"}
        answered = [e for h, events in held.items() if lo <= h < hi for e in events]
        assert counts(body["events"]["bySource"]) == dict(Counter(e["source"] for e in answered))
        assert body["events"]["total"] == len(answered) and body["events"]["live"] == 0
        assert counts(body["events"]["byTier"]) == {"hot": len(answered)}
        ((in_marts,),) = marts(data_dir, "select coalesce(sum(event_count), 0) from fct_event_volume_1h"
                                         " where bucket_start_at >= $lo and bucket_start_at < $hi", {"lo": lo, "hi": hi})
        assert body["events"]["total"] == in_marts + 1  # the hot tier answered, not the marts

        # A webhook the sidecar received counts at once, as live: the hot tier does not have it yet.
        payload = json.dumps(_pull_request_opened(5, datetime.now(UTC).replace(tzinfo=None))).encode()
        response = requests.post(f"{server.url}/webhooks/github", data=payload, timeout=10,
                                 headers=sign.github(payload, "pull_request"))
        assert response.status_code < 300, response.text
        seen = _until(lambda: (b := metrics(server, timeRange="1h"))["events"]["live"] == 1 and b)
        assert seen, "the webhook's event never showed in the last hour"
        total = seen["events"]["total"]
        assert total == len(answered) + 1

        # Once hot_job has put it in the hot tier too it counts once, from there.
        events = requests.get(f"{server.url}/api/events", params={"limit": 50}, timeout=10,
                              headers={"Authorization": f"Bearer {server.token()}"}).json()["events"]
        (live,) = [e for e in events if e["isLive"]]
        at = datetime.fromisoformat(live["timestamp"][:-1])
        held[at.replace(minute=0, second=0, microsecond=0)].append(
            {"event_id": live["id"], "event_at": at, "source": live["source"], "event_type": live["type"],
             "actor_type": live["actor"]["type"]})
        write()
        merged = _until(lambda: (b := metrics(server, timeRange="1h"))["events"]["live"] == 0 and b)
        assert merged, "the hot tier's copy of the webhook event was never used"
        assert merged["events"]["total"] == total and counts(merged["events"]["byTier"]) == {"hot": total}
    finally:
        if backend == "redis":
            store.client.delete(*[f"{kind}:{h:%Y-%m-%dT%H}" for h in hours for kind in ("events:hour", "counter:events")])
        store.close()
