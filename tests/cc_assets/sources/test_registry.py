"""Adding a source is its own modules plus one line in each registry: a module left out is caught."""

import importlib
import pkgutil

import cc_assets.sources
import sensors
import sensors.sources
from cc_events.registry import RAW_TABLES


def _names(modules) -> set[str]:
    return {module.__name__.rsplit(".", 1)[1] for module in modules}


def test_every_raw_asset_module_is_registered_and_every_raw_table_has_one_spec():
    on_disk = {info.name for info in pkgutil.iter_modules(cc_assets.sources.__path__)}
    assert on_disk == _names(cc_assets.sources.SOURCES)
    tables = [(spec.table.source, spec.table.entity) for spec in cc_assets.sources.RAW_SPECS]
    assert sorted(tables) == sorted(RAW_TABLES)


def test_every_source_has_its_trigger_module_registered():
    triggers = {info.name for info in pkgutil.iter_modules(sensors.__path__)
                if hasattr(importlib.import_module(f"sensors.{info.name}"), "JOBS")}
    assert triggers == _names(sensors.sources.SOURCES) == _names(cc_assets.sources.SOURCES)
    for source in sensors.sources.SOURCES:
        assert source.JOBS and (source.SENSORS or source.SCHEDULES), source.__name__
