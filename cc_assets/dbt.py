"""dbt models as Dagster assets, downstream of the raw and normalized lake tables."""

import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from resources.dbt import dbt_project
from resources.platform import PlatformResource


class CommandCenterTranslator(DagsterDbtTranslator):
    """Models group by layer. Each source names the lake asset that feeds it in its YAML
    (`config.meta.dagster.asset_key`), which the base translator honours: one place for it."""

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
