"""Every `CC_*` environment variable the platform reads, in one place.

Nothing else in the project reads the environment: modules take a `Settings` (or a value from
it), so tests build one explicitly (`Settings.from_env({...})`) instead of unloading modules.
Defaults make the embedded setup (DuckDB, local Parquet lake, sandbox sources on loopback) work
with no variables at all. Values come from the environment, then from a `.env` file in the
working directory (git-ignored); the README's configuration tables list every field (a test
checks them against this class).

A bad value raises `SettingsError`, one line naming the variable and the form it wants
(`CC_WS_QUEUE_MAX: expected an integer, got '1k'`); an unknown `CC_*` variable is reported once
with the closest known name. How the variables reach the class, and how their mistakes are told,
is resources/settings_env.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from resources.settings_env import (
    ENV_FILE,
    EXPLICIT_ENV,
    PREFIX,
    MappingSource,
    check_rate_limit,
    describe,
    dotenv_names,
    warn_unknown,
)
from resources.settings_env import UNLIMITED as UNLIMITED  # re-exported for streaming/ratelimit.py

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"

GITHUB_API_URL = "https://api.github.com"
LINEAR_API_URL = "https://api.linear.app/graphql"

# `CC_*` names that are not settings: the dbt profile's (written by `dbt_env`) and the tests'.
OTHER_VARIABLES = frozenset({"CC_DBT_PG_HOST", "CC_DBT_PG_PORT", "CC_DBT_PG_USER", "CC_DBT_PG_PASSWORD",
                             "CC_DBT_PG_DBNAME", "CC_DBT_PG_SCHEMA", "CC_TEST_REDIS_URL",
                             "CC_TEST_STATIC_DIR"})

Secret = Annotated[str | None, Field(default=None, repr=False)]
# Comma-separated lists (`CC_GITHUB_REPOS=acme/api,acme/web`), not the JSON pydantic-settings expects.
CommaList = Annotated[tuple[str, ...], NoDecode]
SpaceList = Annotated[tuple[str, ...], NoDecode]  # URLs may hold commas (mailto's `to=a,b`)


class SettingsError(ValueError):
    """A `CC_*` variable has a value the platform cannot use; the message is one line per variable."""


@dataclass(frozen=True)
class PostgresParams:
    """Connection parts of a `postgresql://` URL, as dbt's profile wants them."""

    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> PostgresParams:
        parsed = urlparse(url)
        if parsed.scheme not in ("postgres", "postgresql"):
            raise ValueError(f"not a postgresql:// URL: {parsed.scheme}://...")
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"),
            password=unquote(parsed.password or ""),
            dbname=(parsed.path or "/postgres").lstrip("/") or "postgres",
        )


