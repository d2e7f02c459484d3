"""`target`: the DuckDB target of profiles.yml."""

type = "duckdb"  # shadows the builtin: dbt names it so
name = "duckdb"
schema = "main"
