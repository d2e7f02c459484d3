"""A real sidecar: the launcher (`python -m streaming.serve`) in a subprocess on a loopback port, and helpers to
sign requests as GitHub, Linear, Charlie and the event pushers do."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.chaos.harness import (  # noqa: F401  (re-exported for the test modules)
    ROOT,
    SECRETS,
    Sidecar,
    bearer,
    free_port,
    github_headers,
    linear_body,
    linear_headers,
    signed_headers,
)


@pytest.fixture
def make_sidecar(tmp_path) -> Iterator:
    started: list[Sidecar] = []

    def make(env: dict[str, str] | None = None, data_dir: Path | None = None, secrets: bool = True) -> Sidecar:
        server = Sidecar(data_dir or tmp_path / f"data-{len(started)}",
                         {**(SECRETS if secrets else {}), **(env or {})})
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sidecar(make_sidecar) -> Sidecar:
    return make_sidecar({"CC_WEBHOOK_MAX_BYTES": str(256 * 1024)})


@pytest.fixture(scope="session")
def sign():
    """The signing helpers, for test modules (importlib mode: conftest is not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(github=github_headers, linear_body=linear_body, linear=linear_headers,
                           signed=signed_headers, bearer=bearer, secrets=SECRETS)


@pytest.fixture
def redis_server_binary():
    """`redis-server` on the PATH, for tests that restart a Redis of their own (`RedisServer`)."""
    import shutil

    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the Redis restart tests: redis-server is not installed")
        pytest.skip("redis-server is not installed (the test restarts a Redis of its own)")


JS_DIR = ROOT / "streaming" / "js"


@pytest.fixture(scope="session")
def node_js() -> Path:
    """`streaming/js` with its npm packages installed (`make install` runs `npm ci` there).

    Outside CI a missing node or `npm ci` not run skips with the reason; under CI=true it fails."""
    import shutil

    problem = None
    if shutil.which("node") is None:
        problem = "node is not installed"
    elif not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        problem = f"run `make install` (npm ci in {JS_DIR.relative_to(ROOT)})"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the JS Socket.IO tests: {problem}")
        pytest.skip(problem)
    return JS_DIR
