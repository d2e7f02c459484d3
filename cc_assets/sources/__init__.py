"""The sources' raw assets, one module per source; adding a source adds its module to `SOURCES`.

Each module holds its fetches and `SPECS` (one `RawSpec` per raw table); cc_assets/raw.py builds
the assets and their dead-letter checks from the specs.
"""

from cc_assets.raw import build_raw_asset
from cc_assets.sources import (
    charlie,
    cron,
    github,
    linear,
    logs,
    openclaw,
    postgres_cdc,
    system_metrics,
    weather,
    webhooks,
)

SOURCES = [github, linear, charlie, openclaw, cron, weather, system_metrics, logs, postgres_cdc, webhooks]

RAW_SPECS = [spec for source in SOURCES for spec in source.SPECS]
raw_assets = [build_raw_asset(spec) for spec in RAW_SPECS]
