"""The dbt docs site: what the manifest documents (every source column with its type, exposures,
owners, macros), and `make docs-generate` while a build holds the DuckDB warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cc_events.delivered import DELIVERED_TABLES
from cc_events.registry import RAW_TABLES
from resources.storage.lake import EVENT_KEYS_SCHEMA, EVENTS_SCHEMA, raw_schema
from resources.storage.serving import SERVING_TABLES
from streaming.state.compiled import BOUNDARY as LIVE_BOUNDARY
from streaming.state.compiled import TARGETS as LIVE_TARGETS

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "dbt_project"
# The lake's Parquet types (resources/storage/lake.py ARROW_TYPES) as DuckDB names them.
DUCKDB_TYPES = {"string": "varchar", "int64": "bigint", "double": "double", "timestamp[us]": "timestamp",
                "date32[day]": "date"}


def _env(data_dir: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CC_")}, "CC_DATA_DIR": str(data_dir),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    """The project parsed in process (dbtRunner, no CLI start-up), into a target of its own."""
    from dbt.cli.main import dbtRunner

    target = tmp_path_factory.mktemp("dbt_target")
    old = dict(os.environ)
    os.environ.update({"CC_DATA_DIR": str(target), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
    try:
        result = dbtRunner().invoke(["parse", "--quiet", "--project-dir", str(PROJECT), "--profiles-dir",
                                     str(PROJECT), "--target-path", str(target), "--log-path", str(target)])
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert result.success, result.exception
    return json.loads((target / "manifest.json").read_text())


def lake_schema(source: dict):
    """The Parquet schema the lake writes for a dbt source."""
    name = source["identifier"]
    if name == "normalized__events":
        return EVENTS_SCHEMA
    if name == "normalized__event_keys":
        return EVENT_KEYS_SCHEMA
    if name.startswith("webhooks__"):
        return raw_schema(DELIVERED_TABLES[tuple(name.removeprefix("webhooks__").split("__", 1))])
    return raw_schema(RAW_TABLES[tuple(name.split("__", 1))])


def test_every_source_column_is_documented_with_its_lake_type(manifest: dict) -> None:
    sources = manifest["sources"].values()
    assert sources
    for source in sources:
        columns = source["columns"]
        undocumented = [c for c, v in columns.items() if not (v["description"] or "").strip() or not v["data_type"]]
        assert not undocumented, f"{source['unique_id']}: columns without a description or data_type: {undocumented}"
        lake = {f.name: DUCKDB_TYPES[str(f.type)] for f in lake_schema(source)}
        declared = {c: v["data_type"] for c, v in columns.items()}
        assert declared == lake, f"{source['unique_id']}: the YAML's columns and types are not the lake's"


def test_a_delivered_table_describes_its_columns_as_its_polled_table(manifest: dict) -> None:
    sources = {(s["source_name"], s["name"]): s for s in manifest["sources"].values()}
    for (source, entity) in DELIVERED_TABLES:
        polled, delivered = sources[source, entity], sources["webhooks", f"{source}__{entity}"]
        assert ({c: v["description"] for c, v in delivered["columns"].items()}
                == {c: v["description"] for c, v in polled["columns"].items()})


def test_exposures_name_their_owner_and_the_models_they_read(manifest: dict) -> None:
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert len(exposures) >= 4
    assert {"live_page", "rest_api", "operations_reports", "analyst_catalog"} <= set(exposures)
    for name, exposure in exposures.items():
        models = [n for n in exposure["depends_on"]["nodes"] if n.startswith("model.")]
        assert models, f"{name} depends on no model"
        assert exposure["owner"].get("email") and exposure["owner"].get("name"), name
        assert exposure["maturity"] and exposure["type"] and exposure["description"], name
    read = {name: {n.rpartition(".")[2] for n in e["depends_on"]["nodes"]} for name, e in exposures.items()}
    # The sidecar reads the serving snapshot only, and runs the live models' SQL (streaming/state/);
    # the analysts' catalog lists all of the snapshot, and every mart.
    assert read["rest_api"] <= set(SERVING_TABLES) | set(LIVE_TARGETS)
    assert set(LIVE_TARGETS) | (set(LIVE_BOUNDARY) & set(SERVING_TABLES)) <= read["rest_api"]
    assert read["live_page"] <= read["rest_api"]
    marts = {n["name"] for n in manifest["nodes"].values()
             if n["resource_type"] == "model" and n["fqn"][1] in ("marts", "warm")}
    assert read["analyst_catalog"] >= set(SERVING_TABLES) | marts


def test_changing_fct_workflows_names_what_breaks(manifest: dict) -> None:
    """`dbt ls --select fct_workflows+ --resource-type exposure`, from the manifest's child map."""
    children = manifest["child_map"]["model.command_center.fct_workflows"]
    assert {c for c in children if c.startswith("exposure.")} == {
        "exposure.command_center.live_page", "exposure.command_center.rest_api",
        "exposure.command_center.operations_reports", "exposure.command_center.analyst_catalog"}


