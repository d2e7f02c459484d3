"""`make ui`: the Dagster UI on the embedded setup, with the sandbox sources, the streaming
sidecar (`python -m streaming.serve` on `CC_SIDECAR_PORT`, default 8000) and this host's metrics
agent (`python -m resources.ingest.metrics_agent`) running beside it.

The agent sends its samples to that sidecar with `CC_EVENTS_API_TOKEN`; when none is set, both
get a token made for this session, so `metrics:realtime` and `/dashboard/metrics` show this host
at once (set `CC_EVENTS_API_TOKEN` to push other events to `POST /events` too).

The sidecar serves the command-center page at `/`. With `CC_JWT_SECRET` unset, a development
secret is made once and kept in `$CC_DATA_DIR/sidecar/dev-jwt-secret` (mode 0600), the sidecar
gets it, and the link printed here carries a 12-hour operator token in its fragment
(`/#token=...`), which a browser never sends to the server, so no log holds it.

The sandbox listens where `CC_SANDBOX_URL` says (default http://127.0.0.1:8765), so assets
materialized from the UI land data exactly as in `make demo`. With real tokens set for every
source, or a sandbox already answering there, none is started.

Before starting anything it checks that its ports are free (and Redis answers, if set): a
second `make ui` refuses in one line instead of running half-started beside the first. Each
child runs in its own session, so Ctrl-C or SIGTERM reaches this process alone, which stops the
children in order and then kills whatever is left in their process groups (dagster dev's
webserver, daemon and code servers included).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

# dagster dev stops its webserver and daemon within ~15 s of an interrupt; after that, a kill.
STOP_WAIT_S = 30
# The sidecar answers within a second or two; the agent starts after it (or after this, regardless).
SIDECAR_WAIT_S = 30
# The operator's token in `make ui`'s link: a working day, then run `make ui` again for a new one.
OPERATOR_TOKEN_TTL_S = 12 * 3600
OPERATOR_SCOPES = ("commands", "dashboards", "alerts")


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/_sandbox/info", timeout=1).ok
    except requests.RequestException:
        return False


def _wait_for(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


class Stop(Exception):
    """SIGTERM or SIGINT arrived: unwind and stop the children."""


def _on_signal(signum, frame) -> None:
    raise Stop(signal.Signals(signum).name)


def main() -> int:
    from resources.settings import Settings
    from sandbox.process import run_sandbox
    from scripts.preflight import check_ports, check_postgres, check_redis
    from streaming.workers import check as check_workers

    settings = Settings.from_env()
    if problem := check_workers(settings):
        raise SystemExit(problem)
    needs_sandbox = not (settings.github_token and settings.linear_api_key and settings.charlie_api_url)
    start_sandbox = needs_sandbox and not _answers(settings.sandbox_url)
    target = urlparse(settings.sandbox_url)
    wanted = [(settings.ui_port, "Dagster UI", "CC_UI_PORT"), (settings.sidecar_port, "sidecar", "CC_SIDECAR_PORT")]
    if start_sandbox:
        wanted.append((target.port or 8765, "sandbox sources", "CC_SANDBOX_URL"))
    check_ports(wanted)
    if settings.redis_url:
        check_redis(settings.redis_url)
    if settings.landing_url:
        check_postgres(settings.landing_url, "CC_LANDING_URL", "start it or unset CC_LANDING_URL (the landing in local files)")

    # Python handlers (not SIG_IGN) before any child starts: children begin with the default
    # dispositions, so dagster dev, which maps SIGTERM to its SIGINT handler, does not inherit an
    # ignored SIGINT from a shell that started us in the background.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    bin_dir = Path(sys.executable).parent
    with contextlib.ExitStack() as stack:
        try:
            if start_sandbox:
                stack.enter_context(run_sandbox(settings.data_dir / "sandbox", host=target.hostname or "127.0.0.1",
                                                port=target.port or 8765))
                print(f"sandbox sources serving at {settings.sandbox_url}", flush=True)
            env = _pushing_env(settings)
            page = page_access(settings)
            env.update(page.env)
            sidecar = _start([sys.executable, "-m", "streaming.serve", "--host", "127.0.0.1",
                              "--port", str(settings.sidecar_port)], env)
            stack.callback(_stop, sidecar, signal.SIGTERM)
            workers = f", {settings.sidecar_workers} workers" if settings.sidecar_workers > 1 else ""
            print(f"streaming sidecar (webhooks, /ws, REST) at http://127.0.0.1:{settings.sidecar_port} "
                  f"(docs: /docs{workers})", flush=True)
            print(*page.lines, sep="\n", flush=True)
            # Its first sample goes out at once: to the sidecar once that answers (else it waits in
            # the agent's outbox for the next tick).
            _wait_for(f"{env['CC_SIDECAR_URL']}/healthz", SIDECAR_WAIT_S)
            agent = _start([sys.executable, "-m", "resources.ingest.metrics_agent"], env)
            stack.callback(_stop, agent, signal.SIGTERM)
            print(f"metrics agent sending this host's samples every {settings.metrics_interval_s:g} s to "
                  f"{env['CC_SIDECAR_URL']} "
                  f"({'CC_EVENTS_API_TOKEN' if settings.events_api_token else 'a token made for this session'})",
                  flush=True)
            dagster = _start([str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(settings.ui_port)])
            stack.callback(_stop, dagster, signal.SIGINT)
            return dagster.wait()
        except Stop as stop:
            print(f"{stop}: stopping the Dagster UI, the metrics agent, the sidecar and the sandbox", flush=True)
            return 0


def _pushing_env(settings) -> dict[str, str]:
    """The sidecar's and the agent's environment: the agent pushes to the sidecar started here,
    both with `CC_EVENTS_API_TOKEN` (one made for this session when it is not set)."""
    token = settings.events_api_token or secrets.token_urlsafe(32)
    return {**os.environ, "CC_EVENTS_API_TOKEN": token, "CC_SIDECAR_URL": f"http://127.0.0.1:{settings.sidecar_port}"}


@dataclass(frozen=True)
class PageAccess:
    """How the operator gets into the page: what the sidecar's environment gains, and what to print."""

    env: dict[str, str]
    lines: tuple[str, ...]
    link: str


