"""`make ui`: the Dagster UI on the embedded setup, with the sandbox sources and the streaming
sidecar (`python -m streaming.serve` on `CC_SIDECAR_PORT`, default 8000) serving beside it.

The sandbox listens where `CC_SANDBOX_URL` says (default http://127.0.0.1:8765), so assets
materialized from the UI land data exactly as in `make demo`. With real tokens set for every
source, or a sandbox already answering there, none is started.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import requests


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/_sandbox/info", timeout=1).ok
    except requests.RequestException:
        return False


def main() -> int:
    from resources.settings import Settings
    from sandbox.process import run_sandbox

    settings = Settings.from_env()
    needs_sandbox = not (settings.github_token and settings.linear_api_key and settings.charlie_api_url)
    bin_dir = Path(sys.executable).parent
    port = os.environ.get("CC_UI_PORT", "3000")
    with contextlib.ExitStack() as stack:
        if needs_sandbox and not _answers(settings.sandbox_url):
            target = urlparse(settings.sandbox_url)
            stack.enter_context(run_sandbox(settings.data_dir / "sandbox", host=target.hostname or "127.0.0.1",
                                            port=target.port or 8765))
            print(f"sandbox sources serving at {settings.sandbox_url}")
        sidecar_port = os.environ.get("CC_SIDECAR_PORT", "8000")
        sidecar = subprocess.Popen([sys.executable, "-m", "streaming.serve", "--host", "127.0.0.1",
                                    "--port", sidecar_port])
        stack.callback(_stop, sidecar)
        print(f"streaming sidecar (webhooks, /ws, REST) at http://127.0.0.1:{sidecar_port} (docs: /docs)")
        dagster = subprocess.Popen([str(bin_dir / "dagster"), "dev", "-w", "workspace.yaml", "-p", port])
        try:
            return dagster.wait()
        except KeyboardInterrupt:
            dagster.terminate()
            return dagster.wait()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


if __name__ == "__main__":
    sys.exit(main())
