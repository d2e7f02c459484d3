"""The dbt project's files, without importing dbt or Dagster (the sidecar reads this too)."""

from __future__ import annotations

from pathlib import Path

from resources.settings import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
_INPUTS = ("models", "macros", "tests", "seeds", "snapshots", "dbt_project.yml", "profiles.yml")


def newest_input(project_dir: Path = DBT_PROJECT_DIR) -> float:
    """The newest modification time of any file dbt reads: what was compiled before it is stale."""
    newest = 0.0
    for name in _INPUTS:
        path = project_dir / name
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        for file in files:
            newest = max(newest, file.stat().st_mtime)
    return newest
