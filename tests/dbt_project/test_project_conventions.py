"""The dbt project's own rules, read from its files (no dbt parse, well under a second):
every model has a grain test, every intermediate model is read, every macro is described."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from resources.storage.serving import SERVING_TABLES

PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
GRAIN_TESTS = {"unique_combination_of_columns", "exactly_one_row"}
MACRO = re.compile(r"{%-?\s*macro\s+(\w+)\((.*?)\)\s*-?%}", re.S)
REF = re.compile(r"""ref\(\s*['"](\w+)['"]\s*\)""")


def data_test_name(test: str | dict) -> str:
    return test if isinstance(test, str) else next(iter(test))


def model_entries() -> dict[str, dict]:
    entries = {}
    for path in (PROJECT / "models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models") or []:
            entries[model["name"]] = model
    return entries


def model_files() -> dict[str, Path]:
    return {path.stem: path for path in (PROJECT / "models").rglob("*.sql")}


def grain_tests(model: dict) -> list[str]:
    found = [data_test_name(t) for t in model.get("data_tests") or [] if data_test_name(t) in GRAIN_TESTS]
    for column in model.get("columns") or []:
        if "unique" in {data_test_name(t) for t in column.get("data_tests") or []}:
            found.append(f"unique({column['name']})")
    return found


def test_every_model_has_a_yaml_entry_with_a_grain_test():
    entries = model_entries()
    missing = [name for name in model_files() if name not in entries]
    no_grain = [name for name in model_files() if name in entries and not grain_tests(entries[name])]
    assert not missing, f"models without a YAML entry: {missing}"
    assert not no_grain, f"models without a unique / unique_combination_of_columns / exactly_one_row test: {no_grain}"


def test_every_intermediate_model_is_read():
    """An intermediate model exists for the models after it: one nothing reads is dead weight.
    (Staging has one view per source table whether or not a mart reads it yet; marts are read
    by the sidecar and the reports, by name.)"""
    files = model_files()
    sql = [*files.values(), *(PROJECT / "macros").glob("*.sql")]
    read = {name for path in sql for name in REF.findall(path.read_text())} | set(SERVING_TABLES)
    unread = [name for name, path in files.items() if "intermediate" in path.parts and name not in read]
    assert not unread, f"intermediate models nothing reads: {unread}"


def declared_macros() -> dict[str, list[str]]:
    macros = {}
    for path in (PROJECT / "macros").glob("*.sql"):
        for name, args in MACRO.findall(path.read_text()):
            signature = ast.parse(f"def f({args}): pass").body[0].args
            macros[name] = [a.arg for a in signature.args]
    return macros


def test_every_macro_and_argument_is_described():
    described = {m["name"]: m for m in yaml.safe_load((PROJECT / "macros" / "_macros.yml").read_text())["macros"]}
    macros = declared_macros()
    assert macros, "no macros found: the pattern no longer matches the macro files"
    assert sorted(described) == sorted(macros), "macros/_macros.yml must list exactly the macros of macros/"
    for name, args in macros.items():
        entry = described[name]
        assert entry.get("description"), f"{name} has no description"
        documented = [a["name"] for a in entry.get("arguments") or []]
        assert documented == args, f"{name}: arguments {args}, described {documented}"
        assert all(a.get("description") for a in entry.get("arguments") or []), f"{name}: undescribed argument"


def test_every_entity_a_delivery_carries_is_staged_from_its_polled_and_delivered_tables():
    """A record that arrived only by webhook or push reaches the marts like a polled one: its
    delivered table is a source, and its staging model reads the polled and delivered tables as
    one (`polled_and_delivered`), never the polled source alone."""
    from cc_events.delivered import DELIVERED_TABLES

    sources = {}
    for path in (PROJECT / "models" / "staging").rglob("_*__sources.yml"):
        for source in (yaml.safe_load(path.read_text()) or {}).get("sources") or []:
            for table in source.get("tables") or []:
                sources[source["name"], table["name"]] = table
    files = model_files()
    for (source, entity), delivered in DELIVERED_TABLES.items():
        table = sources.get((delivered.source, delivered.entity))
        assert table is not None, f"no dbt source for {delivered.source}.{delivered.entity}"
        assert table["identifier"] == f"{delivered.source}__{delivered.entity}"
        assert table["config"]["meta"]["dagster"]["asset_key"] == ["raw", delivered.source, delivered.entity]
        sql = files[f"stg_{source}__{entity}"].read_text()
        assert f"polled_and_delivered('{source}', '{entity}')" in sql, f"stg_{source}__{entity}"
        assert f"source('{source}', '{entity}')" not in sql, f"stg_{source}__{entity} reads the polled table alone"
    delivered_names = {(t.source, t.entity) for t in DELIVERED_TABLES.values()}
    assert {k for k in sources if k[0] == "webhooks"} == delivered_names
