"""`make chaos`: the durability and attack suite, as one table.

Each scenario module in this package exposes `SCENARIO = Scenario(name, run, seconds)`, where
`run(ctx)` attacks a real sidecar / pipeline on loopback and returns one or more `Row`s. The
runner (`python -m scripts.chaos [--only a,b] [--scale 0.5]`) runs them in order, prints one table
(scenario, attempts, acknowledged lost, duplicated, 5xx, wrongly accepted, recovery time) and exits
non-zero on any loss, duplicate, 5xx or wrong acceptance, or a scenario that could not run.
Traffic stays on loopback and every scenario is bounded in time (`Scenario.seconds`, scaled).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    """One line of the table. Counts are of what the scenario tried and what it then found."""

    scenario: str
    attempts: int = 0
    acked_lost: int = 0  # acknowledged (2xx) by the server, then missing somewhere downstream
    duplicated: int = 0  # landed / counted more than once
    errors_5xx: int = 0  # 5xx answers (other than a 503 with Retry-After for a deliberate outage)
    wrongly_accepted: int = 0  # an attack or invalid input answered 2xx, or a read past a token's scope
    recovery_s: float | None = None  # the longest time from a fault to service again, if the scenario has one
    notes: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.acked_lost or self.duplicated or self.errors_5xx or self.wrongly_accepted)


@dataclass
class Context:
    """What a scenario gets: a scratch folder of its own and its time budget (seconds)."""

    workdir: Path
    seconds: float
    seed: int = 1234
    extra: dict = field(default_factory=dict)


@dataclass
class Scenario:
    name: str
    run: Callable[[Context], list[Row]]
    seconds: float  # the budget at scale 1; the scenario must finish within about this
    needs: tuple[str, ...] = ()  # "postgres", "redis", "pg_ctl", "node": checked before it runs


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"cc-chaos-{prefix}-"))
