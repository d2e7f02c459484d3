"""A source outage storm: the sandbox fails ~30% of requests (5xx, 429 with Retry-After, dropped
connections, timeouts) for the storm's length, with a spell of full outage in the middle, while
the polled sources' raw assets are run again and again, as their sensors would (a source whose
circuit is open is skipped with the breaker's reason).

It holds when every source's circuit opened during the outage and closed again after it, and
once the storm is over the lake's raw partitions equal, row for row, those of a clean run of
the same world. Attempts are the requests the sandbox spoiled; recovery is the time from the
storm's end to the end of the first run in which every polled asset landed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dagster import AssetSelection, BetaWarning, DagsterInstance, materialize

warnings.filterwarnings("ignore", category=BetaWarning)  # as cc_assets.definitions does, before the assets

from cc_assets.sources import raw_assets  # noqa: E402
from resources.http.circuit import CircuitBreaker  # noqa: E402
from resources.platform import PlatformResource  # noqa: E402
from sandbox.process import SandboxHandle, run_sandbox  # noqa: E402
from scripts.chaos import Context, Row, Scenario  # noqa: E402
from scripts.chaos.env import environment  # noqa: E402
from scripts.chaos.partitions import compare, lake_partitions  # noqa: E402

POLLED = ("github", "linear", "charlie", "openclaw", "cron", "weather")
END = datetime(2026, 11, 20, 15, 30)
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class Storm:
    events: int = 1000
    days: int = 2
    seconds: float = 60.0  # the storm, outage spell included
    outage_s: float = 8.0  # every source down (503), in the middle of the storm
    rate: float = 0.3
    client_timeout_s: float = 0.3  # CC_HTTP_TIMEOUT_S for the runs; a "timeout" fault outlasts it
    retry_after_s: int = 1
    circuit_open_s: float = 2.0
    recovery_budget_s: float = 60.0
    seed: int = 1234


@dataclass
class Outcome:
    row: Row
    opened: set[str] = field(default_factory=set)
    still_open: list[str] = field(default_factory=list)
    runs: int = 0
    skipped_open: int = 0  # sources a round left out because their circuit was open
    failed_steps: int = 0
    differing: list[str] = field(default_factory=list)
    rows: int = 0
    partitions: int = 0


def storm_faults(storm: Storm) -> list[dict]:
    """~`rate` of all requests spoiled: half 5xx, the rest 429s, dropped connections and timeouts.
    Each fault flips its own seeded coin on the requests the ones before it let through."""
    share = [("502", 0.3), ("503", 0.3), ("429", 0.1), ("disconnect", 0.15), ("timeout", 0.15)]
    faults, left = [], 1.0
    for i, (kind, part) in enumerate(share):
        wanted = storm.rate * part
        rate = min(1.0, wanted / left)  # of what the earlier faults let through
        left -= wanted
        spec: dict = {"match": "/", "rate": round(rate, 4), "seed": storm.seed + i}
        if kind == "429":
            spec.update(status=429, retry_after=storm.retry_after_s)
        elif kind.isdigit():
            spec["status"] = int(kind)
        elif kind == "timeout":
            spec.update(kind="timeout", delay=storm.client_timeout_s * 2)
        else:
            spec["kind"] = kind
        faults.append(spec)
    return faults


def window(storm: Storm) -> dict[str, str]:
    days = [(END - timedelta(days=n)).date().isoformat() for n in range(storm.days - 1, -1, -1)]
    return {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}


def polled_tables() -> list[tuple[str, str]]:
    return [(a.key.path[1], a.key.path[2]) for a in raw_assets if a.key.path[1] in POLLED]


def ingest(data_dir: Path, sandbox: SandboxHandle, sources: list[str], storm: Storm, warehouse: str = "duckdb",
           pg_url: str | None = None):
    """One run of the polled sources' raw assets over the window, as a source job would run them."""
    platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url, warehouse=warehouse, pg_url=pg_url)
    selection = AssetSelection.key_prefixes(*[["raw", s] for s in sources])
    with DagsterInstance.ephemeral() as instance:
        return materialize(raw_assets, selection=selection, tags=window(storm), instance=instance,
                           resources={"platform": platform}, raise_on_error=False, run_config=QUIET)