class Settings(BaseSettings):
    """The platform's configuration; build it with `Settings.from_env()`."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=ENV_FILE, env_ignore_empty=True, extra="ignore",
                                      frozen=True, populate_by_name=True, validate_default=False)

    data_dir: Path = DEFAULT_DATA_DIR
    # Where sources live. The sandbox URL is the default for every API without a token.
    sandbox_url: str = "http://127.0.0.1:8765"
    github_token: Secret
    github_api_url: str | None = None
    github_org: str = "acme"
    github_repos: CommaList = ()
    # How pull requests and their reviews, commits and check runs are pulled: "graphql" (a query
    # covers up to 50 pull requests, paced by GitHub's point budget) or "rest" (one request each).
    github_api: Literal["graphql", "rest"] = "graphql"
    # Requests to GitHub in flight at once: repos side by side, GraphQL batches one ahead. GitHub asks
    # integrations to keep requests serial (1); 2 overlaps the server's work with the client's reading.
    github_concurrency: int = Field(default=2, ge=1, le=8)
    linear_api_key: Secret
    linear_api_url: str | None = None
    linear_teams: CommaList = ()
    charlie_api_url: str | None = None
    charlie_api_token: Secret
    openclaw_api_url: str | None = None
    openclaw_api_token: Secret
    cron_api_url: str | None = None
    cron_api_token: Secret
    weather_api_url: str | None = None
    weather_api_token: Secret
    # Business database followed by logical replication; unset: the CDC source is not configured.
    cdc_pg_url: Secret
    cdc_slot: str = "command_center"
    cdc_publication: str = "command_center"
    cdc_tables: CommaList = ()
    # Log files to tail (globs); empty: the sandbox's `$CC_DATA_DIR/logs/{*.log,syslog}`.
    log_paths: CommaList = ()
    # Warehouse: "duckdb" (embedded default) or "postgres" (also loads raw partitions there).
    warehouse: Literal["duckdb", "postgres"] = "duckdb"
    pg_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    pg_schema: str = "analytics"
    # With the warehouse on Postgres, the sidecar's dashboards, widgets and command log live in
    # this schema of it (shared by every replica); embedded, in a SQLite file under the data dir.
    app_schema: str = "cc_app"
    dagster_pg_url: Secret
    # The run queue (resources/dagster_home.py): runs in progress at once, and how many times a
    # run that failed is retried from its failure (a source down for a minute; not a dbt build).
    dagster_max_runs: int = Field(8, ge=1)
    dagster_run_retries: int = Field(2, ge=0)
    dagster_home: Path = Field(PROJECT_ROOT / ".dagster_home", validation_alias="CC_DAGSTER_HOME_DIR")
    # `make ui` and `make sidecar`: the Dagster UI's and the sidecar's ports on loopback.
    ui_port: int = Field(3000, ge=1, le=65535)
    sidecar_port: int = Field(8000, ge=1, le=65535)
    # The sidecar's worker processes on that port (`auto`: one per core; more than one needs
    # CC_REDIS_URL), and this process's name in its own landing files (`date=D.<id>.jsonl`): unset,
    # the launcher names its workers w1, w2…; one process per name in a data dir.
    sidecar_workers: int = Field(1, ge=1)
    sidecar_worker_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,63}$")
    # `make docs`: the dbt docs site's port on loopback.
    docs_port: int = Field(8580, ge=1, le=65535)
    # The Dagster catalog (cc_assets/catalog.py). The first daily partition: unset, the first day
    # the lake or the landing log holds (today less CC_WARM_DAYS while both are empty); set it
    # earlier to backfill days that never landed.
    partitions_start: date | None = None
    # Row counts and column types of the dbt models in the Dagster catalog, read after each build
    # (dagster-dbt's fetchers): seconds per build; off, the catalog shows the models without them.
    dbt_catalog_metadata: bool = True
    # The niceness dbt builds run at (resources/dbt.py): 10 lets the sidecar's reads go first on a
    # host they share; 0 runs a build at the priority of everything else (the tests, which wait for
    # each build, set it: on a busy host a nice-10 build gets about a tenth of a core).
    dbt_niceness: int = Field(10, ge=0, le=19)
    # The most memory a DuckDB dbt build holds before spilling to disk (`4GiB`; unset: DuckDB's 80 % of RAM).
    dbt_duckdb_memory_limit: str | None = Field(None, pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$")
    # Where the code lives, for the catalog's links to each asset's source: a repository's web URL
    # (https://github.com/acme/command-center) and branch; unset, the links are local file paths.
    git_url: str | None = None
    git_branch: str = "main"
    # `make demo`: the size of the sandbox organisation it generates.
    demo_events: int = Field(5000, ge=1)
    demo_days: int = Field(7, ge=1)
    # The streaming sidecar (streaming/). A webhook route whose secret is unset refuses every request.
    github_webhook_secret: Secret
    linear_webhook_secret: Secret
    charlie_webhook_secret: Secret
    jwt_secret: Secret
    events_api_token: Secret
    # Where pushers reach the sidecar: the metrics agent sends its samples to `<this>/events` with
    # CC_EVENTS_API_TOKEN (no token: it only lands them). Unset: the local one of `make ui` and
    # `make sidecar`, http://127.0.0.1:$CC_SIDECAR_PORT.
    sidecar_url: str | None = None
    # The metrics agent's seconds between samples (`python -m resources.ingest.metrics_agent`, which
    # `make ui` starts; its `--interval` overrides this).
    metrics_interval_s: float = Field(30.0, gt=0)
    # The page and the API docs' assets the sidecar serves at `/` and `/static/` (`page/`,
    # `vendor/`). Unset: the built ones in the package, `streaming/static`.
    static_dir: Path | None = None
    # Unset: rooms fan out in-process (one replica); redis://...: replicas share rooms by pub/sub.
    redis_url: Secret
    # Where webhooks and pushed samples land: unset, files in the data dir; postgresql://…, tables
    # that replicas on several hosts and the Dagster sensors share (resources/storage/pg_landing.py).
    landing_url: Secret
    # GitHub caps a delivery at 25 MB and drops bigger ones itself, so anything under that cap is a
    # real delivery (a large push) that must not be refused; it bounds memory per request.
    webhook_max_bytes: int = Field(25 * 1024 * 1024, ge=1)
    # Fault injection, for tests and chaos only: every landing group commit waits this long before
    # its write and fsync, as a very slow disk would. Never set it in production.
    fault_fsync_delay_s: float = Field(0.0, ge=0)
    # Per WebSocket client: messages queued before the oldest are dropped, and how long a client
    # may stay that far behind before it is disconnected (4408).
    ws_queue_max: int = Field(1000, ge=1)
    ws_slow_after_s: float = Field(10.0, ge=0)
    # When room messages go out (`streaming.rooms`): `adaptive`, at once to every client whose
    # socket is free and coalesced behind a busy one; `fixed`, at most one frame per batching
    # client every `ws_batch_ms` (the earlier policy, kept to compare).
    room_batch: Literal["adaptive", "fixed"] = "adaptive"
    # Adaptive: the most of the event loop one room's turns take; after a turn whose writes took t
    # its room waits t × (1 − share) / share, and what arrives meanwhile goes out as one frame.
    # (`streaming.rooms.BUSY_SHARE` says why 0.15.)
    room_busy_share: float = Field(0.15, gt=0, le=1)
    # A batching client's frame interval (fixed), and the most batch frames a second a replica writes.
    ws_batch_ms: float = Field(8.0, ge=0)
    ws_frames_per_s: int = Field(25_000, ge=1)
    # WebSocket keepalive (uvicorn's ping): a client that does not answer a ping within the
    # timeout is closed with 1011. Passed by the launcher, `python -m streaming.serve`.
    ws_ping_interval_s: float = Field(20.0, ge=0)
    ws_ping_timeout_s: float = Field(20.0, ge=0)
    # GraphQL (`streaming/graphql/limits.py`): how deeply an operation's fields may nest, and the
    # most objects its answer may hold (a list counts its `limit`), checked before it runs.
    graphql_max_depth: int = Field(8, ge=1)
    graphql_max_cost: int = Field(10_000, ge=1)
    # The launcher's read timeouts (headers not in: closed; body not in: 408) and connection budget
    # (past it a new connection evicts the oldest still waiting for its headers, so a slowloris never
    # uses up the descriptors senders need; capped below the open-file limit): `streaming.serve`.
    http_header_timeout_s: float = Field(10.0, ge=0)
    http_body_timeout_s: float = Field(30.0, ge=0)
    http_max_connections: int = Field(10_000, ge=1)
    # Rate limits (streaming/ratelimit.py), in limits' syntax ("600/minute", "10/second;600/minute";
    # `unlimited`: none), per token (its `sub`) and action, in Redis with CC_REDIS_URL (every replica
    # counts against one limit) and in process otherwise. A webhook route's limit is its verified
    # sender's, apart from every token's. Overrides by `<action>:<user or source>`, as JSON:
    # {"webhook:linear": "100/second", "read:wallboard": "6000/minute"}.
    rate_limit_read: str = "1200/minute"
    rate_limit_command: str = "120/minute"
    rate_limit_subscribe: str = "600/minute"
    rate_limit_webhook: str = "5000/second"
    rate_limit_overrides: dict[str, str] = Field(default_factory=dict)
    # The sidecar's own metrics at `/metrics` (Prometheus text, streaming/telemetry.py): off, 404;
    # with a token, only `Authorization: Bearer <token>` reads them.
    metrics_enabled: bool = True
    metrics_token: Secret
    # Outbound: the source API clients.
    http_timeout_s: float = Field(30.0, ge=0)
    http_max_retries: int = Field(5, ge=0)
    http_backoff_s: float = Field(0.5, ge=0)
    http_max_backoff_s: float = Field(60.0, ge=0)
    circuit_failures: int = Field(5, ge=1)
    circuit_open_s: float = Field(60.0, ge=0)
    # An incremental pull starts this long before its cursor: records a source lists late (its
    # clock, replication lag) are fetched again, and the partition merge drops the repeats.
    incremental_overlap_s: float = Field(300.0, ge=0)
    # Processes normalizing a big window's days at once (cc_assets/normalizing.py); 0: one per core, at most 4.
    normalize_workers: int = Field(0, ge=0)
    # Storage tiers (cc_assets/tiers.py). The cold and archive tiers live under CC_LAKE_URL: unset,
    # the local `$CC_DATA_DIR/lake`; `s3://bucket/prefix` for S3-compatible object storage, with
    # the endpoint (MinIO, Ceph, ...), region and keys below or the standard AWS variables.
    lake_url: str | None = None
    # The analysts' DuckDB catalog file (resources/storage/catalog.py); unset: `$CC_DATA_DIR/catalog.duckdb`.
    catalog_path: Path | None = None
    lake_s3_endpoint: str | None = None
    lake_s3_region: str | None = None
    lake_s3_access_key_id: Secret
    lake_s3_secret_access_key: Secret
    # Hot: how long an hour of events and its counters stay in Redis (or the embedded hot folder).
    hot_ttl_s: int = Field(3600, ge=1)
    # Warm: days of event facts and rollups kept in the warehouse; older days are dropped once
    # their cold copy is verified.
    warm_days: int = Field(30, ge=0)
    # Cold: days a daily compacted file is kept after its month was archived and verified.
    cold_days: int = Field(90, ge=0)
    # Alerts (cc_alerts/): where notifications go, by Apprise URL (mailto://, slack://, json://...),
    # whitespace-separated; every URL gets alerts of CC_ALERT_MIN_SEVERITY and above. Routes add
    # channels for one severity and above: {"critical": ["slack://..."]}. Unset: alerts are kept,
    # pushed to `alerts:all` and listed by /api/alerts, but no one is notified.
    alert_urls: SpaceList = ()
    alert_routes: dict[Literal["info", "warning", "critical"], list[str]] = Field(default_factory=dict)
    alert_min_severity: Literal["info", "warning", "critical"] = "warning"
    # A channel sends at most one message per this many seconds (a digest of what happened meanwhile).
    alert_group_s: float = Field(30.0, ge=0)
    alert_retry_max_s: float = Field(300.0, ge=1)
    # The link notifications point at (the sidecar's public URL); unset: no link.
    alert_base_url: str | None = None
    # Rule thresholds by `<rule>.<name>` (the README's rules table), as JSON: {"host_cpu.percent": 95}.
    alert_thresholds: dict[str, float] = Field(default_factory=dict)
    # The sidecar evaluates the alert rules (off: it only lists and pushes what others raised).
    alert_monitor: bool = True
    # Operations reports (cc_assets/reports/): e-mailed to CC_REPORT_TO (comma-separated; unset: not
    # e-mailed) through this SMTP server, and linked from Dagster under CC_REPORT_BASE_URL (where
    # $CC_DATA_DIR/reports is served; unset: the file path, or the lake's URL on S3).
    report_to: CommaList = ()
    report_from: str = "command-center@localhost"
    report_base_url: str | None = None
    report_top_n: int = Field(10, ge=1)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: Secret
    # STARTTLS after connecting; CC_SMTP_SSL for a server that speaks TLS from the start (port 465).
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_s: float = Field(30.0, gt=0)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        explicit = EXPLICIT_ENV.get()
        if explicit is not None:
            return init_settings, MappingSource(settings_cls, explicit)
        if Path(ENV_FILE).is_file():
            return init_settings, env_settings, dotenv_settings
        return init_settings, env_settings  # the .env source costs half a call even with no file

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from the environment and `.env`, or from `environ` alone when given.
        Raises `SettingsError` (one line per bad variable); warns once per unknown `CC_*` name."""
        warn_unknown({**dotenv_names(), **os.environ} if environ is None else environ,
                     variables().keys() | OTHER_VARIABLES)
        token = EXPLICIT_ENV.set(dict(environ) if environ is not None else None)
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError("\n".join(describe(error, variable) for error in exc.errors())) from None
        finally:
            EXPLICIT_ENV.reset(token)

    @field_validator("github_repos", "linear_teams", "cdc_tables", "log_paths", "report_to", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("rate_limit_read", "rate_limit_command", "rate_limit_subscribe", "rate_limit_webhook",
                     mode="after")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        return check_rate_limit(value)

    @field_validator("rate_limit_overrides", mode="after")
    @classmethod
    def _rate_limit_overrides(cls, value: dict[str, str]) -> dict[str, str]:
        for scope, limit in value.items():
            if ":" not in scope:
                raise ValueError(f'expected "<action>:<user or source>" keys, got {scope!r}')
            check_rate_limit(limit)
        return value

    @field_validator("alert_urls", mode="before")
    @classmethod
    def _split_space(cls, value: Any) -> Any:
        return tuple(value.split()) if isinstance(value, str) else value

    @field_validator("data_dir", mode="after")
    @classmethod
    def _anchor(cls, value: Path) -> Path:
        # A relative CC_DATA_DIR means the project's folder, whichever directory a command runs in.
        return value if value.is_absolute() else (PROJECT_ROOT / value).resolve()

    @field_validator("sidecar_workers", mode="before")
    @classmethod
    def _per_core(cls, value: Any) -> Any:
        return (os.cpu_count() or 1) if isinstance(value, str) and value.strip().lower() == "auto" else value

    @field_validator("sandbox_url", mode="after")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("warehouse", "github_api", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("pg_url", "cdc_pg_url", "dagster_pg_url", "landing_url", mode="after")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and urlparse(value).scheme not in ("postgres", "postgresql"):
            raise ValueError("expected a postgresql://user@host:port/dbname URL")
        return value

    @property
    def ws_close_grace_s(self) -> float:
        """How long a client closed for being slow (4408) may take to read the close frame behind
        its backlog before its connection is dropped: as long as the keepalive would have waited."""
        return self.ws_ping_interval_s + self.ws_ping_timeout_s

    # Source endpoints: the real API once a token is set, the sandbox otherwise.
    @property
    def github_base_url(self) -> str:
        if self.github_api_url:
            return self.github_api_url.rstrip("/")
        return GITHUB_API_URL if self.github_token else f"{self.sandbox_url}/github"

    @property
    def github_graphql_url(self) -> str:
        """GitHub's GraphQL endpoint beside its REST base: `https://api.github.com/graphql`, the
        sandbox's `/github/graphql`, and GitHub Enterprise Server's `/api/graphql` for `/api/v3`."""
        base = self.github_base_url
        return base[: -len("/v3")] + "/graphql" if base.endswith("/api/v3") else f"{base}/graphql"

    @property
    def linear_graphql_url(self) -> str:
        if self.linear_api_url:
            return self.linear_api_url
        return LINEAR_API_URL if self.linear_api_key else f"{self.sandbox_url}/linear/graphql"

    def _or_sandbox(self, url: str | None, name: str) -> str:
        return (url or f"{self.sandbox_url}/{name}").rstrip("/")

    charlie_base_url = property(lambda self: self._or_sandbox(self.charlie_api_url, "charlie"))
    openclaw_base_url = property(lambda self: self._or_sandbox(self.openclaw_api_url, "openclaw"))
    cron_base_url = property(lambda self: self._or_sandbox(self.cron_api_url, "cron"))
    weather_base_url = property(lambda self: self._or_sandbox(self.weather_api_url, "weather"))

    @property
    def sidecar_base_url(self) -> str:
        return (self.sidecar_url or f"http://127.0.0.1:{self.sidecar_port}").rstrip("/")

    @property
    def static_root(self) -> Path:
        if self.static_dir is None:
            return PROJECT_ROOT / "streaming" / "static"
        return self.static_dir if self.static_dir.is_absolute() else (PROJECT_ROOT / self.static_dir).resolve()

    @property
    def metrics_dir(self) -> Path:
        """Metrics other processes export for the sidecar's `/metrics` (the Dagster exporter's file)."""
        return self.data_dir / "metrics"

    @property
    def dev_jwt_secret_path(self) -> Path:
        """`make ui`'s development JWT secret, made once when CC_JWT_SECRET is unset (mode 0600)."""
        return self.data_dir / "sidecar" / "dev-jwt-secret"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def hot_dir(self) -> Path:
        """The embedded hot tier (no Redis configured): one small file per hour."""
        return self.data_dir / "hot"

    @property
    def reports_dir(self) -> Path:
        """The operations reports (cc_assets/reports/): a folder per kind and period."""
        return self.data_dir / "reports"

    @property
    def state_dir(self) -> Path:
        """Cursors and circuit states: small files a restarted process must find again."""
        return self.data_dir / "state"

    @property
    def log_patterns(self) -> tuple[str, ...]:
        return self.log_paths or (str(self.data_dir / "logs" / "*.log"), str(self.data_dir / "logs" / "syslog"))

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def catalog_file(self) -> Path:
        """The analysts' catalog (`make sql`, BI tools): rewritten after each build, never locked."""
        if self.catalog_path is None:
            return self.data_dir / "catalog.duckdb"
        return self.catalog_path if self.catalog_path.is_absolute() else (PROJECT_ROOT / self.catalog_path).resolve()

    @property
    def pg(self) -> PostgresParams:
        return PostgresParams.from_url(self.pg_url)

    def dbt_env(self) -> dict[str, str]:
        """Variables the dbt profile reads (dbt runs in its own process or runner)."""
        pg = self.pg
        return {
            "CC_DATA_DIR": str(self.data_dir),
            "CC_DBT_PG_HOST": pg.host,
            "CC_DBT_PG_PORT": str(pg.port),
            "CC_DBT_PG_USER": pg.user,
            "CC_DBT_PG_PASSWORD": pg.password,
            "CC_DBT_PG_DBNAME": pg.dbname,
            "CC_DBT_PG_SCHEMA": self.pg_schema,
            "CC_DBT_DUCKDB_MEMORY_LIMIT": self.dbt_duckdb_memory_limit
            or f"{int(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') * 0.8) // 2**20}MiB",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            # dbt's output goes to Dagster's compute logs and files, never a terminal: no colour codes.
            "DBT_USE_COLORS": "false",
        }


def variable(name: str) -> str:
    """The environment variable of a field: `ws_queue_max` → `CC_WS_QUEUE_MAX`."""
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else PREFIX + name.upper()


def variables() -> dict[str, str]:
    """Every settings variable → its field name."""
    return {variable(name): name for name in Settings.model_fields}

