"""`kill -9` storm of the sidecar under a retrying sender, counted end to end.

A pool of senders posts unique GitHub / Linear / Charlie deliveries at a few hundred a second and
retries each with the same delivery id until it gets a 2xx, while the sidecar is SIGKILLed and
restarted every 2–4 s. Then every acknowledged delivery must be in the landing log once; the
pipeline runs as the sensor would (`webhooks_job` for each landed day, then `transform_job`: the
dbt build and `serving/marts`), on DuckDB or on a throwaway Postgres database; and each acked
delivery's events must be in `normalized/events`, `fct_workflow_events` and `/api/events` of a
restarted sidecar exactly once. The lake already holds a small sandbox day (the dbt project reads
every source, as in a real deployment), landed before the storm.
"""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scripts.chaos import Context, Row
from scripts.chaos import counting as count
from scripts.chaos.deliveries import Deliveries, RetryingSender, Tally
from scripts.chaos.harness import SECRETS, Sidecar, throwaway_database

# Where throwaway databases are made: CC_PG_URL, as the runner checks it, else the local server.


@dataclass
class Storm:
    tally: Tally
    kills: list[float] = field(default_factory=list)  # monotonic time of each SIGKILL
    restarts_s: list[float] = field(default_factory=list)  # kill → /healthz answering
    seconds: float = 0.0


async def storm(server: Sidecar, deliveries: Deliveries, seconds: float, rate: float, concurrency: int,
                kill_every: tuple[float, float], kills: int | None, seed: int) -> Storm:
    sender = RetryingSender([("127.0.0.1", server.port)], rate, concurrency)
    rng = random.Random(seed)
    result = Storm(sender.tally)
    started = time.monotonic()

    async def killer() -> None:
        # With `kills`, that many kills however slow the restarts, then 2 s more of sending;
        # else kills for `seconds` but none in the last 2 s. The drain runs against a live sidecar.
        while (len(result.kills) < kills if kills is not None
               else time.monotonic() + kill_every[1] < started + seconds - 2):
            await asyncio.sleep(rng.uniform(*kill_every))
            moment = time.monotonic()
            await asyncio.to_thread(server.kill)
            result.kills.append(moment)
            await asyncio.to_thread(server.start)
            result.restarts_s.append(time.monotonic() - moment)

    killing = asyncio.create_task(killer())
    sending = asyncio.create_task(sender.run(deliveries, seconds if kills is None else 600))
    await killing
    if kills is not None:
        await asyncio.sleep(2)
        sender.stopping = True
    await sending
    result.seconds = time.monotonic() - started
    return result


@dataclass
class Outcome:
    """The table's row, and what a test needs to say which deliveries went wrong."""

    row: Row
    lost: set[str]
    duplicated: set[str]
    findings: list[count.Finding]
    storm: Storm


def _job(name: str, platform, **kwargs) -> float:
    from dagster import AssetSelection, DagsterInstance, materialize

    from cc_assets.definitions import defs
    from resources.dbt import dbt_resource

    began = time.monotonic()
    with DagsterInstance.ephemeral() as instance:
        if name == "events path":  # a subset of transform_job's assets
            keys = events_path_only()
            assets = list({id(a): a for a in (defs.get_assets_def(k) for k in keys)}.values())
            # Without the dbt tests: some join marts this subset does not build (the full build runs them).
            result = materialize(assets, selection=AssetSelection.assets(*keys).without_checks(), instance=instance,
                                 raise_on_error=False,
                                 resources={"platform": platform, "dbt": dbt_resource()})
        else:
            result = defs.resolve_job_def(name).execute_in_process(
                instance=instance, resources={"platform": platform}, raise_on_error=False, **kwargs)
    if not result.success:
        failures = [e.message for e in result.all_events if e.is_failure]
        raise RuntimeError(f"{name} failed: {' | '.join(failures)[:800]}")
    return time.monotonic() - began


def baseline(data_dir: Path, workdir: Path, warehouse: str, pg_url: str | None) -> None:
    """A small sandbox day in the lake (and the Postgres raw schema): every source the dbt project reads."""
    from resources.platform import PlatformResource
    from sandbox.process import run_sandbox

    today = datetime.now(UTC).date().isoformat()
    with run_sandbox(workdir / "sandbox", events=300, days=1) as sandbox:
        platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url, warehouse=warehouse,
                                    pg_url=pg_url)
        _job("ingest_job", platform, partition_key=today)


def events_path_only():
    """`transform_job`'s assets that `/api/events` reads, and `serving/marts`: the dbt models from
    `normalized/events` to `fct_workflow_events`, not the whole project."""
    from dagster import AssetKey, AssetSelection

    from cc_assets.definitions import defs
    from sensors.jobs import INGEST_SELECTION

    wanted = AssetSelection.assets(AssetKey(["fct_workflow_events"])).upstream() - INGEST_SELECTION
    return (wanted | AssetSelection.assets(AssetKey(["serving", "marts"]))).resolve(defs.resolve_asset_graph())