class CircuitWatch:
    """Polls the circuit state files: which sources were seen open (the sensors' view)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.opened = folder, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CircuitWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for path in self.folder.glob("*.json"):
                try:
                    if json.loads(path.read_text()).get("opened_at") is not None:
                        self.opened.add(path.stem)
                except (OSError, ValueError):
                    pass  # being replaced this instant


def run_storm(workdir: Path, storm: Storm) -> Outcome:
    quiet = logging.getLogger("resources")  # every retry would be a warning line
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _run_storm(workdir, storm)
    finally:
        quiet.setLevel(level)


def _run_storm(workdir: Path, storm: Storm) -> Outcome:
    env = {"CC_HTTP_TIMEOUT_S": str(storm.client_timeout_s), "CC_HTTP_MAX_RETRIES": "5", "CC_HTTP_BACKOFF_S": "0.05",
           "CC_HTTP_MAX_BACKOFF_S": "5", "CC_CIRCUIT_FAILURES": "5", "CC_CIRCUIT_OPEN_S": str(storm.circuit_open_s)}
    tables = polled_tables()
    with run_sandbox(workdir / "sandbox", seed=7, events=storm.events, days=storm.days, end=END,
                     rate_limit=10**9) as sandbox, environment(env):
        clean = ingest(workdir / "clean", sandbox, list(POLLED), storm)
        if not clean.success:
            raise RuntimeError("the clean run failed: the storm has nothing to be compared with")
        expected = lake_partitions(workdir / "clean", tables)
        data_dir = workdir / "storm"
        breakers = {s: CircuitBreaker(s, data_dir / "state" / "circuits", 5, storm.circuit_open_s) for s in POLLED}
        outcome = Outcome(Row("source_outage_storm"))
        spoiled, over, cleared_at = 0, threading.Event(), [0.0]

        def switch(faults: list[dict] | None) -> None:
            nonlocal spoiled
            spoiled += sum(f["used"] for f in sandbox.faults())
            if faults:
                sandbox.set_faults(faults)
            else:
                sandbox.clear_faults()
                if not over.is_set():
                    cleared_at[0] = time.monotonic()
                    over.set()

        calm = (storm.seconds - storm.outage_s) / 2
        plan = [(calm, [{"match": "/", "kind": "down"}]), (calm + storm.outage_s, storm_faults(storm)),
                (storm.seconds, None)]
        timers = [threading.Timer(at, switch, (faults,)) for at, faults in plan]
        with CircuitWatch(data_dir / "state" / "circuits") as watch:
            sandbox.set_faults(storm_faults(storm))
            for timer in timers:
                timer.start()
            deadline = time.monotonic() + storm.seconds + storm.recovery_budget_s
            recovered_at = None
            try:
                while recovered_at is None and time.monotonic() < deadline:
                    sources = [s for s in POLLED if not breakers[s].is_open()]
                    outcome.skipped_open += len(POLLED) - len(sources)
                    if not sources:
                        time.sleep(0.2)
                        continue
                    result = ingest(data_dir, sandbox, sources, storm)
                    outcome.runs += 1
                    outcome.failed_steps += sum(1 for e in result.all_events if e.is_step_failure)
                    if over.is_set() and len(sources) == len(POLLED) and result.success:
                        recovered_at = time.monotonic()
            finally:
                for timer in timers:
                    timer.cancel()
                    if timer.is_alive():
                        timer.join()
                switch(None)  # counts what the last faults spoiled, if their timer had not come
            outcome.opened = set(watch.opened)
        outcome.still_open = [s for s, b in breakers.items() if b.state().opened_at is not None]
        got = lake_partitions(data_dir, tables)
    diff = compare(expected, got)
    outcome.differing, outcome.rows, outcome.partitions = diff.differing, diff.rows, diff.partitions
    row = outcome.row
    row.attempts = spoiled
    row.acked_lost, row.duplicated = diff.lost, diff.duplicated
    row.recovery_s = None if recovered_at is None else recovered_at - cleared_at[0]
    notes = [f"{outcome.runs} runs, {outcome.failed_steps} failed steps, {outcome.skipped_open} skips on an open "
             f"circuit; circuits opened: {', '.join(sorted(outcome.opened)) or 'none'}; "
             f"{diff.partitions} partitions, {diff.rows:,} rows compared"]
    if diff.differing:
        notes.append("differs: " + "; ".join(diff.differing[:3]))
    row.notes = "; ".join(notes)
    return outcome


def problems(outcome: Outcome) -> list[str]:
    """What makes the storm a failure besides lost or duplicated rows."""
    found = []
    if outcome.row.recovery_s is None:
        found.append("the sources did not all land again after the storm")
    if not outcome.opened:
        found.append("no circuit opened during the full outage")
    if outcome.still_open:
        found.append(f"circuits still open after the storm: {', '.join(outcome.still_open)}")
    return found


def run(ctx: Context) -> list[Row]:
    seconds = max(20.0, ctx.seconds - 40)  # the clean run, the recovery and the comparison need the rest
    storm = Storm(seconds=seconds, outage_s=min(15.0, seconds / 4), seed=ctx.seed)
    outcome = run_storm(ctx.workdir, storm)
    if trouble := problems(outcome):
        raise AssertionError(f"{'; '.join(trouble)} ({outcome.row.notes})")
    return [outcome.row]


SCENARIO = Scenario("source_outage_storm", run, 100)
