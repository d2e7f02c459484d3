"""Command Center's Dagster assets; `cc_assets.definitions` holds the only `Definitions`."""
