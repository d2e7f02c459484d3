"""Errors a newcomer can cause, through `python -m scripts.run ...` as the Makefile runs each
command: one or two lines naming the cause and the fix, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from scripts.chaos.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(module: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    return subprocess.run([sys.executable, "-m", "scripts.run", module], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "CC_DATA_DIR": str(tmp_path / "data"), **env}, timeout=120)


def test_demo_on_an_unreachable_postgres_stops_before_any_run(tmp_path: Path) -> None:
    port = free_port()
    done = run("scripts.demo", tmp_path, CC_WAREHOUSE="postgres", CC_PG_URL=f"postgresql://postgres@127.0.0.1:{port}/x")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"cannot reach Postgres at 127.0.0.1:{port} (CC_PG_URL): connection refused — "
                           "start it or unset CC_WAREHOUSE\n")
    assert not (tmp_path / "data").exists()


def test_sidecar_and_ui_on_an_unreachable_redis(tmp_path: Path) -> None:
    port = free_port()
    for module in ("scripts.sidecar", "scripts.ui"):
        done = run(module, tmp_path, CC_REDIS_URL=f"redis://127.0.0.1:{port}/0", CC_SIDECAR_PORT=str(free_port()),
                   CC_UI_PORT=str(free_port()), CC_SANDBOX_URL=f"http://127.0.0.1:{free_port()}")
        assert (done.returncode, done.stdout) == (1, ""), module
        assert done.stderr == (f"cannot reach Redis at 127.0.0.1:{port} (CC_REDIS_URL): connection refused — "
                               "start it or unset CC_REDIS_URL (one replica, rooms in-process)\n"), module


def test_sidecar_and_ui_on_an_unreachable_landing_database(tmp_path: Path) -> None:
    port = free_port()
    for module in ("scripts.sidecar", "scripts.ui"):
        done = run(module, tmp_path, CC_LANDING_URL=f"postgresql://postgres@127.0.0.1:{port}/x",
                   CC_SIDECAR_PORT=str(free_port()), CC_UI_PORT=str(free_port()),
                   CC_SANDBOX_URL=f"http://127.0.0.1:{free_port()}")
        assert (done.returncode, done.stdout) == (1, ""), module
        assert done.stderr == (f"cannot reach Postgres at 127.0.0.1:{port} (CC_LANDING_URL): connection refused — "
                               "start it or unset CC_LANDING_URL (the landing in local files)\n"), module


def test_sidecar_on_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run("scripts.sidecar", tmp_path, CC_SIDECAR_PORT=str(port))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"port {port} (sidecar) is already in use: stop what listens there (an earlier "
                           "`make ui`?) or set CC_SIDECAR_PORT to a free port\n")


def test_a_misspelt_variable_is_named_with_the_right_one(tmp_path: Path) -> None:
    done = run("scripts.sql", tmp_path, CC_WAREHOUSES="postgres")
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["unknown variable CC_WAREHOUSES (did you mean CC_WAREHOUSE?): ignored",
                                        f"no data in {tmp_path / 'data'}: run `make demo` first"]
