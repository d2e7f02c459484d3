"""What the Dagster catalog says about every asset, applied once to all of them in `definitions.py`:
where its partitions start, who owns it and where its code is.

- **Partitions start** at the first day the data holds: `CC_PARTITIONS_START` when set, else the
  earliest `date=` the raw lake or the landing log holds, else (nothing landed yet) today less
  `CC_WARM_DAYS`. Read once when the definitions load (a few directory listings), so every process
  that loads them over the same data agrees; a day that lands earlier moves the start back at the
  next load. The assets' modules keep a wide fixed start (`partitions.EARLIEST`) for code that runs
  them outside the definitions.
- **Owners** by group: the sources' raw tables and the normalized events belong to ingestion, the
  storage tiers and the serving snapshot to the platform, the report to operations; dbt models
  name theirs in dbt (`CommandCenterTranslator`), and a model that does not gets analytics.
- **Code references**: each asset's Python function (`with_source_code_references`), plus its
  source module for a raw table (`cc_assets/raw.py`) and its SQL file for a dbt model (dagster-dbt);
  links into the repository when `CC_GIT_URL` is set, local paths otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dagster import (
    AnchorBasedFilePathMapping,
    AssetsDefinition,
    AssetSpec,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    MonthlyPartitionsDefinition,
    PartitionsDefinition,
    link_code_references_to_git,
    with_source_code_references,
)

from cc_assets.partitions import daily_partitions, hourly_partitions, monthly_partitions
from resources.settings import PROJECT_ROOT, Settings
from resources.storage.lake import warehouse_table_name
from resources.storage.landing import day_of
from resources.storage.postgres import RAW_SCHEMA

# Owners by asset group; a group missing here fails at load (every asset has an owner).
INGESTION = "team:ingestion"
PLATFORM = "team:platform"
ANALYTICS = "team:analytics"
OPERATIONS = "team:operations"
OWNERS_BY_GROUP: dict[str, str] = {
    "normalized": INGESTION,
    "tiers": PLATFORM,
    "serving": PLATFORM,
    "reports": OPERATIONS,
    # dbt's layers: the default for a model that names no owner in dbt (cc_assets/dbt.py).
    "staging": ANALYTICS,
    "intermediate": ANALYTICS,
    "marts": ANALYTICS,
    "warm": ANALYTICS,
    "dbt": ANALYTICS,
}


def group_owner(group: str | None) -> str:
    """The owner of an asset group (`raw_<source>`: ingestion)."""
    if group and group.startswith("raw_"):
        return INGESTION
    if group not in OWNERS_BY_GROUP:
        raise KeyError(f"asset group {group!r} has no owner in cc_assets/catalog.py OWNERS_BY_GROUP")
    return OWNERS_BY_GROUP[group]


# --- partitions ---------------------------------------------------------------------------------


def first_landed_day(settings: Settings) -> date | None:
    """The earliest day the raw lake (`raw/<source>/<entity>/date=…/`) or the landing log
    (`<stream>/date=….jsonl`) holds; None when neither holds anything."""
    days: list[date] = []
    raw = settings.lake_dir / "raw"
    if raw.is_dir():
        for path in raw.glob("*/*/date=*"):
            try:
                days.append(date.fromisoformat(path.name.removeprefix("date=")))
            except ValueError:  # a temporary or foreign file beside the partitions
                continue
    if settings.landing_dir.is_dir():  # `date=D.jsonl`, `date=D.<worker>.jsonl`
        days += [d for path in settings.landing_dir.glob("*/date=*.jsonl") if (d := day_of(path)) is not None]
    return min(days, default=None)


def partitions_start(settings: Settings, today: date | None = None) -> date:
    """The first daily partition (see the module's docstring)."""
    if settings.partitions_start is not None:
        return settings.partitions_start
    landed = first_landed_day(settings)
    if landed is not None:
        return landed
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=settings.warm_days)


def partitions_from(start: date) -> dict[PartitionsDefinition, PartitionsDefinition]:
    """The modules' partitions definitions, each replaced by one starting at `start` (the month of
    `start` for the monthly archive)."""
    return {
        daily_partitions: DailyPartitionsDefinition(start_date=start.isoformat(), end_offset=1),
        hourly_partitions: HourlyPartitionsDefinition(start_date=f"{start:%Y-%m-%d}-00:00", end_offset=1),
        monthly_partitions: MonthlyPartitionsDefinition(start_date=start.replace(day=1).isoformat(), end_offset=1),
    }


# --- applied to every asset ---------------------------------------------------------------------


def storage_address(spec: AssetSpec, settings: Settings) -> dict[str, str]:
    """Where a lake table lives: its folder (`dagster/uri`) and, with the warehouse on Postgres, the
    table the ingest loads it into (`dagster/table_name`, `<db>.raw.<source>__<entity>`)."""
    lake_path = spec.metadata.get("lake_path")
    if not isinstance(lake_path, str):
        return {}
    table = spec.key.path
    out = {"dagster/uri": (settings.data_dir / lake_path.split("/date=")[0]).as_uri()}
    if settings.warehouse == "postgres":
        out["dagster/table_name"] = f"{settings.pg.dbname}.{RAW_SCHEMA}.{warehouse_table_name(tuple(table))}"
    return out


def _spec(spec: AssetSpec, partitions: dict[PartitionsDefinition, PartitionsDefinition],
          settings: Settings) -> AssetSpec:
    changes: dict = {}
    if spec.partitions_def is not None and spec.partitions_def in partitions:
        changes["partitions_def"] = partitions[spec.partitions_def]
    if not spec.owners:
        changes["owners"] = [group_owner(spec.group_name)]
    address = storage_address(spec, settings)
    if address:
        changes["metadata"] = {**spec.metadata, **address}
    return spec.replace_attributes(**changes) if changes else spec


def catalog_assets(assets: Iterable[AssetsDefinition], settings: Settings) -> Sequence[AssetsDefinition]:
    """`assets` with their partitions starting at the data's first day, an owner each, their
    storage address, and their code references (links into `CC_GIT_URL` when it is set)."""
    partitions = partitions_from(partitions_start(settings))
    mapped = [a.map_asset_specs(lambda spec: _spec(spec, partitions, settings)) for a in assets]
    referenced = with_source_code_references(mapped)
    if not settings.git_url:
        return referenced
    return link_code_references_to_git(
        referenced, git_url=settings.git_url, git_branch=settings.git_branch,
        file_path_mapping=AnchorBasedFilePathMapping(local_file_anchor=Path(PROJECT_ROOT),
                                                     file_anchor_path_in_repository=""))
