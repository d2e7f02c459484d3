"""A sidecar over a built warehouse, so the REST API answers with marts instead of 503: what the
schemathesis run and its test read. The sandbox stays up beside it, as the Charlie instances' API
that `POST /api/charlie/command` forwards to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.chaos.harness import SECRETS, Sidecar


@contextmanager
def built_sidecar(workdir: Path, events: int = 300, days: int = 1,
                  env: dict[str, str] | None = None) -> Iterator[Sidecar]:
    """Run the sandbox, the ingest and transform jobs into `workdir/data` (DuckDB, as the demo does,
    small), then a sidecar process on it with every secret set (and `env`); both stop on exit."""
    from dagster import DagsterInstance

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource
    from sandbox.process import run_sandbox

    end = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    partitions = [(end - timedelta(days=n)).date().isoformat() for n in range(days, -1, -1)]
    tags = {"dagster/asset_partition_range_start": partitions[0],
            "dagster/asset_partition_range_end": partitions[-1]}
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with run_sandbox(workdir / "sandbox", events=events, days=days, end=end) as sandbox:
        platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url, warehouse="duckdb")
        with DagsterInstance.ephemeral() as instance:
            for job, job_tags in (("ingest_job", tags), ("transform_job", {})):
                result = defs.resolve_job_def(job).execute_in_process(
                    instance=instance, tags=job_tags, resources={"platform": platform}, raise_on_error=False)
                if not result.success:
                    raise RuntimeError(f"{job} failed while building the warehouse in {data_dir}")
        sidecar = Sidecar(data_dir, {**SECRETS, "CC_SANDBOX_URL": sandbox.url, "CC_WAREHOUSE": "duckdb",
                                     **(env or {})}).start()
        try:
            yield sidecar
        finally:
            sidecar.stop()