def test_every_model_has_a_group_and_its_owner(manifest: dict) -> None:
    groups = {g["name"]: g["owner"] for g in manifest["groups"].values()}
    assert all(owner.get("name") and owner.get("email") for owner in groups.values())
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        assert node["group"] in groups, f"{node['name']} is in no group"
        assert node["meta"].get("owner") == groups[node["group"]]["email"], node["name"]


def test_every_macro_and_generic_test_is_described(manifest: dict) -> None:
    macros = [m for m in manifest["macros"].values() if m["package_name"] == "command_center"]
    assert len(macros) >= 25
    for macro in macros:
        assert macro["description"].strip(), f"{macro['name']} has no description"
        assert all(a["description"] for a in macro["arguments"]), f"{macro['name']}: an argument is undescribed"


def write_empty_lake(lake: Path) -> None:
    """One empty partition per lake table dbt reads: the schema and no rows."""
    tables = {("normalized", "events"): EVENTS_SCHEMA, ("normalized", "event_keys"): EVENT_KEYS_SCHEMA}
    tables |= {("raw", *key): raw_schema(table) for key, table in RAW_TABLES.items()}
    tables |= {("raw", "webhooks", table.entity): raw_schema(table) for table in DELIVERED_TABLES.values()}
    for parts, schema in tables.items():
        path = lake.joinpath(*parts, "date=2026-11-23", "part-0.parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(schema.empty_table(), path)


def test_docs_generate_while_a_build_holds_the_warehouse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_empty_lake(data / "lake")
    warehouse = data / "warehouse.duckdb"
    # Another process holds the warehouse read-write, as `dbt build` does for its whole run.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
                               "con.execute('create table held (x int)'); print('held', flush=True); sys.stdin.read()",
         str(warehouse)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        locked = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1], read_only=True)",
                                 str(warehouse)], capture_output=True, text=True)
        assert locked.returncode != 0 and "lock" in locked.stderr.lower(), "the warehouse should be locked"
        done = subprocess.run([sys.executable, "-m", "scripts.run", "scripts.dbt_docs", "--no-serve"], cwd=ROOT,
                              env=_env(data), capture_output=True, text=True, timeout=300)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    site = data / "docs" / "site"
    assert "dbt docs generated against target docs" in done.stdout
    catalog = json.loads((site / "catalog.json").read_text())
    manifest = json.loads((site / "manifest.json").read_text())
    html = (site / "index.html").read_text()
    assert "fct_workflows" in html and len(html) > 100_000  # the static page embeds manifest and catalog

    models = [k for k, n in manifest["nodes"].items() if n["resource_type"] == "model"]
    assert models
    for key in models:
        assert key in catalog["nodes"], f"{key} is not in the catalog"
        columns = catalog["nodes"][key]["columns"]
        assert columns and all(c["type"] for c in columns.values()), key
        documented = set(manifest["nodes"][key]["columns"])
        assert documented <= {c.lower() for c in columns}, f"{key}: documented columns the model does not have"
    assert catalog["nodes"]["model.command_center.fct_workflows"]["metadata"]["type"] == "BASE TABLE"
    assert catalog["nodes"]["model.command_center.stg_github__pull_requests"]["metadata"]["type"] == "VIEW"
    for key, source in manifest["sources"].items():
        assert key in catalog["sources"], f"{key} is not in the catalog"
        types = {name.lower(): c["type"].lower() for name, c in catalog["sources"][key]["columns"].items()}
        assert types == {name: c["data_type"] for name, c in source["columns"].items()}, key


def test_make_docs_refuses_a_taken_port_and_an_empty_data_folder(tmp_path: Path) -> None:
    import socket

    def docs(data: Path, port: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "scripts.run", "scripts.dbt_docs"], cwd=ROOT,
                              env={**_env(data), "CC_DOCS_PORT": str(port)}, capture_output=True, text=True,
                              timeout=120)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = docs(tmp_path / "empty", port)
        assert (done.returncode, done.stderr) == (1, f"no data in {tmp_path / 'empty'}: run `make demo` first\n")
        write_empty_lake(tmp_path / "data" / "lake")
        done = docs(tmp_path / "data", port)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"port {port} (dbt docs) is already in use: stop what listens there "
                           "(an earlier `make ui`?) or set CC_DOCS_PORT to a free port\n")
