"""Jobs: `ingest_job` lands sources into the lake; `transform_job` builds the dbt project."""

from dagster import AssetSelection, define_asset_job

INGEST_SELECTION = AssetSelection.key_prefixes(["raw"], ["normalized"])
# The storage tiers (cc_assets/tiers.py, the warm dbt models) and the daily reports
# (cc_assets/reports/) run in their own partitioned jobs.
TIER_SELECTION = AssetSelection.groups("tiers", "warm")
REPORT_SELECTION = AssetSelection.groups("reports")

ingest_job = define_asset_job(
    "ingest_job",
    selection=INGEST_SELECTION,
    description="Land every polled source for a day (or a range, as one run) and normalize its events.",
    tags={"cc/source": "all"},
)

transform_job = define_asset_job(
    "transform_job",
    selection=AssetSelection.all() - INGEST_SELECTION - TIER_SELECTION - REPORT_SELECTION,
    description="Build and test the dbt project: staging, correlation, workflow facts, dashboard marts.",
    # One build at a time (the queue's `cc/dbt` limit); a failed build is not retried, as a failing
    # test or broken SQL fails the same way again.
    tags={"cc/dbt": "build", "dagster/retry_on_asset_or_op_failure": "false"},
)
