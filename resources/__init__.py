"""Configuration and everything built from it, one room per kind (no Dagster definitions here):
`settings.py` and `platform.py`, `sources/` (API clients), `http/` (what the clients share),
`storage/` (lake, landing log, tiers, warehouses, readers), `ingest/` (tailer, CDC, metrics agent)."""
