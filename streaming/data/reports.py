"""The operations reports the report assets wrote (`cc_assets/reports/`), as the sidecar lists them:
the folders under `$CC_DATA_DIR/reports/<kind>/<first day>/`, newest first, with their files and
the headlines their `headlines.csv` extract holds. Read from the files: the sidecar does not import
the report code (Dagster, charts), and a report is whatever its folder holds."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("daily", "weekly", "monthly")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # a period's folder; `.x.tmp` and `.x.old` are writes in progress


@dataclass(frozen=True)
class Headline:
    metric: str
    label: str
    value: float | None
    previous: float | None
    change: float | None
    change_pct: float | None


@dataclass(frozen=True)
class Report:
    kind: str
    period: str  # the period's first day, `YYYY-MM-DD`
    folder: Path
    files: list[str]

    def read_headlines(self) -> list[Headline]:
        try:
            with (self.folder / "headlines.csv").open(newline="") as f:
                return [Headline(r["metric"], r["label"], _number(r.get("value")), _number(r.get("previous")),
                                 _number(r.get("change")), _number(r.get("change_pct"))) for r in csv.DictReader(f)]
        except FileNotFoundError:
            return []


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def read_reports(reports_dir: Path, kind: str | None, limit: int) -> list[Report]:
    """The newest `limit` reports (of `kind`, or of every kind), newest period first."""
    found = []
    for k in ([kind] if kind else KINDS):
        folder = reports_dir / k
        if not folder.is_dir():
            continue
        found += [(day.name, k, day) for day in folder.iterdir() if _DAY.match(day.name) and day.is_dir()]
    found.sort(key=lambda t: (t[0], KINDS.index(t[1])), reverse=True)
    return [Report(k, name, day, sorted(p.name for p in day.iterdir() if p.is_file()))
            for name, k, day in found[:limit]]
