"""A sidecar over a built warehouse, so the REST API answers with marts instead of 503: what the
schemathesis run and its test read. The sandbox stays up beside it, as the Charlie instances' API
that `POST /api/charlie/command` forwards to.

`land_and_build` is the build alone (the tests build one such world per session and hand copies
to the modules that read it, tests/streaming/conftest.py); `sidecar_on` starts a sidecar on a data
folder that already holds one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.chaos.harness import SECRETS, Sidecar


def land_and_build(data_dir: Path, sandbox_url: str, days: int, end: datetime, warehouse: str = "duckdb",
                   pg_url: str | None = None, definitions=None):
    """The sandbox's last `days` days up to `end` landed into `data_dir` (ingest_job, one run), then
    the dbt project built from them (transform_job) on `warehouse`, by `definitions` (the embedded
    DuckDB's unless given). Returns transform_job's result."""
    from dagster import DagsterInstance

    from resources.platform import PlatformResource

    if definitions is None:
        from cc_assets.definitions import defs as definitions
    partitions = [(end - timedelta(days=n)).date().isoformat() for n in range(days, -1, -1)]
    tags = {"dagster/asset_partition_range_start": partitions[0],
            "dagster/asset_partition_range_end": partitions[-1]}
    data_dir.mkdir(parents=True, exist_ok=True)
    platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox_url, warehouse=warehouse, pg_url=pg_url)
    with DagsterInstance.ephemeral() as instance:
        for job, job_tags in (("ingest_job", tags), ("transform_job", {})):
            result = definitions.resolve_job_def(job).execute_in_process(
                instance=instance, tags=job_tags, resources={"platform": platform}, raise_on_error=False)
            if not result.success:
                raise RuntimeError(f"{job} failed while building the warehouse in {data_dir}")
    return result


@contextmanager
def sidecar_on(data_dir: Path, sandbox_url: str, env: dict[str, str] | None = None) -> Iterator[Sidecar]:
    """A sidecar process on the built `data_dir` (DuckDB) with every secret set (and `env`)."""
    sidecar = Sidecar(data_dir, {**SECRETS, "CC_SANDBOX_URL": sandbox_url, "CC_WAREHOUSE": "duckdb",
                                 **(env or {})}).start()
    try:
        yield sidecar
    finally:
        sidecar.stop()


@contextmanager
def built_sidecar(workdir: Path, events: int = 300, days: int = 1,
                  env: dict[str, str] | None = None) -> Iterator[Sidecar]:
    """Run the sandbox, the ingest and transform jobs into `workdir/data` (DuckDB, as the demo does,
    small), then a sidecar process on it with every secret set (and `env`); both stop on exit."""
    from sandbox.process import run_sandbox

    end = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    data_dir = workdir / "data"
    with run_sandbox(workdir / "sandbox", events=events, days=days, end=end) as sandbox:
        land_and_build(data_dir, sandbox.url, days, end)
        with sidecar_on(data_dir, sandbox.url, env) as sidecar:
            yield sidecar
