"""Run the sandbox as one subprocess: what the demo and the tests use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class SandboxHandle:
    url: str
    pid: int
    out_dir: Path

    @property
    def github_url(self) -> str:
        return f"{self.url}/github"

    @property
    def linear_url(self) -> str:
        return f"{self.url}/linear/graphql"

    @property
    def charlie_url(self) -> str:
        return f"{self.url}/charlie"

    @property
    def openclaw_url(self) -> str:
        return f"{self.url}/openclaw"

    @property
    def cron_url(self) -> str:
        return f"{self.url}/cron"

    @property
    def weather_url(self) -> str:
        return f"{self.url}/weather"

    @property
    def truth_path(self) -> Path:
        return self.out_dir / "truth.parquet"

    @property
    def agents_truth_path(self) -> Path:
        """The agent-side sources' truth (OpenClaw, cron, weather), kept apart from `truth_path`."""
        return self.out_dir / "truth_agents.parquet"

    def _call(self, method: str, route: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def set_faults(self, faults: list[dict]) -> list[dict]:
        """Replace the active faults (see `sandbox.faults`)."""
        return self._call("POST", "faults", faults)

    def faults(self) -> list[dict]:
        """The active faults, each with `used`: how many requests it spoiled so far."""
        return self._call("GET", "faults")

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_limits(self, **limits: int) -> dict:
        """Fresh budgets: `linear_requests`, `linear_complexity`, `github_graphql_points`, `period_s`
        (see the server); none named: every default."""
        return self._call("POST", "limits", limits)

    def info(self) -> dict:
        return self._call("GET", "info")


@contextmanager
def run_sandbox(out_dir: Path | str, seed: int = 7, events: int = 5000, days: int = 7,
                end: datetime | str | None = None, rate_limit: int = 5000, python: str = sys.executable,
                host: str = "127.0.0.1", port: int = 0,
                ready_timeout: float | None = None) -> Iterator[SandboxHandle]:
    """Start `python -m sandbox serve`, wait until it serves, and stop it on exit."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ready, log = out / "ready.json", out / "sandbox.log"
    ready.unlink(missing_ok=True)
    cmd = [python, "-m", "sandbox", "serve", "--host", host, "--port", str(port), "--seed", str(seed),
           "--events", str(events), "--days", str(days), "--out", str(out), "--rate-limit", str(rate_limit),
           "--ready-file", str(ready)]
    if end is not None:
        cmd += ["--end", end.isoformat() if isinstance(end, datetime) else str(end)]
    # The child must import this very package, installed or not.
    path = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    # Generation takes about a second per 100k events; allow for a slow machine.
    timeout = ready_timeout if ready_timeout is not None else 30 + events / 20_000
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                code = proc.returncode
                why = f"exited with {code}" if code is not None else f"not ready in {timeout:.0f}s"
                stderr = log.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"sandbox {why}: {' '.join(cmd)}\n{stderr}")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        yield SandboxHandle(info["url"], proc.pid, out)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
