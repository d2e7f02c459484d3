"""The Dagster instance: embedded storage under the project, or Postgres with CC_DAGSTER_PG_URL;
either way a run queue with the platform's concurrency limits and run retries.

`python -m resources.dagster_home` writes `$DAGSTER_HOME/dagster.yaml` for the current
settings and prints the folder. The Postgres URL is referenced through the environment, so no
credential is ever written to disk.

The queue (Dagster's QueuedRunCoordinator, drained by the daemon that `make ui` and `make stack`
start) holds a run until it may go:
- at most `CC_DAGSTER_MAX_RUNS` runs at once;
- one run per source at a time (run tag `cc/source`, one limit per value): two GitHub runs would
  pull the same pages and race on the same cursors, while GitHub and Linear may land side by side;
- one dbt build at a time (`cc/dbt`): two builds of one warehouse fight over its file or schema;
- one tier move at a time (`cc/tiers`): a move and the retention sweep touch the same partitions.
A run that failed is retried from its failure up to `CC_DAGSTER_RUN_RETRIES` times, except the
dbt build, whose failures (a test that fails, SQL that breaks) would fail the same way again.
The tags are set on the jobs (`sensors/`), so a run launched from the UI is queued the same way.
Inside runs, steps of the `normalize` pool (the normalized events, which rewrite a whole day from
every source's raw partitions) go one at a time, so two sources landing side by side cannot
overwrite each other's normalization.
"""

from __future__ import annotations

import sys
from pathlib import Path

from resources.settings import Settings

STORAGE_POSTGRES = """\
storage:
  postgres:
    postgres_url:
      env: CC_DAGSTER_PG_URL
"""

QUEUE = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: {max_runs}
    tag_concurrency_limits:
      - key: cc/source
        value:
          applyLimitPerUniqueValue: true
        limit: 1
      - key: cc/dbt
        limit: 1
      - key: cc/tiers
        limit: 1
run_retries:
  enabled: {retries_enabled}
  max_retries: {retries}
  retry_on_asset_or_op_failure: true
"""


def instance_config(settings: Settings) -> str:
    """The `dagster.yaml` for `settings`."""
    where = "runs, event logs and schedules in Postgres" if settings.dagster_pg_url else \
        "embedded (SQLite) storage in this folder"
    return "\n".join([
        f"# Written by `python -m resources.dagster_home`: {where}; the run queue and its limits.",
        "telemetry:\n  enabled: false",
        *([STORAGE_POSTGRES.rstrip()] if settings.dagster_pg_url else []),
        QUEUE.format(max_runs=settings.dagster_max_runs, retries=settings.dagster_run_retries,
                     retries_enabled=str(settings.dagster_run_retries > 0).lower()).rstrip(),
    ]) + "\n"


def write_instance_config(settings: Settings, home: Path | None = None) -> Path:
    home = Path(home or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = instance_config(settings)
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != config:
        target.write_text(config)
    return home


if __name__ == "__main__":
    print(write_instance_config(Settings.from_env(), Path(sys.argv[1]) if len(sys.argv) > 1 else None))
