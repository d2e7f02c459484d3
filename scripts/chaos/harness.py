"""Real parts for the chaos suite and the tests: a sidecar process on a loopback port, and the
signatures GitHub, Linear, Charlie and the event pushers send."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from streaming.auth import issue_token

ROOT = Path(__file__).resolve().parents[2]

SECRETS = {
    "CC_GITHUB_WEBHOOK_SECRET": "gh-secret-0123456789abcdef0123456789abcdef",
    "CC_LINEAR_WEBHOOK_SECRET": "linear-secret-0123456789abcdef0123456789ab",
    "CC_CHARLIE_WEBHOOK_SECRET": "charlie-secret-0123456789abcdef0123456789",
    "CC_JWT_SECRET": "jwt-secret-0123456789abcdef0123456789abcdef",
    "CC_EVENTS_API_TOKEN": "events-token-0123456789abcdef0123456789abc",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sidecar:
    """One sidecar process, run as in production by the launcher (`python -m streaming.serve`);
    `restart()` keeps its data dir (and port). `max_open_files` caps the process's open-file
    limit (soft and hard), as on a host whose limit is low. Processes sharing a data dir need a
    `worker` name each (`CC_SIDECAR_WORKER_ID`: their own landing files)."""

    def __init__(self, data_dir: Path, env: dict[str, str], max_open_files: int | None = None,
                 worker: str | None = None) -> None:
        self.data_dir = data_dir
        self.env = {**env, "CC_SIDECAR_WORKER_ID": worker} if worker else env
        self.max_open_files = max_open_files
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def _limit_files(self) -> None:  # in the child, before exec
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_open_files, self.max_open_files))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout_s: float = 30) -> Sidecar:
        env = {**os.environ, "CC_DATA_DIR": str(self.data_dir), **self.env}
        self.log = (self.data_dir.parent / f"sidecar-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streaming.serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=self._limit_files if self.max_open_files else None)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sidecar exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=0.5).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"sidecar did not start in {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing — a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def restart(self) -> Sidecar:
        self.kill()
        return self.start()

    def token(self, sub: str = "tester", ttl_s: float = 600, rooms=None, scopes=None) -> str:
        """`rooms` limits what it reads; `scopes` (`commands`, `dashboards`) what it may change."""
        return issue_token(SECRETS["CC_JWT_SECRET"], sub, ttl_s, rooms, scopes)

    def landed(self, stream: str = "webhooks") -> list[dict]:
        lines = []
        for path in sorted((self.data_dir / "landing" / stream).glob("date=*.jsonl")):
            lines.extend(json.loads(line) for line in path.read_text().split("\n") if line.strip())
        return lines


class SidecarWorkers(Sidecar):
    """`workers` sidecar workers on one port under the launcher's supervisor (`CC_SIDECAR_WORKERS`;
    the env must name a Redis). The kernel picks a worker per connection: `by_worker` asks
    `/healthz` on fresh connections until every worker has answered."""

    def __init__(self, data_dir: Path, env: dict[str, str], workers: int = 2) -> None:
        super().__init__(data_dir, {**env, "CC_SIDECAR_WORKERS": str(workers)})
        self.workers = workers

    def start(self, timeout_s: float = 90) -> SidecarWorkers:
        super().start(timeout_s)
        self.by_worker(timeout_s=timeout_s)
        return self

    def by_worker(self, ready=lambda health: True, timeout_s: float = 60) -> dict[str, dict]:
        """Each worker's `/healthz` once it satisfies `ready`."""
        seen: dict[str, dict] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the supervisor exited with {self.proc.returncode}; see {self.log.name}")
            try:
                health = requests.get(f"{self.url}/healthz", timeout=2).json()
            except requests.RequestException:
                time.sleep(0.05)
                continue
            if ready(health):
                seen[health["worker"]] = health
            else:
                seen.pop(health["worker"], None)
            if len(seen) == self.workers:
                return seen
        raise RuntimeError(f"not every worker ready in {timeout_s:.0f} s: {sorted(seen)}")

    def pids(self) -> dict[str, int]:
        """Worker name → pid, of the supervisor's children."""
        import psutil

        found = {}
        for child in psutil.Process(self.proc.pid).children():
            try:
                found[child.environ().get("CC_SIDECAR_WORKER_ID", "?")] = child.pid
            except psutil.Error:
                continue
        return found

    def kill_worker(self, name: str) -> int:
        """SIGKILL one worker (the supervisor starts it again); its pid."""
        pid = self.pids()[name]
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # each worker gets one SIGTERM and its graceful shutdown
            try:
                self.proc.wait(45)
            except subprocess.TimeoutExpired:
                self.kill()  # the workers get SIGTERM from the kernel (PR_SET_PDEATHSIG)
        self.log.close()


# --- signing as the senders do -------------------------------------------------------------------


def github_headers(body: bytes, event: str, delivery: str | None = None,
                   secret: str = SECRETS["CC_GITHUB_WEBHOOK_SECRET"]) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "123456",
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def linear_body(payload: dict, timestamp_ms: int | None = None) -> bytes:
    return json.dumps({**payload, "webhookTimestamp": timestamp_ms or int(time.time() * 1000)}).encode()


def linear_headers(body: bytes, event: str = "Issue", secret: str = SECRETS["CC_LINEAR_WEBHOOK_SECRET"]):
    return {"Content-Type": "application/json", "Linear-Event": event, "Linear-Delivery": str(uuid.uuid4()),
            "Linear-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "X-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def bearer(token: str = SECRETS["CC_EVENTS_API_TOKEN"]) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


PG_ADMIN_URL = os.environ.get("CC_PG_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def throwaway_database(admin_url: str = PG_ADMIN_URL, prefix: str = "cc_chaos",
                       template: str | None = None) -> Iterator[str]:
    """A fresh database on the Postgres of `admin_url`, dropped afterwards (its sessions too): its URL.
    With `template` (a database URL on the same server, which nothing may be connected to), a copy of that
    database: a file copy on the server, much faster than building the same contents again."""
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    create = sql.SQL("create database {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" template {}").format(sql.Identifier(template.rsplit("/", 1)[1]))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(create)
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
