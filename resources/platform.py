"""The Dagster-facing resource: settings, lake, warehouse loaders and source clients in one place.

One resource rather than one per integration: every integration is built from the same `Settings`
(the data folder holds the lake, the cursors, the circuit breakers and the ETag cache; the sandbox
URL is every API's default), so a test or a script points a whole run somewhere else by setting
`data_dir` and `sandbox_url` once. The settings are read once per resource, on first use (never
when the definitions load), and every client is built from them.
"""

from __future__ import annotations

import os
from datetime import date, datetime

import pyarrow as pa
from dagster import ConfigurableResource
from pydantic import PrivateAttr

from resources.settings import Settings
from resources.sources.charlie import CharlieClient
from resources.sources.cron import CronClient
from resources.sources.github import GitHubClient
from resources.sources.github_graphql import github_client
from resources.sources.linear import LinearClient
from resources.sources.openclaw import OpenClawClient
from resources.sources.weather import WeatherClient
from resources.storage.cursors import CursorStore
from resources.storage.lake import Lake, TablePath, WrittenPartition, land
from resources.storage.postgres import PostgresWarehouse


class PlatformResource(ConfigurableResource):
    """Command Center's configuration (from `CC_*` variables) and the things built from it.

    Fields left unset take the environment's value; tests set them to point a run at a
    temporary data folder or a sandbox on another port.
    """

    data_dir: str | None = None
    sandbox_url: str | None = None
    warehouse: str | None = None
    pg_url: str | None = None
    landing_url: str | None = None

    _settings: Settings | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._read_settings()
        return self._settings

    def _read_settings(self) -> Settings:
        overrides = {
            "CC_DATA_DIR": self.data_dir,
            "CC_SANDBOX_URL": self.sandbox_url,
            "CC_WAREHOUSE": self.warehouse,
            "CC_PG_URL": self.pg_url,
            "CC_LANDING_URL": self.landing_url,
        }
        env = {**os.environ, **{k: v for k, v in overrides.items() if v}}
        return Settings.from_env(env)

    def lake(self) -> Lake:
        return Lake(self.settings().lake_dir)

    def cursors(self) -> CursorStore:
        """The sources' durable cursors (replication position, log offsets, incremental marks)."""
        return CursorStore(self.settings().state_dir / "cursors.json")

    def github(self) -> GitHubClient:
        """REST, or with `CC_GITHUB_API=graphql` (the default) GraphQL for pull requests and theirs."""
        return github_client(self.settings())

    def linear(self) -> LinearClient:
        return LinearClient.from_settings(self.settings())

    def charlie(self) -> CharlieClient:
        return CharlieClient.from_settings(self.settings())

    def openclaw(self) -> OpenClawClient:
        return OpenClawClient.from_settings(self.settings())

    def cron(self) -> CronClient:
        return CronClient.from_settings(self.settings())

    def weather(self) -> WeatherClient:
        return WeatherClient.from_settings(self.settings())

    def postgres(self) -> PostgresWarehouse | None:
        """The Postgres warehouse when it is the target, else None (embedded DuckDB)."""
        settings = self.settings()
        return PostgresWarehouse(settings.pg_url) if settings.warehouse == "postgres" else None

    def land(
        self, table: TablePath, day: date, rows: list[dict], schema: pa.Schema, ingested_at: datetime
    ) -> WrittenPartition:
        """Write one lake partition and, with the Postgres target, load the same rows there."""
        return land(self.lake(), self.postgres(), table, day, rows, schema, ingested_at)
