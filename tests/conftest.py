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