def page_access(settings) -> PageAccess:
    """With `CC_JWT_SECRET` set, the page's URL (the page asks for a token signed with it); unset, the
    development secret (`dev_jwt_secret`) for the sidecar and a link that logs the operator in."""
    url = f"http://127.0.0.1:{settings.sidecar_port}/"
    if settings.jwt_secret:
        return PageAccess({}, (f"command-center page at {url} (paste a token signed with CC_JWT_SECRET)",), url)
    from streaming.auth import issue_token

    secret = dev_jwt_secret(settings.dev_jwt_secret_path)
    token = issue_token(secret, "operator", OPERATOR_TOKEN_TTL_S, scopes=OPERATOR_SCOPES)
    link = f"{url}#token={token}"
    return PageAccess({"CC_JWT_SECRET": secret}, (
        f"command-center page, logged in as operator for 12 h: {link}",
        f"(a development JWT secret, kept in {settings.dev_jwt_secret_path}: set CC_JWT_SECRET to use a real one)"),
        link)


def dev_jwt_secret(path: Path) -> str:
    """The development secret kept at `path`, made on first use (mode 0600, never rewritten), so a
    link printed by an earlier `make ui` keeps working until its token expires."""
    with contextlib.suppress(FileNotFoundError):
        kept = path.read_text().strip()
        if kept:
            return kept
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another `make ui` made it first (or an empty file was left): use that
        kept = path.read_text().strip()
        if kept:
            return kept
        path.unlink()
        return dev_jwt_secret(path)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


def _start(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    # Its own session and process group: a terminal's Ctrl-C reaches this process only, and the
    # whole group can be killed once its leader has stopped.
    return subprocess.Popen(cmd, start_new_session=True, env=env)


def _stop(process: subprocess.Popen, first: signal.Signals) -> None:
    """Ask the group's leader to stop with `first`, wait, then kill anything left in its group."""
    # A second Ctrl-C must not cut the clean-up short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if process.poll() is None:
        process.send_signal(first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_WAIT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


if __name__ == "__main__":
    sys.exit(main())
