"""Shared fixtures: a real Postgres database per session, and Settings pointed at temp folders."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from resources.settings import Settings

# The tests land fixed past days (2026-11-…) into empty lakes, as backfills do: the definitions'
# partitions must reach back to them (unset, they would start at the first day `data/` holds).
os.environ.setdefault("CC_PARTITIONS_START", "2026-01-01")
# Reading every model's row count and column types costs seconds per dbt build: the catalog's
# tests (tests/cc_assets/test_pipeline.py) turn it back on for their builds.
os.environ.setdefault("CC_DBT_CATALOG_METADATA", "false")
# The session waits for every dbt build it starts: at the deployment's nice 10 a build on a busy host
# (other work, or the test's own sidecar) gets about a tenth of a core and can take ten times as long.
os.environ.setdefault("CC_DBT_NICENESS", "0")

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _admin_url() -> str:
    return os.environ.get("CC_PG_URL") or DEFAULT_PG_URL


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
