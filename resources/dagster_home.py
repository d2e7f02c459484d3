"""The Dagster instance: embedded storage under the project, or Postgres with CC_DAGSTER_PG_URL.

`python -m resources.dagster_home` writes `$DAGSTER_HOME/dagster.yaml` for the current
settings and prints the folder. The Postgres URL is referenced through the environment, so no
credential is ever written to disk.
"""

from __future__ import annotations

import sys
from pathlib import Path

from resources.settings import Settings

EMBEDDED = """\
# Written by `python -m resources.dagster_home`: embedded (SQLite) storage in this folder.
telemetry:
  enabled: false
"""

POSTGRES = """\
# Written by `python -m resources.dagster_home`: runs, event logs and schedules in Postgres.
telemetry:
  enabled: false
storage:
  postgres:
    postgres_url:
      env: CC_DAGSTER_PG_URL
"""


def write_instance_config(settings: Settings, home: Path | None = None) -> Path:
    home = Path(home or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = POSTGRES if settings.dagster_pg_url else EMBEDDED
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != config:
        target.write_text(config)
    return home


if __name__ == "__main__":
    print(write_instance_config(Settings.from_env(), Path(sys.argv[1]) if len(sys.argv) > 1 else None))
