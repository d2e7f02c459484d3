"""`make stack` in its reduced form (no Dagster webserver), as CI runs it: Postgres for the
warehouse and Dagster's storage, a Redis and an S3 server of its own, a gRPC code server, the
daemon draining the run queue, two sidecar workers — and the warehouse it builds from a small
sandbox world equals the embedded run's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.postgres
def test_the_stack_computes_what_the_embedded_run_computes(pg_admin_url, tmp_path):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the stack test: redis-server is not installed")
        pytest.skip("redis-server is not installed (the stack starts a Redis of its own)")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CC_")}, "CC_PG_URL": pg_admin_url}
    done = subprocess.run([sys.executable, "-m", "scripts.stack", "--events", "300", "--days", "1", "--reduced",
                           "--work", str(tmp_path / "stack")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-4000:]
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
