"""Packaging: every third-party import of the packages is a declared dependency, uv.lock matches
pyproject.toml, and a plain `uv pip install .` (no extras) into a fresh venv imports the sidecar
and the Dagster definitions."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["cc_alerts", "cc_assets", "cc_events", "resources", "sandbox", "scripts", "sensors", "streaming"]
# `make chaos`, `make bench-page` and the README's screenshots are developer tools: `make`
# installs the dev extra they import from (schemathesis, playwright).
DEV_TOOLS = ("scripts/chaos/", "scripts/page_screenshots.py", "scripts/docs_screenshot.py",
             "scripts/report_screenshots.py", "scripts/catalog_screenshot.py", "scripts/bench_page.py")


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports() -> dict[str, str]:
    """Top-level third-party module → a file importing it (inside functions too)."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES and top != "__future__":
                        where = str(path.relative_to(ROOT))
                        # A runtime module's import is the one that counts: keep it over a dev tool's.
                        if top not in found or found[top].startswith(DEV_TOOLS):
                            found[top] = where
    return found


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"
    return str(uv) if uv.exists() else (shutil.which("uv") or pytest.fail("uv is not installed (make install)"))


def test_every_runtime_import_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    dev = declared | {_name(r) for r in project["optional-dependencies"]["dev"]}
    distributions = importlib.metadata.packages_distributions()
    missing = {module: where for module, where in _imports().items()
               if not {_name(d) for d in distributions.get(module, [module])}
               & (dev if where.startswith(DEV_TOOLS) else declared)}
    assert missing == {}, "imported but not in [project] dependencies"


def test_every_dependency_has_an_upper_bound() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    unbounded = [r for r in requirements if "<" not in r.split(";")[0] and "==" not in r]
    assert unbounded == []


def test_the_lock_file_matches_pyproject() -> None:
    done = subprocess.run([_uv(), "lock", "--locked"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.install
def test_a_plain_install_imports_the_sidecar_and_the_definitions(tmp_path: Path) -> None:
    # About a minute from uv's cache: the packages are linked, not downloaded or compiled.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CC_", "UV_", "VIRTUAL_ENV"))}
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env, timeout=120)
    install = subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(ROOT)],
                             capture_output=True, text=True, env=env, timeout=900)
    assert install.returncode == 0, install.stderr
    # From the project folder, as `make` runs: the code is the worktree's, every import the venv's.
    env["CC_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", "import streaming.app, cc_assets.definitions"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
