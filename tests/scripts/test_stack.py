"""`make stack` in its reduced form (no Dagster webserver), as CI runs it: Postgres for the
warehouse and Dagster's storage, a Redis and an S3 server of its own, a gRPC code server, the
daemon draining the run queue, two sidecar workers — and the warehouse it builds from a small
sandbox world equals the embedded run's."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
# About 3 minutes on an idle 2-core host, half as long again beside the rest of the suite.
STACK_TIMEOUT_S = 450


def stop_stack(stack: subprocess.Popen) -> None:
    """End `make stack` and everything it started, also when the test was cut short (pytest-timeout
    raises in the test while the stack runs): a SIGTERM unwinds it and it stops its processes; any
    it could not stop (or a stack that did not stop) are killed, from the list of its descendants
    taken before, since each sits in a session of its own."""
    if stack.poll() is not None:
        return
    started: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        started = psutil.Process(stack.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(stack.pid, signal.SIGTERM)
    try:
        stack.wait(60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stack.pid, signal.SIGKILL)
        stack.wait()
    for process in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@pytest.mark.postgres
@pytest.mark.timeout(STACK_TIMEOUT_S)
def test_the_stack_computes_what_the_embedded_run_computes(pg_admin_url, tmp_path):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the stack test: redis-server is not installed")
        pytest.skip("redis-server is not installed (the stack starts a Redis of its own)")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CC_")}, "CC_PG_URL": pg_admin_url,
           # As for the session's own builds (tests/conftest.py): the test waits for every dbt build
           # (at the deployment's nice 10 a build on a busy host gets about a tenth of a core), and
           # compares warehouses, not the catalog's row counts and column types (test_pipeline does).
           "CC_DBT_NICENESS": os.environ["CC_DBT_NICENESS"],
           "CC_DBT_CATALOG_METADATA": os.environ["CC_DBT_CATALOG_METADATA"]}
    # A session of its own: the group's SIGTERM reaches the stack, not pytest.
    stack = subprocess.Popen([sys.executable, "-m", "scripts.stack", "--events", "300", "--days", "1", "--reduced",
                              "--work", str(tmp_path / "stack")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = stack.communicate()
    finally:
        stop_stack(stack)
    assert stack.returncode == 0, out[-4000:] + err[-4000:]
    assert "the stack's warehouse equals the embedded run's" in out
    # The webhooks really went through both workers, and the runs through the daemon's queue.
    halves = re.search(r"([\d,]+) \+ ([\d,]+) deliveries acknowledged by the two workers", out)
    assert halves and all(int(n.replace(",", "")) > 0 for n in halves.groups()), out
    assert re.search(r"\d+ queued runs through the daemon", out), out
    workflows = re.search(r"fct_workflows rows\s+(\d+)\s+(\d+)", out)
    assert workflows and int(workflows.group(1)) == int(workflows.group(2)) > 0, out
    # It stopped what it started (the daemon and Redis name the work folder on their command lines).
    logs = tmp_path / "stack" / "logs"
    assert {p.stem for p in logs.glob("*.log")} >= {"code-server", "daemon", "s3"}
    left = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"])
            if any(str(tmp_path) in part for part in p.info["cmdline"] or [])]
    assert left == [], left
