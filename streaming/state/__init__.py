"""Live state: dbt's own model SQL run by the sidecar over what arrived since the last build."""
