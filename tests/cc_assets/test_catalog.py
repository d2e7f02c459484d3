"""The Dagster catalog as a data engineer sees it: every asset has an owner and a code reference, the
partitions start at the first day the data holds, and on Postgres the dbt models say Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey, DailyPartitionsDefinition

from cc_assets.catalog import first_landed_day, partitions_start
from cc_assets.dbt import CommandCenterTranslator
from cc_assets.definitions import defs
from resources.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def value(metadata):
    """A definition's metadata value, raw or wrapped in a MetadataValue."""
    return getattr(metadata, "value", metadata)


def test_every_asset_has_an_owner_and_a_code_reference():
    graph = defs.resolve_asset_graph()
    nodes = [graph.get(k) for k in graph.get_all_asset_keys() if graph.get(k).is_materializable]
    assert [n.key.to_user_string() for n in nodes if not n.owners] == []
    unreferenced = [n.key.to_user_string() for n in nodes
                    if not getattr(n.metadata.get("dagster/code_references"), "code_references", None)]
    assert unreferenced == []
    # A raw table points at its source's fetch as well as the factory; a dbt model at its SQL.
    pulls = graph.get(AssetKey(["raw", "github", "pull_requests"])).metadata["dagster/code_references"]
    assert {Path(r.file_path).name for r in pulls.code_references} == {"github.py", "raw.py"}
    workflows = graph.get(AssetKey("fct_workflows")).metadata["dagster/code_references"]
    assert "fct_workflows.sql" in {Path(r.file_path).name for r in workflows.code_references}


def test_raw_assets_show_their_parquet_schema_and_lake_folder():
    node = defs.resolve_asset_graph().get(AssetKey(["raw", "github", "pull_requests"]))
    columns = {c.name: c.type for c in value(node.metadata["dagster/column_schema"]).columns}
    assert columns["id"] == "int64" and columns["_raw"] == "string"
    assert value(node.metadata["dagster/uri"]).endswith("/lake/raw/github/pull_requests")
    assert {"parquet", "github"} <= node.kinds


def _land(data_dir: Path, *days: str) -> None:
    for day in days:
        part = data_dir / "lake" / "raw" / "github" / "issues" / f"date={day}"
        part.mkdir(parents=True)
        (part / "part-0.parquet").write_bytes(b"")


def test_partitions_start_at_the_first_day_the_data_holds(tmp_path):
    from cc_assets.definitions import build_definitions

    data_dir = tmp_path / "data"
    _land(data_dir, "2026-11-21", "2026-11-19")
    landing = data_dir / "landing" / "system_metrics"
    landing.mkdir(parents=True)
    (landing / "date=2026-11-20.jsonl").write_text("")
    settings = Settings.from_env({"CC_DATA_DIR": str(data_dir)})
    assert first_landed_day(settings) == date(2026, 11, 19)

    graph = build_definitions(settings).resolve_asset_graph()
    daily = graph.get(AssetKey(["raw", "github", "pull_requests"])).partitions_def
    assert isinstance(daily, DailyPartitionsDefinition)
    assert daily.get_first_partition_key() == "2026-11-19"
    # Every partitioned asset starts there: normalized, dbt's warm models, tiers, the report.
    firsts = {k.to_user_string(): graph.get(k).partitions_def.get_first_partition_key()
              for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    assert firsts["normalized/events"] == firsts["fct_events"] == firsts["reports/daily"] == "2026-11-19"
    assert firsts["hot/events"] == "2026-11-19-00:00" and firsts["archive/events"] == "2026-11-01"
    daily_firsts = {k.to_user_string(): graph.get(k).partitions_def.get_first_partition_key()
                    for k in graph.get_all_asset_keys()
                    if isinstance(graph.get(k).partitions_def, DailyPartitionsDefinition)}
    assert len(daily_firsts) > 30 and set(daily_firsts.values()) == {"2026-11-19"}


def test_partitions_start_is_configurable_and_has_a_recent_default(tmp_path):
    empty = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "nothing")})
    assert partitions_start(empty, today=date(2026, 12, 6)) == date(2026, 11, 6)  # CC_WARM_DAYS = 30
    _land(tmp_path / "data", "2026-11-30")
    landed = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data")})
    assert partitions_start(landed) == date(2026, 11, 30)
    configured = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data"), "CC_PARTITIONS_START": "2026-10-01"})
    assert partitions_start(configured) == date(2026, 10, 1)


def test_dbt_owners_come_from_dbt_when_it_names_them():
    translator = CommandCenterTranslator()
    model = {"fqn": ["command_center", "marts", "x", "m"], "meta": {}, "config": {}}
    assert translator.get_owners(model) == ["team:analytics"]
    assert translator.get_owners({**model, "meta": {"owner": "finance"}}) == ["team:finance"]
    assert translator.get_owners({**model, "config": {"meta": {"owner": "ops@acme.dev"}}}) == ["ops@acme.dev"]
    assert translator.get_owners({**model, "group": {"name": "workflows", "owner": {"name": "Workflows"}}}) == [
        "team:Workflows"]
    assert translator.get_owners({**model, "meta": {"dagster": {"owners": ["team:core"]}}}) == ["team:core"]


# In a fresh interpreter, as a deployment with CC_WAREHOUSE=postgres loads them (no connection:
# dbt only parses). The manifest is parsed for that database and schema.
POSTGRES_PROBE = r"""
import json
from dagster import AssetKey
from cc_assets.definitions import defs
graph = defs.resolve_asset_graph()
model, raw = graph.get(AssetKey("fct_workflows")), graph.get(AssetKey(["raw", "github", "pull_requests"]))
print(json.dumps({"kinds": sorted(model.kinds), "table": str(getattr(model.metadata["dagster/table_name"], "value", model.metadata["dagster/table_name"])),
                  "storage": str(model.metadata.get("dagster/storage_kind")), "raw_table": str(getattr(raw.metadata["dagster/table_name"], "value", raw.metadata["dagster/table_name"]))}))
"""


def test_dbt_assets_on_postgres_say_postgres(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update({"CC_WAREHOUSE": "postgres", "CC_PG_URL": "postgresql://cc@db.example:5432/ops",
                "CC_PG_SCHEMA": "marts_test", "CC_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(tmp_path)})
    out = subprocess.run([sys.executable, "-c", POSTGRES_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    shown = json.loads(out.stdout.strip().splitlines()[-1])
    assert shown["kinds"] == ["dbt", "postgres"]
    assert shown["table"] == "ops.marts_test.fct_workflows"
    assert "duckdb" not in shown["storage"]
    assert shown["raw_table"] == "ops.raw.github__pull_requests"


def test_dbt_assets_on_duckdb_say_duckdb():
    node = defs.resolve_asset_graph().get(AssetKey("fct_workflows"))
    assert node.kinds == {"dbt", "duckdb"}
    assert value(node.metadata["dagster/table_name"]) == "warehouse.main.fct_workflows"
    assert node.freshness_policy is not None  # the marts' window (cc_assets/freshness.py)


@pytest.mark.parametrize("key", [["raw", "charlie", "health"], ["fct_workflows"], ["serving", "marts"]])
def test_freshness_policies_show_on_sources_and_marts(key):
    assert defs.resolve_asset_graph().get(AssetKey(key)).freshness_policy is not None
