"""Shared fixtures: a real Postgres database per session, Settings pointed at temp folders, and one
sandbox world that ends now, landed and built once per session on DuckDB and on Postgres."""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from resources.settings import Settings
from sandbox.process import SandboxHandle

# The tests land fixed past days (2026-11-…) into empty lakes, as backfills do: the definitions'
# partitions must reach back to them (unset, they would start at the first day `data/` holds).
os.environ.setdefault("CC_PARTITIONS_START", "2026-01-01")
# Reading every model's row count and column types costs seconds per dbt build: the catalog's
# tests (tests/cc_assets/test_pipeline.py) turn it back on for their builds.
os.environ.setdefault("CC_DBT_CATALOG_METADATA", "false")
# The session waits for every dbt build it starts: at the deployment's nice 10 a build on a busy host
# (other work, or the test's own sidecar) gets about a tenth of a core and can take ten times as long.
os.environ.setdefault("CC_DBT_NICENESS", "0")

# The shared recorded fixtures: the nearest `shared/fixtures` above the repo (a git worktree sits deeper).
FIXTURES = next((folder / "shared" / "fixtures" for folder in Path(__file__).resolve().parents[1:]
                 if (folder / "shared" / "fixtures").is_dir()),
                Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    return os.environ.get("CC_PG_URL") or DEFAULT_PG_URL


# --- two workers: `make test` runs `pytest -n 2 --dist loadscope` (pytest-xdist) ---------------------

# Each worker builds the session's worlds it needs (tens of seconds each): the modules that read one
# run on the same worker, one after the other. Every other module runs whole on one worker too, as
# its module fixtures (a sidecar, a sandbox) start once.
WORLDS = {
    "now_world": ("tests/streaming/test_api.py", "tests/streaming/test_tiers_api.py", "tests/streaming/test_page.py",
                  "tests/streaming/test_openapi.py", "tests/streaming/test_graphql.py",
                  "tests/cc_assets/test_pipeline_postgres.py"),
    "built_world": ("tests/cc_assets/test_pipeline.py", "tests/cc_assets/test_tiers.py",
                    "tests/cc_assets/test_reports.py"),
}
WORLD_OF = {module: world for world, modules in WORLDS.items() for module in modules}
WORLD_FIXTURES = {"now_world", "now_world_pg", "built_world", "tiered"}
# Modules whose tests share nothing but are each minutes long: a unit per test, so both workers take some.
EACH_ALONE = ("tests/scripts/test_demo.py", "tests/streaming/test_live_parity.py")
# The longest first, so that neither worker is left with a long one at the end while the other idles
# (minutes each in the last full run; every other module takes seconds to a minute).
LONGEST_FIRST = ("now_world", "tests/scripts/test_stack.py", "tests/scripts/test_demo.py", "built_world",
                 "tests/streaming/test_live_parity.py", "tests/scripts/test_ui.py")


def _world_or_module(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0]
    return WORLD_OF.get(module, module)


def work_unit(nodeid: str) -> str:
    """What runs whole on one worker: the shared world a test's module reads, else its module (or
    the test alone, in EACH_ALONE)."""
    return nodeid if nodeid.split("::", 1)[0] in EACH_ALONE else _world_or_module(nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadscope` with the worlds' modules as one unit each, handed out longest first. (Not
    `--dist loadgroup` with `xdist_group` marks: pytest-xdist 3.8 names a group by renaming the
    node id, which pytest 9.2 no longer lets it do, and every test is then handed out alone.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByWorld(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    # Units in the order collected, which the hook below sorts (not the largest first).
    config.option.loadscopereorder = False
    return ByWorld(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not a worker: the order does not matter
        return
    unlisted = sorted({item.nodeid.split("::", 1)[0] for item in items
                       if WORLD_FIXTURES.intersection(item.fixturenames) and _world_or_module(item.nodeid) not in WORLDS})
    if unlisted:  # each worker would build the world it reads: correct, but tens of seconds more
        warnings.warn(pytest.PytestWarning(f"{', '.join(unlisted)} read a shared world: list them in WORLDS "
                                           "(tests/conftest.py)"), stacklevel=1)
    rank = {unit: n for n, unit in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_world_or_module(item.nodeid), len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A reachable Postgres; outside CI a missing server skips, in CI (CI=true) it fails."""
    url = _admin_url()
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Postgres tests, but {url} is unreachable: {exc}")
        pytest.skip(f"no Postgres at {url} (set CC_PG_URL): {exc}")
    return url


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """A fresh, throwaway database for this test session; its URL."""
    name = f"cc_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    base = pg_admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="session", autouse=True)
def live_models(tmp_path_factory) -> None:
    """The sidecar's live workflow state runs dbt's compiled models (streaming/state/compiled.py):
    compiled once here, before any sidecar starts, rather than by the first sidecar while its test
    waits (a fresh clone has none; each later run finds them fresh)."""
    from streaming.state import compiled

    compiled.ensure(Settings.from_env({"CC_DATA_DIR": str(tmp_path_factory.mktemp("live-models"))}))


@dataclass(frozen=True)
class NowWorld:
    """A sandbox world that ends now (so the 1h/24h presets see data, as in the demo), landed and
    built on DuckDB into `data_dir`; its sandbox keeps serving (the Charlie commands go there)."""

    sandbox: SandboxHandle
    data_dir: Path
    end: datetime
    days: int
    events: int

    @property
    def partitions(self) -> list[str]:
        return [(self.end - timedelta(days=n)).date().isoformat() for n in range(self.days, -1, -1)]

    def copy(self, to: Path) -> Path:
        """A data folder of the caller's own holding the built world (nothing may change the original)."""
        shutil.copytree(self.data_dir, to)
        return to


@pytest.fixture(scope="session")
def now_world(tmp_path_factory) -> Iterator[NowWorld]:
    """Built once per session: a build of the dbt project takes tens of seconds, and test_api,
    test_tiers_api, test_page and test_openapi (tests/streaming) each read such a warehouse, each
    from a copy. Three days (test_tiers_api puts the day before yesterday in the cold tier) of 600 events."""
    from sandbox.process import run_sandbox
    from scripts.chaos.built import land_and_build

    end = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    days, events = 3, 600
    with run_sandbox(tmp_path_factory.mktemp("now-sandbox"), events=events, days=days, end=end) as sandbox:
        data_dir = tmp_path_factory.mktemp("now-world") / "data"
        land_and_build(data_dir, sandbox.url, days, end)
        yield NowWorld(sandbox, data_dir, end, days, events)


@dataclass(frozen=True)
class NowWorldOnPostgres:
    """`now_world` landed and built on Postgres, in a database of its own (`url`), by the definitions
    a deployment on Postgres loads; `transform` is the build's run (with the catalog's row counts
    and column types)."""

    url: str
    data_dir: Path
    transform: object

    def copy(self, admin_url: str, prefix: str):
        """A database of the caller's own with the same contents (a context manager of its URL)."""
        from scripts.chaos.harness import throwaway_database

        return throwaway_database(admin_url, prefix, template=self.url)


@pytest.fixture(scope="session")
def now_world_pg(now_world: NowWorld, pg_admin_url: str, tmp_path_factory) -> Iterator[NowWorldOnPostgres]:
    """Built once per session for tests/cc_assets/test_pipeline_postgres.py (the same models) and
    tests/streaming/test_api.py (the API on Postgres, on a copy)."""
    from cc_assets.definitions import build_definitions
    from scripts.chaos.built import land_and_build
    from scripts.chaos.harness import throwaway_database

    data_dir = tmp_path_factory.mktemp("now-world-pg") / "data"
    with throwaway_database(pg_admin_url, "cc_now_world") as url:
        on_postgres = build_definitions(Settings.from_env({
            "CC_WAREHOUSE": "postgres", "CC_PG_URL": url, "CC_DATA_DIR": str(data_dir),
            "CC_PARTITIONS_START": now_world.partitions[0]}))
        with pytest.MonkeyPatch.context() as env:
            # This build shows what the catalog gets (turned off above for every other build).
            env.setenv("CC_DBT_CATALOG_METADATA", "true")
            transform = land_and_build(data_dir, now_world.sandbox.url, now_world.days, now_world.end,
                                       "postgres", url, on_postgres)
        yield NowWorldOnPostgres(url, data_dir, transform)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture(scope="session")
def github_fixtures() -> Path:
    path = FIXTURES / "github-webhooks"
    if not path.is_dir():
        pytest.skip(f"the shared GitHub webhook fixtures are not at {path}")
    return path


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis; outside CI a missing server skips, in CI (CI=true) it fails."""
    import redis

    url = os.environ.get("CC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the Redis tests, but {url} is unreachable: {exc}")
        pytest.skip(f"no Redis at {url} (set CC_TEST_REDIS_URL): {exc}")
    return url


class LinearWebhooks:
    """Linear webhook bodies in the documented shape (https://linear.app/developers/webhooks,
    "The webhook payload"): `action`, `type`, `actor`, `createdAt`, `data` (the entity),
    `updatedFrom` (an update's previous values, ids only), `url`, `organizationId`, `webhookId`;
    `webhookTimestamp` is added when signing. There are no recorded Linear deliveries to replay."""

    ORG = "8f1c9b7e-1b0a-4c4e-9c55-2f0e5ad7c0a1"
    TEAM = {"id": "team-eng", "key": "ENG", "name": "Engineering"}
    TODO = {"id": "state-todo", "name": "Todo", "color": "#e2e2e2", "type": "unstarted"}
    STARTED = {"id": "state-started", "name": "In Progress", "color": "#f2c94c", "type": "started"}
    ANN = {"id": "user-ann", "name": "Ann Lee", "email": "ann@acme.dev", "url": "https://linear.app/acme/profiles/ann",
           "type": "user"}

    def _envelope(self, action: str, type_: str, data: dict, url: str, at: str, **extra) -> dict:
        return {"action": action, "type": type_, "actor": self.ANN, "createdAt": at, "data": data, "url": url,
                "organizationId": self.ORG, "webhookId": "wh-" + uuid.uuid4().hex[:12], **extra}

    def issue_data(self, issue_id: str = "lin-42", identifier: str = "ENG-42", state: dict | None = None,
                   updated_at: str = "2026-01-05T10:00:00.000Z") -> dict:
        state = state or self.TODO
        url = f"https://linear.app/acme/issue/{identifier}/fix-login"
        return {"id": issue_id, "createdAt": "2026-01-05T10:00:00.000Z", "updatedAt": updated_at,
                "archivedAt": None, "number": int(identifier.split("-")[1]), "identifier": identifier,
                "title": "Fix login", "description": "Sessions expire early.", "priority": 2,
                "priorityLabel": "High", "estimate": None, "sortOrder": -12.5, "url": url,
                "teamId": self.TEAM["id"], "team": self.TEAM, "stateId": state["id"], "state": state,
                "assigneeId": self.ANN["id"], "assignee": {k: self.ANN[k] for k in ("id", "name", "email", "url")},
                "creatorId": self.ANN["id"], "labelIds": [], "labels": [], "subscriberIds": [self.ANN["id"]],
                "startedAt": None, "completedAt": None, "canceledAt": None, "previousIdentifiers": []}

    def issue_created(self, **kwargs) -> dict:
        data = self.issue_data(**kwargs)
        return self._envelope("create", "Issue", data, data["url"], data["createdAt"])

    def state_changed(self, issue_id: str = "lin-42", identifier: str = "ENG-42", to: dict | None = None,
                      at: str = "2026-01-05T10:30:00.000Z", previous: dict | None = None) -> dict:
        """An `Issue` update moving the issue from `previous` (Todo) to `to` (In Progress)."""
        to, previous = to or self.STARTED, previous or self.TODO
        data = {**self.issue_data(issue_id, identifier, to, at), "startedAt": at}
        return self._envelope("update", "Issue", data, data["url"], at, updatedFrom={
            "updatedAt": "2026-01-05T10:00:00.000Z", "sortOrder": -12.5, "startedAt": None, "stateId": previous["id"]})

    def reassigned(self, issue_id: str = "lin-42", identifier: str = "ENG-42") -> dict:
        at = "2026-01-05T10:40:00.000Z"
        data = self.issue_data(issue_id, identifier, updated_at=at)
        return self._envelope("update", "Issue", data, data["url"], at,
                              updatedFrom={"updatedAt": "2026-01-05T10:30:00.000Z", "assigneeId": None})

    def issue_removed(self, issue_id: str = "lin-42", identifier: str = "ENG-42") -> dict:
        at = "2026-01-05T11:00:00.000Z"
        data = {**self.issue_data(issue_id, identifier, updated_at=at), "archivedAt": at, "trashed": True}
        return self._envelope("remove", "Issue", data, data["url"], at)

    def comment_created(self, comment_id: str = "cmt-7", issue_id: str = "lin-42", identifier: str | None = "ENG-42",
                        body: str = "Reproduced on staging, see OPS-3.", at: str = "2026-01-05T10:35:00.000Z",
                        action: str = "create") -> dict:
        """A comment on an issue; `identifier=None` gives the older shape (issueId, no `issue`)."""
        url = f"https://linear.app/acme/issue/{identifier or 'ENG-42'}/fix-login#comment-{comment_id[:8]}"
        data = {"id": comment_id, "createdAt": at, "updatedAt": at, "archivedAt": None, "body": body,
                "issueId": issue_id, "userId": self.ANN["id"], "editedAt": None, "reactionData": [],
                "user": {k: self.ANN[k] for k in ("id", "name", "email", "url")}}
        if identifier is not None:
            data["issue"] = {"id": issue_id, "title": "Fix login", "identifier": identifier,
                             "teamId": self.TEAM["id"], "team": self.TEAM,
                             "url": f"https://linear.app/acme/issue/{identifier}/fix-login"}
        return self._envelope(action, "Comment", data, url, at)


@pytest.fixture(scope="session")
def linear_webhooks() -> LinearWebhooks:
    return LinearWebhooks()
