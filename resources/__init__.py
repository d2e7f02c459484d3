"""Configuration, API clients and storage for Command Center (no Dagster definitions here)."""
