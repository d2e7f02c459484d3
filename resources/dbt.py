"""The dbt project as Dagster sees it, and its manifest, parsed only when the project changed."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from resources.dbt_inputs import DBT_PROJECT_DIR, newest_input
from resources.settings import Settings


@lru_cache(maxsize=1)
def dbt_project() -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def manifest_key(settings: Settings) -> str:
    """What a manifest was parsed for: its target, and on Postgres the database and schema its
    relations name (the catalog's table names, the relations dagster-dbt counts rows in)."""
    if settings.warehouse == "postgres":
        return f"postgres {settings.pg.dbname} {settings.pg_schema}"
    return settings.warehouse


def ensure_manifest(settings: Settings) -> Path:
    """The manifest for `settings`' warehouse (`target/manifest.json` for DuckDB,
    `target/postgres/manifest.json`): parsed in process (~1 s, no CLI start-up) if it is missing,
    older than the project, or was parsed for another database or schema.

    Processes loading the definitions side by side (a code server and its runs, tests on two
    workers) parse one at a time, into a folder of their own whose files then replace the old ones
    whole: a reader never sees a manifest half written, nor one parsed for another database."""
    project = dbt_project()
    target_path = project.manifest_path.parent  # the project's target/ folder, absolute
    if settings.warehouse != "duckdb":
        target_path = target_path / settings.warehouse
    manifest, key_file = target_path / "manifest.json", target_path / "manifest.key"
    key = manifest_key(settings)

    def fresh() -> bool:
        return (manifest.exists() and manifest.stat().st_mtime >= newest_input(project.project_dir)
                and key_file.exists() and key_file.read_text() == key)

    if fresh():
        return manifest
    target_path.mkdir(parents=True, exist_ok=True)
    with (target_path / "parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fresh():
            return manifest
        from dbt.cli.main import dbtRunner

        os.environ.update(settings.dbt_env())
        with tempfile.TemporaryDirectory(prefix=".parse-", dir=target_path) as tmp:
            with contextlib.suppress(FileNotFoundError):  # what dbt may parse from only the changes
                shutil.copy2(target_path / "partial_parse.msgpack", tmp)
            result = dbtRunner().invoke(
                ["parse", "--quiet", "--project-dir", str(project.project_dir), "--profiles-dir",
                 str(project.profiles_dir), "--target-path", tmp, "--target", settings.warehouse]
            )
            if not result.success or not (Path(tmp) / "manifest.json").exists():
                raise RuntimeError(f"dbt parse failed for {project.project_dir}: {result.exception}")
            # The old key first, the new one last: in between the manifest reads as stale.
            key_file.unlink(missing_ok=True)
            for file in Path(tmp).iterdir():
                if file.is_file():
                    os.replace(file, target_path / file.name)
            (Path(tmp) / "manifest.key").write_text(key)
            os.replace(Path(tmp) / "manifest.key", key_file)
    return manifest


# A build runs this much nicer than everything else on the host: with Linux's weights a nice-10
# process gets about a tenth of the CPU a nice-0 one gets when both want it, and all of it when
# nothing else does. A build takes minutes and can wait a few milliseconds; the sidecar's reads take
# milliseconds and cannot (README, "The overview while dbt builds", has the measurements).
# CC_DBT_NICENESS changes it (resources/settings.py).
DBT_NICENESS = Settings.model_fields["dbt_niceness"].default


def run_nicer(pid: int, niceness: int = DBT_NICENESS) -> None:
    """Lower the CPU priority of the process `pid` (a dbt CLI just started) to `niceness`.

    On Linux a priority belongs to a thread: every thread the process has now is set, and the
    threads it starts later (dbt's and DuckDB's) inherit it from them. A process that is gone, or
    a priority we may not set, leaves it as it is: the build itself is unaffected."""
    try:
        threads = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:  # no /proc (not Linux), or the process is gone
        threads = [pid]
    for tid in threads:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, max(niceness, os.getpriority(os.PRIO_PROCESS, tid)))


def dbt_resource() -> DbtCliResource:
    # The dbt beside this interpreter: `make` never puts .venv/bin on PATH.
    dbt = Path(sys.executable).parent / "dbt"
    return DbtCliResource(project_dir=dbt_project(), profiles_dir=str(DBT_PROJECT_DIR),
                          dbt_executable=str(dbt) if dbt.exists() else "dbt")
