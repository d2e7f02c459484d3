"""What dbt gives a model's Jinja that sqlfluff's jinja templater lacks, for `make lint` only.

sqlfluff renders each model with the project's own macros (`load_macros_from_path`) and dbt's
builtins (ref, source, config, var, this, return); these modules add the rest as the DuckDB
target renders it, so the linter sees the SQL dbt runs, without a dbt parse or a connection.
"""
