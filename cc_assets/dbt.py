"""dbt models as Dagster assets, downstream of the raw and normalized lake tables."""

import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from resources.dbt import dbt_project
from resources.platform import PlatformResource

RAW_SOURCES = frozenset({"github", "linear", "charlie"})


class CommandCenterTranslator(DagsterDbtTranslator):
    """Sources map onto the lake assets that feed them; models group by layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            source, table = dbt_resource_props["source_name"], dbt_resource_props["name"]
            return AssetKey(["raw", source, table] if source in RAW_SOURCES else [source, table])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        # fqn: [project, layer, ...]: staging / intermediate / marts
        return fqn[1] if len(fqn) > 2 else "dbt"


translator = CommandCenterTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def build_dbt_assets(manifest_path):
    @dbt_assets(manifest=manifest_path, project=dbt_project(), dagster_dbt_translator=translator,
                name="dbt_models")
    def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource, platform: PlatformResource):
        """Build and test the dbt project (models, tests, unit tests) on the configured warehouse."""
        settings = platform.settings()
        # dbt's profile reads these; the subprocess inherits them.
        os.environ.update(settings.dbt_env())
        yield from dbt.cli(["build", "--target", settings.warehouse], context=context).stream()

    return dbt_models
