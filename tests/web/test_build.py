"""The committed page (streaming/static/) is what web/'s sources build: a change to web/src/ that
was not rebuilt (`make web`) fails here, not in a user's browser."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def test_the_committed_build_is_what_the_sources_give():
    problem = None
    if shutil.which("node") is None:
        problem = "node is not installed"
    elif not (WEB / "node_modules" / "esbuild").is_dir():
        problem = "run `make install` (npm ci in web/)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must check the page's build: {problem}")
        pytest.skip(problem)
    check = subprocess.run(["node", "build.mjs", "--check"], cwd=WEB, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, f"the committed page differs from web/'s sources (make web):\n{check.stdout}{check.stderr}"
