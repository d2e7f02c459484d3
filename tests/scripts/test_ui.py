"""`make ui` (scripts/ui.py) as the Makefile runs it: on free ports it starts the sandbox, the
sidecar, this host's metrics agent (whose samples reach `metrics:realtime`) and dagster dev, and
a SIGTERM stops every process it started; with a port taken it refuses in one line before
starting anything."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
import websockets

from scripts.chaos.harness import free_port
from streaming.auth import issue_token

ROOT = Path(__file__).resolve().parents[2]
# dagster dev loads the definitions in a code server before it serves: tens of seconds when loaded.
START_WAIT_S = 240
JWT_SECRET = "ui-test-jwt-secret-0123456789abcdef"


@pytest.fixture
def ui_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CC_")},
            "CC_DATA_DIR": str(tmp_path / "data"), "DAGSTER_HOME": str(home),
            "CC_UI_PORT": str(free_port()), "CC_SIDECAR_PORT": str(free_port()),
            "CC_SANDBOX_URL": f"http://127.0.0.1:{free_port()}", "CC_JWT_SECRET": JWT_SECRET,
            # A sample every 2 s: the test waits for the first one sent after it subscribed (up to 30 s by default).
            "CC_METRICS_INTERVAL_S": "2"}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_ui_starts_and_a_sigterm_leaves_no_process_behind(ui_env: dict[str, str], tmp_path: Path) -> None:
    log = (tmp_path / "ui.log").open("w+")
    ui = subprocess.Popen([sys.executable, "-m", "scripts.run", "scripts.ui"], cwd=ROOT, env=ui_env,
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        urls = [f"http://127.0.0.1:{ui_env['CC_UI_PORT']}/server_info",
                f"http://127.0.0.1:{ui_env['CC_SIDECAR_PORT']}/healthz",
                f"{ui_env['CC_SANDBOX_URL']}/_sandbox/info"]
        deadline = time.monotonic() + START_WAIT_S
        while not all(_answers(url) for url in urls):
            assert ui.poll() is None, f"make ui exited with {ui.returncode}"
            assert time.monotonic() < deadline, "make ui did not serve all three"
            time.sleep(1)
        started = psutil.Process(ui.pid).children(recursive=True)
        assert len(started) >= 6  # sandbox, sidecar, metrics agent, dagster dev + its webserver, daemon, code server
        # The metrics agent sends this host to the sidecar (with the session's token), every 2 s here.
        sample = asyncio.run(_next_metrics_sample(f"ws://127.0.0.1:{ui_env['CC_SIDECAR_PORT']}/ws"))
        assert sample["host"] == socket.gethostname()
        # The agent's own line: it took CC_METRICS_INTERVAL_S (read apart from `log`, whose offset ui shares).
        assert "sending samples every 2 s" in (tmp_path / "ui.log").read_text()
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(120) == 0
        gone, alive = psutil.wait_procs(started, timeout=10)
        assert [p.pid for p in alive] == [], "processes left behind"
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()
        log.seek(0)
        print(log.read()[-3000:])


async def _next_metrics_sample(url: str) -> dict:
    async with websockets.connect(f"{url}?token={issue_token(JWT_SECRET, 'tester')}") as ws:
        await ws.send(json.dumps({"type": "subscribe", "rooms": ["metrics:realtime"]}))
        while True:  # the agent samples every CC_METRICS_INTERVAL_S
            message = json.loads(await asyncio.wait_for(ws.recv(), 45))
            if message["type"] == "system.metrics":
                return message["payload"]


def test_a_taken_port_refuses_in_one_line_before_starting_anything(ui_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(ui_env["CC_UI_PORT"])))
        taken.listen()
        done = subprocess.run([sys.executable, "-m", "scripts.run", "scripts.ui"], cwd=ROOT, env=ui_env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (f"port {ui_env['CC_UI_PORT']} (Dagster UI) is already in use: stop what listens there "
                           "(an earlier `make ui`?) or set CC_UI_PORT to a free port\n")
    assert not _answers(f"{ui_env['CC_SANDBOX_URL']}/_sandbox/info")  # nothing was started


def test_with_no_jwt_secret_make_ui_keeps_a_development_one_and_its_link_logs_the_operator_in(tmp_path: Path) -> None:
    """The secret is made once (0600) under the data folder and given to the sidecar; the printed link
    carries a 12-hour operator token in its fragment, which that sidecar accepts."""
    from resources.settings import Settings
    from scripts.ui import page_access
    from streaming.auth import verify_token

    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data"), "CC_SIDECAR_PORT": "8123"})
    first, again = page_access(settings), page_access(settings)
    path = settings.dev_jwt_secret_path
    assert path == tmp_path / "data" / "sidecar" / "dev-jwt-secret" and path.stat().st_mode & 0o777 == 0o600
    secret = path.read_text().strip()
    assert first.env == again.env == {"CC_JWT_SECRET": secret} and len(secret) >= 32
    assert first.link.startswith("http://127.0.0.1:8123/#token=")
    assert any(first.link in line for line in first.lines)
    assert any("development" in line and "CC_JWT_SECRET" in line for line in first.lines)
    operator = verify_token(secret, first.link.split("#token=", 1)[1])
    assert operator.sub == "operator" and operator.may("commands") and operator.may_join("events:all")
    assert 12 * 3600 - 60 <= operator.expires_at - time.time() <= 12 * 3600

    from scripts.chaos.harness import Sidecar

    sidecar = Sidecar(tmp_path / "sidecar-data", first.env).start()
    try:
        token = first.link.split("#token=", 1)[1]
        answer = requests.get(f"{sidecar.url}/dashboard/dashboards", headers={"Authorization": f"Bearer {token}"},
                              timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        sidecar.stop()


def test_with_a_jwt_secret_make_ui_prints_the_page_and_makes_no_secret(tmp_path: Path) -> None:
    from resources.settings import Settings
    from scripts.ui import page_access

    settings = Settings.from_env({"CC_DATA_DIR": str(tmp_path / "data"), "CC_JWT_SECRET": JWT_SECRET})
    access = page_access(settings)
    assert access.env == {} and access.link == "http://127.0.0.1:8000/" and "#token" not in " ".join(access.lines)
    assert not settings.dev_jwt_secret_path.exists()
