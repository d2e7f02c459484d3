"""`python -m scripts.catalog_screenshot`: the README's picture of the Dagster catalog after `make demo`.

Starts `dagster-webserver` on the demo's Dagster instance (`DAGSTER_HOME`, `.dagster_home` by
default) and data (`CC_DATA_DIR`) on a free loopback port, in its own session so that every
process it starts is stopped with it; Debian's Chromium (Playwright, `executable_path`) opens the
Assets catalog once its rows are drawn and writes `docs/dagster-catalog.png`. A developer tool:
run `make demo` first (playwright comes from the dev extra).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from scripts.browser import MISSING, chromium, launch

ROOT = Path(__file__).resolve().parent.parent
START_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def webserver(dagster_home: Path, port: int):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-w", str(ROOT / "workspace.yaml"),
               "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited with {process.returncode}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"dagster-webserver did not answer within {START_S:.0f} s")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dagster-catalog.png"))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    dagster_home = Path(os.environ.get("DAGSTER_HOME") or ROOT / ".dagster_home")
    if not (dagster_home / "dagster.yaml").exists():
        print(f"no Dagster instance at {dagster_home}: run `make demo` first", file=sys.stderr)
        return 2
    if chromium() is None:
        print(MISSING, file=sys.stderr)
        return 2
    with webserver(dagster_home, _free_port()) as url, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(f"{url}/assets", wait_until="networkidle", timeout=120_000)
        # The catalog's rows, then their status column (fetched per row).
        page.get_by_text("Materialized", exact=False).first.wait_for(timeout=120_000)
        skip = page.get_by_role("button", name="Skip")  # the first visit's "Join the community" dialog
        if skip.count():
            skip.first.click()
        page.wait_for_load_state("networkidle", timeout=120_000)
        page.wait_for_timeout(3000)
        page.screenshot(path=args.out, full_page=False)
        browser.close()
    print(f"wrote {Path(args.out).resolve().relative_to(ROOT) if Path(args.out).resolve().is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
