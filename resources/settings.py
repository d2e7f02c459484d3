"""Every `CC_*` environment variable the platform reads, in one place.

Nothing else in the project reads the environment: modules take a `Settings` (or a value from
it), so tests build one explicitly instead of unloading modules. Defaults make the embedded
setup (DuckDB, local Parquet lake, sandbox sources on loopback) work with no variables at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent

GITHUB_API_URL = "https://api.github.com"
LINEAR_API_URL = "https://api.linear.app/graphql"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


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


@dataclass(frozen=True)
class Settings:
    """The platform's configuration; build it with `Settings.from_env()`."""

    data_dir: Path = PROJECT_ROOT / "data"
    # Where sources live. The sandbox URL is the default for every API without a token.
    sandbox_url: str = "http://127.0.0.1:8765"
    github_token: str | None = field(default=None, repr=False)
    github_api_url: str | None = None
    github_org: str = "acme"
    github_repos: tuple[str, ...] = ()
    linear_api_key: str | None = field(default=None, repr=False)
    linear_api_url: str | None = None
    linear_teams: tuple[str, ...] = ()
    charlie_api_url: str | None = None
    charlie_api_token: str | None = field(default=None, repr=False)
    openclaw_api_url: str | None = None
    openclaw_api_token: str | None = field(default=None, repr=False)
    cron_api_url: str | None = None
    cron_api_token: str | None = field(default=None, repr=False)
    weather_api_url: str | None = None
    weather_api_token: str | None = field(default=None, repr=False)
    # Business database followed by logical replication; unset: the CDC source is not configured.
    cdc_pg_url: str | None = field(default=None, repr=False)
    cdc_slot: str = "command_center"
    cdc_publication: str = "command_center"
    cdc_tables: tuple[str, ...] = ()
    # Log files to tail (globs); empty: the sandbox's `$CC_DATA_DIR/logs/{*.log,syslog}`.
    log_paths: tuple[str, ...] = ()
    # Warehouse: "duckdb" (embedded default) or "postgres" (also loads raw partitions there).
    warehouse: str = "duckdb"
    pg_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    pg_schema: str = "analytics"
    # With the warehouse on Postgres, the sidecar's dashboards, widgets and command log live in
    # this schema of it (shared by every replica); embedded, in a SQLite file under the data dir.
    app_schema: str = "cc_app"
    dagster_pg_url: str | None = field(default=None, repr=False)
    dagster_home: Path = PROJECT_ROOT / ".dagster_home"
    # The streaming sidecar (streaming/). A webhook route whose secret is unset refuses every request.
    github_webhook_secret: str | None = field(default=None, repr=False)
    linear_webhook_secret: str | None = field(default=None, repr=False)
    charlie_webhook_secret: str | None = field(default=None, repr=False)
    jwt_secret: str | None = field(default=None, repr=False)
    events_api_token: str | None = field(default=None, repr=False)
    # Unset: rooms fan out in-process (one replica); redis://...: replicas share rooms by pub/sub.
    redis_url: str | None = field(default=None, repr=False)
    # GitHub caps a delivery at 25 MB and drops bigger ones itself, so anything under that cap is a
    # real delivery (a large push) that must not be refused; it bounds memory per request.
    webhook_max_bytes: int = 25 * 1024 * 1024
    # Fault injection, for tests and chaos only: every landing group commit waits this long before
    # its write and fsync, as a very slow disk would. Never set it in production.
    fault_fsync_delay_s: float = 0.0
    # Per WebSocket client: messages queued before the oldest are dropped, and how long a client
    # may stay that far behind before it is disconnected (4408).
    ws_queue_max: int = 1000
    ws_slow_after_s: float = 10.0
    # A batching client's frame interval, and the most batch frames a second a replica writes.
    ws_batch_ms: float = 8.0
    ws_frames_per_s: int = 25_000
    # WebSocket keepalive (uvicorn's ping): a client that does not answer a ping within the
    # timeout is closed with 1011. Passed by the launcher, `python -m streaming.serve`.
    ws_ping_interval_s: float = 20.0
    ws_ping_timeout_s: float = 20.0
    # Read timeouts and the connection budget of the launcher's HTTP protocol (`streaming.serve`):
    # a connection whose request headers are not in within the first is closed; a request whose
    # body is not in within the second (from its headers) gets 408. Past the budget a new
    # connection evicts the oldest one still waiting for its headers, so stalled connections
    # (slowloris) can never use up the file descriptors that senders with a request need. The
    # budget is also capped below the process's open-file limit.
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 30.0
    http_max_connections: int = 10_000
    # Outbound: the source API clients.
    http_timeout_s: float = 30.0
    http_max_retries: int = 5
    http_backoff_s: float = 0.5
    http_max_backoff_s: float = 60.0
    circuit_failures: int = 5
    circuit_open_s: float = 60.0
    # An incremental pull starts this long before its cursor: records a source lists late (its
    # clock, replication lag) are fetched again, and the partition merge drops the repeats.
    incremental_overlap_s: float = 300.0
    # Storage tiers (cc_assets/tiers.py). The cold and archive tiers live under CC_LAKE_URL: unset,
    # the local `$CC_DATA_DIR/lake`; `s3://bucket/prefix` for S3-compatible object storage, with
    # the endpoint (MinIO, Ceph, ...), region and keys below or the standard AWS variables.
    lake_url: str | None = None
    lake_s3_endpoint: str | None = None
    lake_s3_region: str | None = None
    lake_s3_access_key_id: str | None = field(default=None, repr=False)
    lake_s3_secret_access_key: str | None = field(default=None, repr=False)
    # Hot: how long an hour of events and its counters stay in Redis (or the embedded hot folder).
    hot_ttl_s: int = 3600
    # Warm: days of event facts and rollups kept in the warehouse; older days are dropped once
    # their cold copy is verified.
    warm_days: int = 30
    # Cold: days a daily compacted file is kept after its month was archived and verified.
    cold_days: int = 90

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(f"CC_{name}")
            return value if value not in (None, "") else None

        base = cls()
        data_dir = Path(get("DATA_DIR") or base.data_dir)
        if not data_dir.is_absolute():
            data_dir = (PROJECT_ROOT / data_dir).resolve()
        warehouse = (get("WAREHOUSE") or base.warehouse).lower()
        if warehouse not in ("duckdb", "postgres"):
            raise ValueError(f"CC_WAREHOUSE must be duckdb or postgres, not {warehouse!r}")
        return replace(
            base,
            data_dir=data_dir,
            sandbox_url=(get("SANDBOX_URL") or base.sandbox_url).rstrip("/"),
            github_token=get("GITHUB_TOKEN"),
            github_api_url=get("GITHUB_API_URL"),
            github_org=get("GITHUB_ORG") or base.github_org,
            github_repos=_split(get("GITHUB_REPOS") or ""),
            linear_api_key=get("LINEAR_API_KEY"),
            linear_api_url=get("LINEAR_API_URL"),
            linear_teams=_split(get("LINEAR_TEAMS") or ""),
            charlie_api_url=get("CHARLIE_API_URL"),
            charlie_api_token=get("CHARLIE_API_TOKEN"),
            openclaw_api_url=get("OPENCLAW_API_URL"),
            openclaw_api_token=get("OPENCLAW_API_TOKEN"),
            cron_api_url=get("CRON_API_URL"),
            cron_api_token=get("CRON_API_TOKEN"),
            weather_api_url=get("WEATHER_API_URL"),
            weather_api_token=get("WEATHER_API_TOKEN"),
            cdc_pg_url=get("CDC_PG_URL"),
            cdc_slot=get("CDC_SLOT") or base.cdc_slot,
            cdc_publication=get("CDC_PUBLICATION") or base.cdc_publication,
            cdc_tables=_split(get("CDC_TABLES") or ""),
            log_paths=_split(get("LOG_PATHS") or ""),
            warehouse=warehouse,
            pg_url=get("PG_URL") or base.pg_url,
            pg_schema=get("PG_SCHEMA") or base.pg_schema,
            app_schema=get("APP_SCHEMA") or base.app_schema,
            dagster_pg_url=get("DAGSTER_PG_URL"),
            dagster_home=Path(get("DAGSTER_HOME_DIR") or base.dagster_home),
            github_webhook_secret=get("GITHUB_WEBHOOK_SECRET"),
            linear_webhook_secret=get("LINEAR_WEBHOOK_SECRET"),
            charlie_webhook_secret=get("CHARLIE_WEBHOOK_SECRET"),
            jwt_secret=get("JWT_SECRET"),
            events_api_token=get("EVENTS_API_TOKEN"),
            redis_url=get("REDIS_URL"),
            webhook_max_bytes=int(get("WEBHOOK_MAX_BYTES") or base.webhook_max_bytes),
            fault_fsync_delay_s=float(get("FAULT_FSYNC_DELAY_S") or base.fault_fsync_delay_s),
            ws_queue_max=int(get("WS_QUEUE_MAX") or base.ws_queue_max),
            ws_slow_after_s=float(get("WS_SLOW_AFTER_S") or base.ws_slow_after_s),
            ws_batch_ms=float(get("WS_BATCH_MS") or base.ws_batch_ms),
            ws_frames_per_s=int(get("WS_FRAMES_PER_S") or base.ws_frames_per_s),
            ws_ping_interval_s=float(get("WS_PING_INTERVAL_S") or base.ws_ping_interval_s),
            ws_ping_timeout_s=float(get("WS_PING_TIMEOUT_S") or base.ws_ping_timeout_s),
            http_header_timeout_s=float(get("HTTP_HEADER_TIMEOUT_S") or base.http_header_timeout_s),
            http_body_timeout_s=float(get("HTTP_BODY_TIMEOUT_S") or base.http_body_timeout_s),
            http_max_connections=int(get("HTTP_MAX_CONNECTIONS") or base.http_max_connections),
            http_timeout_s=float(get("HTTP_TIMEOUT_S") or base.http_timeout_s),
            http_max_retries=int(get("HTTP_MAX_RETRIES") or base.http_max_retries),
            http_backoff_s=float(get("HTTP_BACKOFF_S") or base.http_backoff_s),
            http_max_backoff_s=float(get("HTTP_MAX_BACKOFF_S") or base.http_max_backoff_s),
            circuit_failures=int(get("CIRCUIT_FAILURES") or base.circuit_failures),
            circuit_open_s=float(get("CIRCUIT_OPEN_S") or base.circuit_open_s),
            incremental_overlap_s=float(get("INCREMENTAL_OVERLAP_S") or base.incremental_overlap_s),
            lake_url=get("LAKE_URL"),
            lake_s3_endpoint=get("LAKE_S3_ENDPOINT"),
            lake_s3_region=get("LAKE_S3_REGION"),
            lake_s3_access_key_id=get("LAKE_S3_ACCESS_KEY_ID"),
            lake_s3_secret_access_key=get("LAKE_S3_SECRET_ACCESS_KEY"),
            hot_ttl_s=int(get("HOT_TTL_S") or base.hot_ttl_s),
            warm_days=int(get("WARM_DAYS") or base.warm_days),
            cold_days=int(get("COLD_DAYS") or base.cold_days),
        )

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
    def linear_graphql_url(self) -> str:
        if self.linear_api_url:
            return self.linear_api_url
        return LINEAR_API_URL if self.linear_api_key else f"{self.sandbox_url}/linear/graphql"

    @property
    def charlie_base_url(self) -> str:
        return (self.charlie_api_url or f"{self.sandbox_url}/charlie").rstrip("/")

    @property
    def openclaw_base_url(self) -> str:
        return (self.openclaw_api_url or f"{self.sandbox_url}/openclaw").rstrip("/")

    @property
    def cron_base_url(self) -> str:
        return (self.cron_api_url or f"{self.sandbox_url}/cron").rstrip("/")

    @property
    def weather_base_url(self) -> str:
        return (self.weather_api_url or f"{self.sandbox_url}/weather").rstrip("/")

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def hot_dir(self) -> Path:
        """The embedded hot tier (no Redis configured): one small file per hour."""
        return self.data_dir / "hot"

    @property
    def reports_dir(self) -> Path:
        """The daily operations reports (cc_assets/reports.py): one folder per day."""
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
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            # dbt's output goes to Dagster's compute logs and files, never a terminal: no colour codes.
            "DBT_USE_COLORS": "false",
        }
