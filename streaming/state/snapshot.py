"""What the REST reads get (`Snapshot`), and what turns one snapshot into the next (`Delta`).

A run of the live state (`streaming/state/workflows.py`) computes a `Delta`, the changes of the
workflows that events touched, and `apply`s it to the snapshot before. Replicas sharing one live
state (`streaming/state/shared.py`) apply the deltas the computing replica publishes, so every
replica's snapshot is built by the same function from the same changes; `encode`/`decode` carry a
delta between them with its values' types (timestamps, dates, decimals) intact.
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson

from streaming.state.layered import GONE, Layered, LayeredSet

Row = dict[str, Any]

_serials = itertools.count(1)


@dataclass
class Snapshot:
    """What the REST API reads: consistent as a whole, replaced (never mutated) by the worker."""

    version: str | None = None
    # Each version shares what did not change with the one before (`streaming/state/layered.py`).
    rows: Layered = field(default_factory=Layered)  # live workflow id -> fct_workflows row
    hidden: LayeredSet = field(default_factory=LayeredSet)  # built workflow ids a live row replaces
    hidden_rows: Layered = field(default_factory=Layered)  # their rows in the marts
    updates: LayeredSet = field(default_factory=LayeredSet)  # live event ids the marts already have
    live_counts: Layered = field(default_factory=Layered)  # live workflow id -> new live events
    workflow_of: Layered = field(default_factory=Layered)  # live event id -> its workflow now
    cron_totals: Row | None = None  # fct_cron_job_totals with the live cron runs; None: the build's
    base_cycles: dict[str, Decimal] = field(default_factory=dict)  # the build's cycle times (shared)
    computed_at: float = 0.0
    # Unique per snapshot made in this process: what the reads' caches are keyed on. Never id(),
    # which a later snapshot takes over once this one is freed (a cached body then looked current).
    serial: int = field(default_factory=_serials.__next__, compare=False, repr=False)

    def cycle_times(self) -> list[Decimal]:
        """Every workflow's cycle time, the live rows' instead of the ones they replace."""
        cycles = [c for w, c in self.base_cycles.items() if w not in self.hidden]
        cycles.extend(Decimal(str(r["cycle_time_hours"])) for r in self.rows.values()
                      if r.get("cycle_time_hours") is not None)
        return cycles


@dataclass
class Delta:
    """One run's changes (`GONE`: removed). `full`: the whole state, applied to an empty snapshot."""

    full: bool
    version: str | None
    rows: dict[str, Any] = field(default_factory=dict)
    hidden_added: list[str] = field(default_factory=list)
    hidden_removed: list[str] = field(default_factory=list)
    hidden_rows: dict[str, Any] = field(default_factory=dict)
    updates_added: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    moved: dict[str, str] = field(default_factory=dict)
    cron_totals: Row | None = None

    def apply(self, base: Snapshot, base_cycles: dict[str, Decimal]) -> Snapshot:
        if self.full:
            base = Snapshot()
        return Snapshot(version=self.version, rows=base.rows.updated(self.rows),
                        hidden=base.hidden.updated(self.hidden_added, self.hidden_removed),
                        hidden_rows=base.hidden_rows.updated(self.hidden_rows),
                        updates=base.updates.updated(self.updates_added),
                        live_counts=base.live_counts.updated(self.counts),
                        workflow_of=base.workflow_of.updated(self.moved), cron_totals=self.cron_totals,
                        base_cycles=base_cycles, computed_at=time.monotonic())

    @classmethod
    def whole(cls, snapshot: Snapshot) -> Delta:
        """The delta that makes `snapshot` from nothing: what a replica that lost track applies."""
        return cls(True, snapshot.version, dict(snapshot.rows), list(snapshot.hidden), [],
                   dict(snapshot.hidden_rows), list(snapshot.updates), dict(snapshot.live_counts),
                   dict(snapshot.workflow_of), snapshot.cron_totals)

    def changed(self, previous: Snapshot) -> list[Row]:
        """The rows this delta changes against `previous` (what `workflow.updated` announces)."""
        return [r for w, r in self.rows.items() if r is not GONE and previous.rows.get(w) != r]


# --- what the overview reads of it ---------------------------------------------------------------------
def rounded(value: Decimal | float | None) -> float | None:
    """`round(x, 2)` as the marts' numeric rounding does it (half away from zero)."""
    if value is None:
        return None
    return float(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def overview_cycle_times(cycles: list[Decimal]) -> tuple[float | None, float | None]:
    """`dashboard_overview`'s average and median (`percentile_cont(0.5)`) cycle time, rounded to 2."""
    values = sorted(cycles)
    if not values:
        return None, None
    return rounded(sum(values) / len(values)), rounded(statistics.median(values))


def completed_today(completed_at: datetime | None, as_of: datetime) -> bool:
    """macros/completed_on_as_of_day.sql for one row."""
    return completed_at is not None and completed_at <= as_of and completed_at.date() == as_of.date()


# --- the wire: JSON with the types a row holds tagged -------------------------------------------------
_DECODE = {"$t": datetime.fromisoformat, "$d": date.fromisoformat, "$n": Decimal,
           "$s": lambda s: timedelta(seconds=float(s)), "$x": lambda _: GONE}


def _tagged(value: Any) -> Any:
    if value is GONE:
        return {"$x": 1}
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, date):
        return {"$d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$n": str(value)}
    if isinstance(value, timedelta):
        return {"$s": repr(value.total_seconds())}
    raise TypeError(f"{type(value).__name__} cannot be shared: {value!r}")


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message, default=_tagged, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, inner), = value.items()
            decode = _DECODE.get(tag)
            if decode is not None:
                return decode(inner)
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return value


def decode(text: str) -> dict[str, Any]:
    return _typed(orjson.loads(text))


def delta_out(delta: Delta) -> dict[str, Any]:
    return {name: getattr(delta, name) for name in Delta.__dataclass_fields__}


def delta_in(fields: dict[str, Any]) -> Delta:
    return Delta(**{name: fields[name] for name in Delta.__dataclass_fields__ if name in fields})
