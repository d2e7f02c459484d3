"""The registry is the one list of sources: a source module it does not list is caught here."""

import ast
import importlib
from pathlib import Path

from cc_events import registry

SOURCES_DIR = Path(registry.__file__).parent / "sources"


def test_every_source_module_is_registered_and_declares_only_its_own_tables():
    modules = sorted(p.stem for p in SOURCES_DIR.glob("*.py") if p.stem != "__init__")
    registered = {s.name for s in registry.SOURCES}
    assert set(modules) == registered
    for name in modules:
        source = importlib.import_module(f"cc_events.sources.{name}").SOURCE
        assert source.name == name
        assert all(t.source == name for t in source.raw_tables)
        assert set(source.normalizers) <= {t.entity for t in source.raw_tables}  # a normalizer has its table


def test_every_normalized_entity_has_a_raw_table():
    assert set(registry.NORMALIZERS) <= set(registry.RAW_TABLES)
    assert ("webhooks", "deliveries") in registry.NORMALIZERS
    assert all(kind.split(".")[0] == source for kind, (source, _) in registry.PUSHED_KINDS.items())


def test_a_source_module_imports_neither_the_registry_nor_another_source():
    for path in SOURCES_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "cc_events.registry" not in imported, path.name
        others = {m for m in imported if m.startswith("cc_events.sources.")}
        assert not others, f"{path.name} imports {others}"
