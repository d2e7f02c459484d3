"""The same models on Postgres: the session's world that ends now (`now_world`, tests/conftest.py),
landed and built on Postgres by the definitions a deployment on Postgres loads (`now_world_pg`),
agrees with its DuckDB build and with the generator.

A module of its own, apart from test_pipeline.py's DuckDB world: under `make test`'s two workers the
tests reading `now_world` run on one worker, which builds it once (tests/conftest.py)."""

from __future__ import annotations

import duckdb
import psycopg
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey


@pytest.mark.postgres
def test_same_models_build_on_postgres_and_agree(now_world, now_world_pg, assets_world):
    transform = now_world_pg.transform
    assert transform.success
    shown = assets_world.catalog_metadata(transform, AssetKey("fct_workflows"))
    sandbox = now_world.sandbox
    truth = {r["event_id"]: r["workflow_id"] for path in (sandbox.truth_path, sandbox.agents_truth_path)
             for r in pq.read_table(path, columns=["event_id", "workflow_id"]).to_pylist()}
    with psycopg.connect(now_world_pg.url) as conn:
        raw_prs = conn.execute("select count(*) from raw.github__pull_requests").fetchone()[0]
        got = dict(conn.execute("select event_id, workflow_id from analytics.fct_workflow_events").fetchall())
        pg_workflows = conn.execute("select count(*) from analytics.fct_workflows").fetchone()[0]
    assert raw_prs > 0
    assert got == truth
    with duckdb.connect(str(now_world.data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from fct_workflows").fetchone()[0] == pg_workflows
    assert shown["row_count"] == pg_workflows
    assert shown["types"]["workflow_id"] in ("text", "character varying") or "char" in shown["types"]["workflow_id"]
    assert shown["types"]["event_count"] in ("bigint", "integer", "numeric")
