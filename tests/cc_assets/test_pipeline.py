"""End to end on sandbox data over real HTTP: land, normalize, build dbt, check correlation.

The session's world (`built_world`, tests/cc_assets/conftest.py: one sandbox, landed and built on
DuckDB, then landed again; the same models on Postgres: test_pipeline_postgres.py); the assertions
are what an operator would check: every source landed, the marts are filled, every event sits in the
workflow the generator says it belongs to, and a re-run of the range changes nothing in the lake.
"""

from __future__ import annotations

import duckdb
import pytest

from cc_events.registry import RAW_TABLES
from resources.storage.warehouse import MARTS, compare_with_truth


@pytest.fixture(scope="module")
def duckdb_run(built_world):
    return (built_world["data_dir"], built_world["first_rows"], built_world["rerun_rows"], built_world["shown"])


@pytest.fixture(scope="module")
def sandbox(built_world):
    return built_world["sandbox"]


def test_every_source_lands_in_the_lake_for_every_day(duckdb_run, assets_world):
    data_dir, counts, _, _ = duckdb_run
    for source, entity in RAW_TABLES:
        folder = data_dir / "lake" / "raw" / source / entity
        assert sorted(p.name for p in folder.iterdir()) == [f"date={d}" for d in assets_world.PARTITIONS], folder
        # Tailed logs, CDC and webhook deliveries land by arrival time (today), outside this past
        # window; they have their own tests (tests/cc_assets/test_pushed_sources.py,
        # tests/streaming/test_durability.py).
        if source not in ("postgres_cdc", "logs", "webhooks"):
            assert counts[f"raw/{source}/{entity}"] > 0, f"nothing landed for {source}/{entity}"
    assert counts["normalized/events"] >= assets_world.EVENTS * 0.5


def test_rerun_of_the_range_is_idempotent(duckdb_run):
    _, first, second, _ = duckdb_run
    assert first == second


def test_marts_are_built_and_correlation_matches_ground_truth(duckdb_run, sandbox):
    data_dir, _, _, _ = duckdb_run
    warehouse = data_dir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for mart in MARTS:
            assert con.execute(f"select count(*) from {mart}").fetchone()[0] > 0, mart  # noqa: S608
        statuses = {r[0] for r in con.execute("select distinct status from fct_workflows").fetchall()}
        cross_source = con.execute(
            "select count(*) from fct_workflows where linear_issue_key is not null and github_pr_number is not null"
        ).fetchone()[0]
    assert {"active", "completed"} <= statuses
    assert cross_source > 0, "no workflow joins a Linear issue with its PR"
    report = compare_with_truth(warehouse, sandbox.truth_path, sandbox.agents_truth_path)
    assert report.mismatched_examples == []
    assert report.exact and report.events_in_truth > 0


def test_the_catalog_shows_each_marts_row_count_and_column_types(duckdb_run):
    data_dir, _, _, shown = duckdb_run
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("select count(*) from fct_workflows").fetchone()[0]
    assert shown["row_count"] == rows > 0
    assert "char" in shown["types"]["workflow_id"].lower()  # dbt-duckdb says `character varying(256)`
    assert all(t and t != "?" for t in shown["types"].values()), shown["types"]


def test_ci_comments_and_cycles_reach_the_marts(duckdb_run):
    data_dir, _, _, _ = duckdb_run
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        ci = dict(con.execute(
            "select coalesce(last_ci_conclusion, 'none'), count(*) from fct_workflows group by 1").fetchall())
        # Events for a PR's CI and an issue's comments sit in a workflow; pushes to main in none.
        placed = dict(con.execute("""
            select event_type, count(*) filter (where workflow_id is null) from fct_workflow_events
            where event_type = 'github.check_run.completed' or event_type = 'linear.comment.created'
               or (event_type = 'github.workflow_run.completed' and payload not like '%"pull_numbers":[]%')
            group by 1
        """).fetchall())
        cycles = con.execute("select team_key, count(*), sum(issue_count) from dim_cycles group by 1").fetchall()
    assert ci.get("success", 0) > 0 and ci.get("failure", 0) > 0, ci
    assert placed == {"github.check_run.completed": 0, "github.workflow_run.completed": 0,
                      "linear.comment.created": 0}
    assert {team for team, _, _ in cycles} == {"ENG", "OPS", "DATA"} and sum(n for _, _, n in cycles) > 0
