"""The one `Definitions` of Command Center: assets, checks, jobs, schedules, sensors, resources.

Built by a function, on first use: importing this module reads no environment and parses no dbt
project. Dagster's loader finds `command_center` (`@definitions`); code that wants the object
imports `defs`, which builds it then (once per process).
"""

import functools
import warnings

from dagster import BetaWarning, Definitions, PreviewWarning, definitions, multiprocess_executor

warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)

from cc_assets.catalog import catalog_assets  # noqa: E402
from cc_assets.dbt import build_dbt_assets, build_warm_dbt_assets  # noqa: E402
from cc_assets.delivered import delivered_records  # noqa: E402
from cc_assets.normalized import normalized_events  # noqa: E402
from cc_assets.reports import report_assets  # noqa: E402
from cc_assets.serving import serving_catalog, serving_marts  # noqa: E402
from cc_assets.sources import raw_assets  # noqa: E402
from cc_assets.tiers import tier_assets, tier_checks  # noqa: E402
from resources.dbt import dbt_resource, ensure_manifest  # noqa: E402
from resources.platform import PlatformResource  # noqa: E402
from resources.settings import Settings  # noqa: E402
from sensors.alerts import ALERT_SENSORS  # noqa: E402
from sensors.jobs import ingest_job, transform_job  # noqa: E402
from sensors.pipeline_metrics import pipeline_metrics_sensor  # noqa: E402
from sensors.reports import REPORT_JOBS, REPORT_SENSORS  # noqa: E402
from sensors.schedules import (  # noqa: E402
    sources_schedule,
    transform_after_ingest_sensor,
    transform_catch_up_sensor,
)
from sensors.sources import SOURCE_JOBS, SOURCE_SCHEDULES, SOURCE_SENSORS  # noqa: E402
from sensors.tiers import TIER_JOBS, TIER_SCHEDULES  # noqa: E402

# A launched run's steps fork from one process per run that imported the heavy libraries once
# (Dagster, dagster-dbt with dbt, Altair for the reports' charts, Arrow, DuckDB, the S3 and Postgres
# clients), instead of each step starting Python and importing them again: a step's start-up goes
# from ~4.5 s of CPU to ~2 s, and ingest_job has 23 steps. Not this project's modules: a step loads
# those itself, from the code location's working directory (preloaded, they could come from another
# checkout, the one the environment's editable install points at).
PRELOADED = ["dagster_dbt", "altair", "pyarrow.parquet", "duckdb", "boto3", "psycopg"]
STEPS_FORKED = multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": PRELOADED}}},
    name="multiprocess_forked")


def build_definitions(settings: Settings) -> Definitions:
    """The definitions for `settings`; the dbt manifest is parsed here when it is missing or stale.
    Every asset gets its catalog entry here (cc_assets/catalog.py): partitions from the data's
    first day, an owner, code references."""
    manifest = ensure_manifest(settings)
    assets = [*raw_assets, delivered_records, normalized_events, build_dbt_assets(manifest),
              build_warm_dbt_assets(manifest), serving_marts, serving_catalog, *tier_assets, *report_assets]
    return Definitions(
        executor=STEPS_FORKED,
        assets=catalog_assets(assets, settings),
        asset_checks=tier_checks,
        jobs=[ingest_job, transform_job, *SOURCE_JOBS, *TIER_JOBS, *REPORT_JOBS],
        schedules=[sources_schedule, *SOURCE_SCHEDULES, *TIER_SCHEDULES],
        sensors=[transform_after_ingest_sensor, transform_catch_up_sensor, *SOURCE_SENSORS, *ALERT_SENSORS,
                 *REPORT_SENSORS, pipeline_metrics_sensor],
        resources={"platform": PlatformResource(), "dbt": dbt_resource()},
    )


@functools.cache
def load_definitions() -> Definitions:
    """The definitions for this process's `CC_*` settings, built once."""
    return build_definitions(Settings.from_env())


@definitions
def command_center() -> Definitions:
    return load_definitions()


def __getattr__(name: str) -> Definitions:
    # `from cc_assets.definitions import defs` (tests, scripts) builds on first use, not at import.
    if name == "defs":
        return load_definitions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