def pipeline(data_dir: Path, warehouse: str, pg_url: str | None, full_build: bool = True) -> dict[str, float]:
    """What `webhooks_sensor` would start (each day the landing log has), then the dbt build."""
    from resources.platform import PlatformResource
    from resources.storage.landing import LandingLog

    platform = PlatformResource(data_dir=str(data_dir), warehouse=warehouse, pg_url=pg_url)
    days = [d.isoformat() for d in LandingLog(data_dir / "landing").days("webhooks")]
    timings = {"webhooks_job": sum(_job("webhooks_job", platform, partition_key=day) for day in days)}
    name = "transform_job" if full_build else "events path"
    timings[name] = _job(name, platform)
    return timings


def run(ctx: Context, warehouse: str = "duckdb", **options) -> list[Row]:
    return [attack(ctx, warehouse, **options).row]


def attack(ctx: Context, warehouse: str = "duckdb", *, rate: float = 300, concurrency: int = 32,
           kill_every: tuple[float, float] = (2.0, 4.0), kills: int | None = None,
           storm_s: float | None = None, end_to_end: bool = True, full_build: bool = True) -> Outcome:
    """`full_build=False` (the fast test) builds only the models `/api/events` reads, which need
    no other source: no sandbox day first."""
    name = f"kill_storm_{warehouse}"
    if storm_s is None:
        # What the budget leaves after the baseline, the drain, the dbt build and the REST read.
        storm_s = max(8.0, ctx.seconds - (45 if warehouse == "duckdb" else 55))
    data_dir = ctx.workdir / "data"
    with (throwaway_database() if warehouse == "postgres" else _none()) as pg_url:
        env = dict(SECRETS)
        if warehouse == "postgres":
            env.update(CC_WAREHOUSE="postgres", CC_PG_URL=pg_url)
        began = time.monotonic()
        if end_to_end and full_build:
            baseline(data_dir, ctx.workdir, warehouse, pg_url)
        phases = {"baseline": time.monotonic() - began}
        server = Sidecar(data_dir, env).start()
        try:
            deliveries = Deliveries(ctx.seed)
            result = asyncio.run(storm(server, deliveries, storm_s, rate, concurrency, kill_every, kills,
                                       ctx.seed))
            phases["storm"] = result.seconds
            server.kill()  # a last crash right after the last ack
            tally = result.tally
            ledger = count.Ledger([a.delivery for a in tally.acks.values()])
            findings = [ledger.deliveries("landing", count.landing(data_dir))]
            notes = [f"{tally.sent:,} deliveries ({tally.attempts:,} requests) at "
                     f"{tally.sent / max(result.seconds, 1e-9):.0f}/s, {len(result.kills)} kills, "
                     f"{ledger.event_count:,} events",
                     f"restart ≤ {max(result.restarts_s, default=0):.1f} s"]
            if end_to_end:
                phases.update(pipeline(data_dir, warehouse, pg_url, full_build))
                findings.append(ledger.deliveries("raw", count.raw_deliveries(data_dir)))
                findings.append(ledger.events("normalized", count.normalized_events(data_dir)))
                if warehouse == "duckdb":
                    marts = count.marts_duckdb(data_dir / "warehouse.duckdb")
                else:
                    from resources.settings import Settings

                    marts = count.marts_postgres(pg_url, Settings.from_env(env).pg_schema)
                findings.append(ledger.events("marts", marts))
                server.start()
                findings.append(ledger.events("rest", count.rest_events(server.url, server.token())))
            notes.append(", ".join(f"{k} {v:.0f} s" for k, v in phases.items()))
            lost, dup, checked = count.summary(findings)
            notes.insert(1, checked)
            if tally.unacked:
                notes.append(f"{len(tally.unacked)} never acked")
            if tally.refused_4xx:
                notes.append(f"4xx to valid deliveries: {tally.refused_4xx[:2]}")
            mismatched = [a.delivery.id for a in tally.acks.values()
                          if a.status == 202 and _acked_events(a.body) not in (None, set(a.delivery.events))]
            if mismatched:
                notes.append(f"{len(mismatched)} acks name other events than expected, e.g. {mismatched[0]}")
            row = Row(name, attempts=tally.sent, acked_lost=len(lost), duplicated=len(dup),
                      errors_5xx=len(tally.errors_5xx), wrongly_accepted=0,
                      recovery_s=tally.recovery(result.kills), notes="; ".join(notes))
            return Outcome(row, lost, dup, findings, result)
        finally:
            server.stop()


def _acked_events(body: bytes) -> set[str] | None:
    import json

    try:
        return set(json.loads(body)["events"])
    except (ValueError, KeyError, TypeError):
        return None


@contextmanager
def _none():
    yield None
