"""The pipeline's metrics for Prometheus, from Dagster's own events: run and asset durations, rows
landed and dead letters per source, written to `$CC_DATA_DIR/metrics/dagster.prom`, which the
sidecar's `/metrics` serves after its own (and node_exporter's textfile collector can read).

A file, not an endpoint: sensors run in short ticks of the daemon, with no server that lives
between them, while the sidecar already serves `/metrics` and shares the data folder. Every 30 s
`pipeline_metrics_sensor` reads the runs that ended since its last look (Dagster's run-status
events, by their storage ids: exact, no run counted twice) and what each materialized, adds them
to the totals kept beside the file (`dagster.json`), and writes the file again atomically. The
totals only grow, as Prometheus counters should; a lost state file starts them again from zero,
which Prometheus reads as a counter reset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from resources.platform import PlatformResource

FILE = "dagster.prom"
STATE = "dagster.json"
RUN_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
ASSET_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
ENDED = {DagsterEventType.RUN_SUCCESS: "success", DagsterEventType.RUN_FAILURE: "failure",
         DagsterEventType.RUN_CANCELED: "canceled"}
BATCH = 200  # run endings read per status and tick (the rest next tick)
# dagster-dbt's own timing of a model, in its materialization's metadata: closer than its step's,
# which builds every model of the selection.
DBT_DURATION = "Execution Duration"


def source_of(asset: list[str]) -> str:
    """`raw/github/pull_requests` → github; `normalized/events` → normalized; a dbt model → its name's layer."""
    return asset[1] if asset[0] == "raw" and len(asset) > 1 else asset[0]


def _observe(histogram: dict, key: str, value: float, buckets: tuple) -> None:
    count, total, counts = histogram.get(key) or [0, 0.0, [0] * len(buckets)]
    for i, bound in enumerate(buckets):
        if value <= bound:
            counts[i] += 1
    histogram[key] = [count + 1, total + value, counts]


def _number(value: Any) -> float | None:
    raw = getattr(value, "value", value)
    return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None


def load_state(directory: Path) -> dict[str, Any]:
    path = directory / STATE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        state = {}
    for name in ("cursors", "runs", "assets", "rows", "dead_letters"):
        state.setdefault(name, {})
    return state


def add_run(state: dict[str, Any], instance: DagsterInstance, run_id: str, status: str) -> None:
    """One ended run: its duration by job and status; its assets' durations, rows and dead letters."""
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        return
    job = record.dagster_run.job_name
    if record.start_time is not None and record.end_time is not None:
        _observe(state["runs"], f"{job}\t{status}", max(0.0, record.end_time - record.start_time), RUN_BUCKETS)
    steps: dict[str, float] = {}
    materialized: dict[str, tuple[list[str], Any, str | None]] = {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_SUCCESS,
                                                    DagsterEventType.ASSET_MATERIALIZATION}):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_SUCCESS:
            steps[event.step_key or ""] = event.event_specific_data.duration_ms / 1000
        elif entry.asset_materialization is not None:
            key = entry.asset_materialization.asset_key.path
            # A range run records its numbers on every partition it wrote: once per run and asset.
            materialized.setdefault("/".join(key), (key, entry.asset_materialization.metadata, event.step_key))
    for name, (key, metadata, step) in materialized.items():
        took = _number(metadata.get(DBT_DURATION))
        if took is None:
            took = steps.get(step or "")
        if took is not None:
            _observe(state["assets"], name, took, ASSET_BUCKETS)
        for field, total in (("rows_in_run", "rows"), ("dead_letters_in_run", "dead_letters")):
            counted = _number(metadata.get(field))
            if counted:
                source = source_of(key)
                state[total][source] = state[total].get(source, 0) + counted


def collect(instance: DagsterInstance, state: dict[str, Any]) -> int:
    """Add the runs that ended since the state's cursors; how many."""
    added = 0
    for event_type, status in ENDED.items():
        result = instance.fetch_run_status_changes(event_type, limit=BATCH, cursor=state["cursors"].get(status),
                                                   ascending=True)
        for record in result.records:
            add_run(state, instance, record.run_id, status)
            added += 1
        if result.records:
            state["cursors"][status] = result.cursor
    return added


def _histogram(name: str, doc: str, labels: tuple[str, ...], series: dict, buckets: tuple) -> list[str]:
    lines = [f"# HELP {name} {doc}", f"# TYPE {name} histogram"]
    for key, (count, total, counts) in sorted(series.items()):
        label = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(labels, key.split("\t"), strict=True))
        for bound, seen in zip(buckets, counts, strict=True):
            lines.append(f'{name}_bucket{{{label},le="{float(bound)}"}} {seen}')
        lines += [f'{name}_bucket{{{label},le="+Inf"}} {count}', f"{name}_count{{{label}}} {count}",
                  f"{name}_sum{{{label}}} {total}"]
    return lines


def _counter(name: str, doc: str, label: str, series: dict) -> list[str]:
    return [f"# HELP {name} {doc}", f"# TYPE {name} counter",
            *(f'{name}_total{{{label}="{_escape(k)}"}} {v}' for k, v in sorted(series.items()))]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def render(state: dict[str, Any]) -> str:
    """The Prometheus text format of the totals."""
    runs = {k: v for k, v in state["runs"].items()}
    lines: Iterable[str] = [
        *_histogram("cc_dagster_run_duration_seconds", "Dagster runs' durations (start to end), by job and "
                    "status", ("job", "status"), runs, RUN_BUCKETS),
        "# HELP cc_dagster_runs Dagster runs ended, by job and status", "# TYPE cc_dagster_runs counter",
        *(f'cc_dagster_runs_total{{job="{_escape(k.split(chr(9))[0])}",status="{k.split(chr(9))[1]}"}} {v[0]}'
          for k, v in sorted(runs.items())),
        *_histogram("cc_dagster_asset_duration_seconds", "Time to materialize an asset (dbt's own timing for a "
                    "model, else its step's), once per run", ("asset",), state["assets"], ASSET_BUCKETS),
        *_counter("cc_dagster_rows_landed", "Rows the raw assets landed, per source", "source", state["rows"]),
        *_counter("cc_dagster_dead_letters", "Records set aside as dead letters, per source", "source",
                  state["dead_letters"]),
    ]
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


def export(instance: DagsterInstance, directory: Path) -> int:
    """Read what ended since the last export, write the totals and the file; the runs added."""
    directory.mkdir(parents=True, exist_ok=True)
    state = load_state(directory)
    added = collect(instance, state)
    if added or not (directory / FILE).exists():
        # The totals first: a crash between the two writes leaves a file the next export rewrites.
        _write_atomically(directory / STATE, json.dumps(state))
        _write_atomically(directory / FILE, render(state))
    return added


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Every 30 s: run and asset durations, rows landed and dead letters per source, from Dagster's "
                    "events, written to $CC_DATA_DIR/metrics/dagster.prom for the sidecar's /metrics.")
def pipeline_metrics_sensor(context: SensorEvaluationContext, platform: PlatformResource):
    # Running from the start, as the alert sensors: it reads Dagster's own instance, nothing outside.
    added = export(context.instance, platform.settings().metrics_dir)
    return SkipReason(f"{added} run(s) added to the pipeline metrics" if added else "no run ended since the last look")
